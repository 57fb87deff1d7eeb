"""Connections shared by the drivers of one event loop: one per endpoint, counted by users.

A Modbus gateway's TCP connection, an OPC-UA server's session and a broker's tracker
client each serve many devices; the first device to open one creates it, the last to close
it ends it. Keys are per event loop, since a connection belongs to the loop it was made on.
"""

from __future__ import annotations

import asyncio
import weakref
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
        # Per loop, held weakly: a closed loop's objects go with it (an id() of a dead
        # loop can come back as a new loop's, which must not inherit them).
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Hashable, T]]
        self._loops = weakref.WeakKeyDictionary()
        self._where: dict[int, tuple[dict[Hashable, T], Hashable]] = {}  # id(obj) -> place

    def acquire(self, key: Hashable, make: Callable[[], T]) -> T:
        """The running loop's object for ``key`` (made on first use), with one more user."""
        items = self._loops.setdefault(asyncio.get_running_loop(), {})
        obj = items.get(key)
        if obj is None:
            obj = items[key] = make()
            self._where[id(obj)] = (items, key)  # registered objects are alive: ids unique
        obj.users += 1
        return obj

    def release(self, obj: T, keep: bool = False) -> bool:
        """One user less; True when that was the last one (the caller then closes it).
        ``keep`` leaves a last-released object registered for the next user."""
        obj.users = max(obj.users - 1, 0)
        if obj.users:
            return False
        if not keep and id(obj) in self._where:
            items, key = self._where.pop(id(obj))
            del items[key]
            self.retired.update(obj.counters())
        return True

    def mine(self) -> list[T]:
        """The running loop's objects."""
        return list(self._loops.get(asyncio.get_running_loop(), {}).values())

    def all(self) -> list[T]:
        """Every registered object, of every live loop."""
        return [obj for items in list(self._loops.values()) for obj in items.values()]


_ALL: list[Shared] = []


def totals() -> dict[str, int]:
    """Anomaly counters of every shared connection of this process, open or closed, as
    ``{registry}_{counter}`` (e.g. answers a Modbus gateway sent to no request)."""
    out: dict[str, int] = {}
    for reg in _ALL:
        sums = Counter(reg.retired)
        for obj in reg.all():
            sums.update(obj.counters())
        out.update({f"{reg.name}_{k}": v for k, v in sorted(sums.items())})
    return out
