"""Pure request planner: merge a profile's points into as few Modbus reads as allowed.

Points of one table are sorted by address and merged greedily while the span stays
within the protocol limit (125 registers per FC 3/4 read, 2,000 bits per FC 1/2) and
the hole between two points is at most ``max_gap`` addresses (reading a few unused
registers is cheaper than another round trip, but some devices reject holes: gap 0).

    points  pm25@0 (2)  pm10@2 (2)  noise@6 (2)        max_gap 2
    reads   [0 ........................ 8)  one read of 8 registers
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from drivers.modbus.codec import WIDTH

__all__ = ["ReadRequest", "PlannedPoint", "plan", "MAX_REGISTERS", "MAX_BITS", "BIT_TABLES"]

MAX_REGISTERS = 125
MAX_BITS = 2000
BIT_TABLES = frozenset({"coil", "discrete"})
_TABLE_ORDER = {"coil": 0, "discrete": 1, "holding": 2, "input": 3}


@dataclass(frozen=True, slots=True)
class PlannedPoint:
    """A point to decode from a read: its key, type and place inside the read."""

    key: str
    type: str
    address: int
    width: int


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One Modbus read: table, start address, count, and the points it carries."""

    table: str
    address: int
    count: int
    points: tuple[PlannedPoint, ...]

    def slice(self, point: PlannedPoint, data: list) -> list:
        """The words (or bits) of one point from this read's answer."""
        start = point.address - self.address
        return list(data[start : start + point.width])


def plan(
    points: Iterable[tuple[str, str, str, int]],
    *,
    max_gap: int = 8,
    max_registers: int = MAX_REGISTERS,
    max_bits: int = MAX_BITS,
) -> list[ReadRequest]:
    """Reads covering ``(key, table, type, address)`` points; ValueError on a bad point."""
    if max_gap < 0:
        raise ValueError(f"max_gap must be >= 0, got {max_gap}")
    by_table: dict[str, list[PlannedPoint]] = {}
    for key, table, type_, address in points:
        if table not in _TABLE_ORDER:
            raise ValueError(f"point {key!r}: unknown table {table!r}")
        if type_ not in WIDTH:
            raise ValueError(f"point {key!r}: unknown type {type_!r}")
        if address is None or not 0 <= address <= 0xFFFF:
            raise ValueError(f"point {key!r}: address {address!r} outside 0..65535")
        width = 1 if table in BIT_TABLES else WIDTH[type_]
        if table in BIT_TABLES and type_ != "bool":
            raise ValueError(f"point {key!r}: {table} points must be bool, not {type_}")
        if address + width > 0x10000:
            raise ValueError(f"point {key!r}: runs past address 65535")
        by_table.setdefault(table, []).append(PlannedPoint(key, type_, address, width))
    out: list[ReadRequest] = []
    for table in sorted(by_table, key=_TABLE_ORDER.__getitem__):
        limit = max_bits if table in BIT_TABLES else max_registers
        out.extend(
            _merge(
                table, sorted(by_table[table], key=lambda p: (p.address, p.width)), max_gap, limit
            )
        )
    return out


def _merge(table: str, pts: list[PlannedPoint], max_gap: int, limit: int) -> list[ReadRequest]:
    out: list[ReadRequest] = []
    group: list[PlannedPoint] = []
    start = end = 0
    for p in pts:
        p_end = p.address + p.width
        if group and p.address - end <= max_gap and max(end, p_end) - start <= limit:
            group.append(p)
            end = max(end, p_end)
            continue
        if group:
            out.append(ReadRequest(table, start, end - start, tuple(group)))
        group, start, end = [p], p.address, p_end
    if group:
        out.append(ReadRequest(table, start, end - start, tuple(group)))
    return out
