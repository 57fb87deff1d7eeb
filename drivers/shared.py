"""Connections shared by the drivers of one event loop: one per endpoint, counted by users.

A Modbus gateway's TCP connection, an OPC-UA server's session and a broker's tracker
client each serve many devices; the first device to open one creates it, the last to close
it ends it. Keys are per event loop, since a connection belongs to the loop it was made on.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Hashable
from typing import Generic, Protocol, TypeVar

__all__ = ["Shared", "totals"]


class _Counted(Protocol):
    users: int

    def counters(self) -> dict[str, int]: ...


T = TypeVar("T", bound=_Counted)


class Shared(Generic[T]):
    """Endpoint key -> shared object; the object counts its users in ``users``."""

    def __init__(self, name: str, register: bool = True) -> None:
        self.name = name
        self.retired: Counter[str] = Counter()  # counters of objects already closed
        if register:  # reported by totals()
            _ALL.append(self)
        self._items: dict[tuple[int, Hashable], T] = {}
        self._keys: dict[int, tuple[int, Hashable]] = {}  # id(object) -> its key

    def acquire(self, key: Hashable, make: Callable[[], T]) -> T:
        """The running loop's object for ``key`` (made on first use), with one more user."""
        full = (id(asyncio.get_running_loop()), key)
        obj = self._items.get(full)
        if obj is None:
            obj = self._items[full] = make()
            self._keys[id(obj)] = full
        obj.users += 1
        return obj

    def release(self, obj: T, keep: bool = False) -> bool:
        """One user less; True when that was the last one (the caller then closes it).
        ``keep`` leaves a last-released object registered for the next user."""
        obj.users = max(obj.users - 1, 0)
        if obj.users:
            return False
        if not keep and id(obj) in self._keys:
            del self._items[self._keys.pop(id(obj))]
            self.retired.update(obj.counters())
        return True

    def mine(self) -> list[T]:
        """The running loop's objects."""
        loop = id(asyncio.get_running_loop())
        return [v for (lp, _), v in self._items.items() if lp == loop]


_ALL: list[Shared] = []


def totals() -> dict[str, int]:
    """Anomaly counters of every shared connection of this process, open or closed, as
    ``{registry}_{counter}`` (e.g. answers a Modbus gateway sent to no request)."""
    out: dict[str, int] = {}
    for reg in _ALL:
        sums = Counter(reg.retired)
        for obj in reg._items.values():
            sums.update(obj.counters())
        out.update({f"{reg.name}_{k}": v for k, v in sorted(sums.items())})
    return out
