"""The turn-taking of one shared line: one transaction at a time, higher priority first.

Devices behind one gateway (or one RS-485 line) wait for the line in order of priority,
then of arrival. A free line is taken without a wait, so polling back to back costs no
more than a plain lock.

    in flight: unit 3 (low)   queue: unit 7 (high) → unit 5 (low) → unit 4 (low)
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from types import TracebackType

__all__ = ["PRIORITY_RANK", "PriorityLock"]

#: config priority -> rank in the queue (smaller goes first)
PRIORITY_RANK = {"high": 0, "normal": 1, "low": 2}


class PriorityLock:
    """An asyncio lock whose waiters are served by rank, then first come first served."""

    def __init__(self) -> None:
        self._busy = False
        self._queue: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self.served_out_of_order = 0  # grants that overtook an earlier, lower-ranked waiter

    def locked(self) -> bool:
        """Whether a transaction holds the line."""
        return self._busy

    def waiting(self) -> int:
        """Requests queued for the line (cancelled ones excluded)."""
        return sum(1 for *_, f in self._queue if not f.done())

    async def acquire(self, rank: int = PRIORITY_RANK["normal"]) -> None:
        """Wait for the line; ``rank`` orders the wait (0 first)."""
        if not self._busy and not self._queue:
            self._busy = True
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (rank, next(self._seq), fut)
        heapq.heappush(self._queue, entry)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # granted just as it was cancelled: pass the line on
            raise

    def release(self) -> None:
        """Hand the line to the best waiter, or free it."""
        while self._queue:
            rank, seq, fut = heapq.heappop(self._queue)
            if fut.done():
                continue  # its waiter was cancelled
            if any(s < seq and not f.done() for _r, s, f in self._queue):
                self.served_out_of_order += 1
            fut.set_result(None)
            return  # still busy: owned by the waiter now
        self._busy = False

    def holding(self, rank: int) -> _Held:
        """``async with lock.holding(rank):`` one transaction."""
        return _Held(self, rank)


class _Held:
    __slots__ = ("_lock", "_rank")

    def __init__(self, lock: PriorityLock, rank: int) -> None:
        self._lock, self._rank = lock, rank

    async def __aenter__(self) -> None:
        await self._lock.acquire(self._rank)

    async def __aexit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._lock.release()
