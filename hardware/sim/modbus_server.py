"""Modbus TCP server for simulated lighting controllers and dust monitors.

A server is one listening port with one or more unit ids behind it: a device with its own
Ethernet module, or a Modbus TCP gateway in front of an RS-485 bus (up to 247 units), built
on pymodbus's SimDevice API with four separate tables per unit. Register
contents are computed from the device model on every request, using the profile's
addresses, types, scale and word/byte order, so what a client reads is the ground truth
at that moment. Addresses the profile does not define answer exception 02 (illegal data
address), except holes between points no wider than the profile's ``max_gap``, which the
device answers with 0s; a device taken offline closes its port until it comes back, or,
behind a gateway, answers exception 0B (gateway target device failed to respond) so that
its bus neighbours stay reachable.

One limit of the SimDevice API: it hands bit reads to us by whole 16-bit words, so reading
an undefined coil inside the first word (e.g. coil 5 of a 4-circuit controller) returns 0
instead of exception 02; writing it is refused.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from hardware.profiles import Point, Profile, load_profile

__all__ = ["ModbusDeviceServer", "encode_point", "point_width", "unit"]

log = logging.getLogger(__name__)
_TABLE_OF_FC = {
    1: "coil",
    5: "coil",
    15: "coil",
    2: "discrete",
    3: "holding",
    6: "holding",
    16: "holding",
    23: "holding",
    4: "input",
}
_FMT = {"int16": "h", "uint16": "H", "int32": "i", "uint32": "I", "float32": "f", "float64": "d"}


def encode_point(p: Point, value: float, word_order: str, byte_order: str) -> list[int]:
    """Registers carrying a canonical value for a point (raw = (value - offset) / scale)."""
    raw = (value - p.offset) / p.scale
    fmt = _FMT[p.type]
    if fmt in "hHiI":
        lo, hi = {
            "h": (-32768, 32767),
            "H": (0, 65535),
            "i": (-(2**31), 2**31 - 1),
            "I": (0, 2**32 - 1),
        }[fmt]
        raw = min(hi, max(lo, round(raw)))
    data = struct.pack(f">{fmt}", raw)
    words = [data[i : i + 2] for i in range(0, len(data), 2)]
    if byte_order == "little":
        words = [w[::-1] for w in words]
    if word_order == "little":
        words.reverse()
    return [int.from_bytes(w, "big") for w in words]


class _Unit:
    """One device behind the server: its profile, live state and command hook."""

    def __init__(
        self,
        device_id: str,
        unit_id: int,
        profile_name: str,
        state: Callable[[], dict[str, Any]],
        command: Callable[[int, bool], Any] | None,
    ):
        self.device_id, self.unit_id = device_id, unit_id
        self.profile: Profile = load_profile(profile_name)
        self.state, self.command = state, command
        self.points: dict[str, dict[int, Point]] = {
            "coil": {},
            "discrete": {},
            "holding": {},
            "input": {},
        }
        for p in self.profile.expanded():
            if p.table is not None and p.address is not None:
                self.points[p.table][p.address] = p
        self._covered = {
            table: {a + i for a, p in pts.items() for i in range(point_width(p))}
            for table, pts in self.points.items()
        }
        # Holes the profile says the device answers with 0s (``max_gap``): readable too.
        self.holes: dict[str, list[tuple[int, int]]] = {"holding": [], "input": []}
        gap = self.profile.max_gap or 0
        for table, holes in self.holes.items():
            ends = sorted((a, a + point_width(p)) for a, p in self.points[table].items())
            for (_a, end), (nxt, _e) in zip(ends, ends[1:]):
                if 0 < nxt - end <= gap:
                    holes.append((end, nxt - end))
                    self._covered[table].update(range(end, nxt))

    def sim_device(self, action: Any) -> SimDevice:
        """The pymodbus SimDevice with the profile's tables (empty tables are all invalid)."""
        blocks: list[list[SimData]] = []
        for table in ("coil", "discrete", "holding", "input"):
            pts = self.points[table]
            if table in ("coil", "discrete"):
                n = max(pts) + 1 if pts else 1
                blocks.append(
                    [
                        SimData(
                            address=0,
                            values=[False] * (((n + 15) // 16) * 16),
                            datatype=DataType.BITS,
                        )
                    ]
                )
            elif pts:
                spans = [(a, point_width(p)) for a, p in pts.items()] + self.holes[table]
                blocks.append(
                    [
                        SimData(address=a, values=[0] * n, datatype=DataType.REGISTERS)
                        for a, n in sorted(spans)
                    ]
                )
            else:
                blocks.append([SimData(address=0, datatype=DataType.INVALID)])
        return SimDevice(
            id=self.unit_id, simdata=(blocks[0], blocks[1], blocks[2], blocks[3]), action=action
        )

    def valid(self, table: str, address: int, count: int) -> bool:
        """Whether every address of the request is a defined point (or inside one)."""
        covered = self._covered[table]
        return all(a in covered for a in range(address, address + count))


def point_width(p: Point) -> int:
    """Registers (or bits) a point occupies."""
    return {
        "bool": 1,
        "int16": 1,
        "uint16": 1,
        "int32": 2,
        "uint32": 2,
        "float32": 2,
        "float64": 4,
    }[p.type]


class ModbusDeviceServer:
    """A Modbus TCP listener serving one device, or several unit ids as a gateway."""

    def __init__(
        self,
        unit: _Unit | list[_Unit] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        is_offline: Callable[[str], bool] | None = None,
        **kw: Any,
    ):
        units = unit if isinstance(unit, list) else [unit if unit is not None else _Unit(**kw)]
        ids = [u.unit_id for u in units]
        if len(set(ids)) != len(ids) or not all(1 <= i <= 247 for i in ids):
            raise ValueError(f"unit ids behind one port must be distinct, 1..247: {ids}")
        self.units = units
        self.host, self.port = host, port
        self.is_offline = is_offline or (lambda _: False)
        self.server: ModbusTcpServer | None = None
        self.requests = 0
        self.errors = 0

    @property
    def unit(self) -> _Unit:
        """The first (for a single device: the only) unit behind the port."""
        return self.units[0]

    @property
    def endpoint(self) -> str:
        """modbus://host:port of this device."""
        return f"modbus://{self.host}:{self.port}"

    async def start(self) -> None:
        """Listen (on a free port the first time, on the same port after a restart)."""
        devices = [u.sim_device(self._action_for(u)) for u in self.units]
        srv = ModbusTcpServer(devices, address=(self.host, self.port))
        await srv.serve_forever(background=True)
        self.server = srv
        if self.port == 0:
            self.port = srv.transport.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        """Close the port and every open connection."""
        if self.server is not None:
            await self.server.shutdown()
            self.server = None

    def _action_for(self, unit: _Unit) -> Any:
        async def action(
            fc: int,
            start: int,
            address: int,
            count: int,
            registers: list[int],
            values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            if len(self.units) > 1 and self.is_offline(unit.device_id):
                self.requests += 1
                self.errors += 1
                return ExcCodes.GATEWAY_NO_RESPONSE
            return await self._action(fc, start, address, count, registers, values, unit)

        return action

    async def _action(
        self,
        fc: int,
        start: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
        unit: _Unit | None = None,
    ) -> ExcCodes | None:
        """Validate the request against the profile, apply writes, refresh the table."""
        self.requests += 1
        unit = self.unit if unit is None else unit
        table = _TABLE_OF_FC.get(fc)
        if table is None or not unit.valid(table, address, count):
            self.errors += 1
            return ExcCodes.ILLEGAL_ADDRESS
        if values is not None:
            if table != "coil" or unit.command is None:
                self.errors += 1
                return ExcCodes.ILLEGAL_ADDRESS
            for i, v in enumerate(values):
                p = unit.points["coil"][address + i]
                if not p.writable:
                    self.errors += 1
                    return ExcCodes.ILLEGAL_ADDRESS
                circuit = int(p.key.removeprefix("circuit").split("_")[0])
                unit.command(circuit, bool(v))
                log.info("Modbus coil write %s circuit %d -> %s", unit.device_id, circuit, bool(v))
        state = unit.state()
        if table in ("coil", "discrete"):
            bits = [False] * (len(registers) * 16)
            for a, p in unit.points[table].items():
                bits[a] = bool(state[p.key])
            for r in range(len(registers) - 1):  # the last register is pymodbus's end marker
                registers[r] = sum(1 << b for b in range(16) if bits[r * 16 + b])
            return None
        prof = unit.profile
        for a, p in unit.points[table].items():
            regs = encode_point(p, float(state[p.key]), prof.word_order, prof.byte_order)
            registers[a - start : a - start + len(regs)] = regs
        return None


def unit(
    device_id: str,
    unit_id: int,
    profile_name: str,
    state: Callable[[], dict[str, Any]],
    command: Callable[[int, bool], Any] | None = None,
) -> _Unit:
    """Describe one device for :class:`ModbusDeviceServer`."""
    return _Unit(device_id, unit_id, profile_name, state, command)
