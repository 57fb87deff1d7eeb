"""The writer thread: stores prepared frames, spills while the store is down, replays.

Order is kept: once anything is spilled, new frames queue behind it in the spill until
it has replayed. A frame counts as done (and its messages are acknowledged) when it is
stored, spilled, or refused by the store with a 4xx and quarantined.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable

import polars as pl

from ingest.metrics import IngestMetrics
from ingest.quarantine import Quarantine
from ingest.spill import Spill
from ingest.store import StoreError, StoreUnavailable, TelemetryStore
from ingest.store.lineproto import LINE

__all__ = ["Writer", "STORE_REFUSED"]

log = logging.getLogger(__name__)

#: Quarantine reason for rows the store refused with a 4xx (e.g. a field type conflict).
STORE_REFUSED = "store_refused"
_MIN_SPLIT = 64  # below this many rows a refused chunk is quarantined whole
# InfluxDB 1.x/2.x: partial write: field type conflict: input field "f" on measurement "m" ...
_CONFLICT = re.compile(r'input field \\?"([^"\\]+)\\?" on measurement \\?"([^"\\]+)\\?"')


class Writer(threading.Thread):
    """Single writer of one ingest worker (bounded hand-over queue of ``depth`` frames)."""

    def __init__(
        self,
        store: TelemetryStore,
        spill: Spill,
        quarantine: Quarantine | None,
        metrics: IngestMetrics,
        halt: threading.Event,
        retry_max_s: float = 5.0,
        depth: int = 2,
    ) -> None:
        super().__init__(name="ingest-writer", daemon=True)
        self.store, self.spill, self.quarantine, self.m = store, spill, quarantine, metrics
        self._halt = halt
        self._q: queue.Queue[tuple[pl.DataFrame, Callable[[], None]]] = queue.Queue(depth)
        self.retry_max_s = retry_max_s
        self._down = False
        self._delay = 0.2
        self._next_replay = 0.0

    def submit(self, frame: pl.DataFrame, on_done: Callable[[], None]) -> bool:
        """Queue a frame (blocks while the writer is behind); False if halted first."""
        while not self._halt.is_set():
            try:
                self._q.put((frame, on_done), timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        """Write until halted (frames still queued then are not acked: they come back)."""
        while not self._halt.is_set():
            try:
                frame, on_done = self._q.get(timeout=0.05)
            except queue.Empty:
                pass
            else:
                if self._store_or_spill(frame):
                    on_done()
            if len(self.spill) and time.monotonic() >= self._next_replay:
                self._replay(limit=8)

    def _store_or_spill(self, frame: pl.DataFrame) -> bool:
        if not len(self.spill) and not self._down and self._try_write(frame):
            return True
        while not self._halt.is_set():
            # Without the lines encoded ahead: they made the spill 4× the bytes, and a
            # replay encodes again (rarely).
            if self.spill.put(frame.drop(LINE, strict=False)):
                return True
            # Full under "block": make room by replaying, else wait; the broker holds the rest.
            self._replay(limit=1)
            self._halt.wait(min(self._delay, 0.5))
        return False

    def _replay(self, limit: int) -> None:
        for _ in range(limit):
            head = self.spill.peek()
            if head is None:
                break
            spill_id, frame = head
            if not self._try_write(frame):
                return
            self.spill.done(spill_id)

    def _try_write(self, frame: pl.DataFrame) -> bool:
        """Store the frame (quarantining what the store refuses); False if it is down."""
        try:
            self._write(frame)
        except Exception as exc:  # the store boundary: unreachable, timeouts, I/O
            self.m.add("write_errors")
            self._down = True
            self._next_replay = time.monotonic() + self._delay
            log.warning(
                "ingest: store write failed, spilling; retry in %.1f s: %s", self._delay, exc
            )
            self._delay = min(self._delay * 2, self.retry_max_s)
            return False
        self._down = False
        self._delay = 0.2
        self._next_replay = 0.0
        return True

    def _write(self, frame: pl.DataFrame, budget: int = 64) -> None:
        t0 = time.perf_counter()
        try:
            n = self.store.write(frame)
        except StoreUnavailable:
            raise
        except StoreError as exc:
            self._refused(frame, exc, budget)
            return
        self.m.write(n, (time.perf_counter() - t0) * 1000)

    def _refused(self, frame: pl.DataFrame, exc: StoreError, budget: int = 64) -> None:
        """Quarantine the rows a 4xx refers to; write the rest again (rewrites are harmless).

        InfluxDB names a field type conflict (``input field "f" on measurement "m"``):
        those rows go to quarantine. Otherwise the frame is halved until the refused
        chunks are small, within ``budget`` extra writes.
        """
        hit = _CONFLICT.search(str(exc))
        if hit is not None:
            bad_mask = (pl.col("field") == hit[1]) & (pl.col("kind") == hit[2])
            bad, rest = frame.filter(bad_mask), frame.filter(~bad_mask)
            if bad.height:
                self._quarantine(bad, exc)
                if rest.height:
                    self._write(rest, budget - 1)
                return
        if frame.height <= _MIN_SPLIT or budget <= 1:
            self._quarantine(frame, exc)
            return
        half = frame.height // 2
        self._write(frame.slice(0, half), budget // 2)
        self._write(frame.slice(half), budget // 2)

    def _quarantine(self, frame: pl.DataFrame, exc: StoreError) -> None:
        log.warning("ingest: store refused %d rows: %s", frame.height, exc)
        self.m.bad(STORE_REFUSED, frame.height)
        self.m.add("rows_quarantined", frame.height)
        if self.quarantine is not None:
            self.quarantine.add_rows(
                frame.drop(LINE, strict=False).with_columns(pl.lit(STORE_REFUSED).alias("reason")),
                "store",
            )
