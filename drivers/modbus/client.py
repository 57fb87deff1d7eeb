"""Modbus TCP driver on pymodbus: planned reads, coil/register writes, read-back.

Devices behind one gateway (one ``host:port``) share one TCP connection, and a lock keeps
exactly one transaction in flight on it: many gateways serve requests strictly one at a
time and drop or mix up pipelined ones.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from contracts.commands import CommandAction
from contracts.config import DeviceConfig
from contracts.telemetry import TelemetryRow
from drivers.base import (
    BadConfig,
    DeviceTimeout,
    DeviceUnavailable,
    DriverError,
    WriteRejected,
    switch_params,
)
from drivers.modbus.codec import WIDTH, CodecError, decode_bits, decode_value, encode_value
from drivers.modbus.config import ModbusSettings, settings_for
from drivers.modbus.planner import BIT_TABLES, PlannedPoint, ReadRequest

__all__ = ["ModbusDriver", "EXCEPTION_CODES"]

#: Modbus exception codes (spec §7) and what they mean for the operator.
EXCEPTION_CODES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge (still processing)",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
_READ_FN = {
    "coil": "read_coils",
    "discrete": "read_discrete_inputs",
    "holding": "read_holding_registers",
    "input": "read_input_registers",
}


class _Bus:
    """One TCP connection to a gateway, shared by the unit ids behind it."""

    def __init__(self, host: str, port: int, timeout_s: float):
        self.key = (host, port)
        self.client = AsyncModbusTcpClient(
            host, port=port, timeout=timeout_s, retries=0, reconnect_delay=0
        )
        self.lock = asyncio.Lock()
        self.users = 0
        self.requests = 0

    async def ensure_connected(self) -> None:
        if self.client.connected:
            return
        try:
            ok = await self.client.connect()
        except (OSError, ModbusException) as exc:
            raise DeviceUnavailable(f"modbus {self.key[0]}:{self.key[1]}: {exc}") from None
        if not ok:
            raise DeviceUnavailable(
                f"modbus {self.key[0]}:{self.key[1]}: connection refused or timed out"
            )

    async def call(self, fn: str, timeout_s: float, *args: Any, **kwargs: Any) -> Any:
        """One transaction, alone on the wire; library errors become driver errors."""
        async with self.lock:
            await self.ensure_connected()
            self.requests += 1
            try:
                return await asyncio.wait_for(getattr(self.client, fn)(*args, **kwargs), timeout_s)
            except TimeoutError:
                # A late answer would be taken for the next request's: start afresh.
                self.client.close()
                raise DeviceTimeout(
                    f"modbus {self.key[0]}:{self.key[1]}: no answer within {timeout_s} s"
                ) from None
            except (OSError, ModbusException) as exc:
                self.client.close()
                raise DeviceUnavailable(f"modbus {self.key[0]}:{self.key[1]}: {exc}") from None


# Shared per event loop and endpoint; entries go away when their last driver closes.
_BUSES: dict[tuple[int, str, int], _Bus] = {}


def _acquire(s: ModbusSettings) -> _Bus:
    key = (id(asyncio.get_running_loop()), s.host, s.port)
    bus = _BUSES.get(key)
    if bus is None:
        bus = _BUSES[key] = _Bus(s.host, s.port, s.timeout_s)
    bus.users += 1
    return bus


def _release(s: ModbusSettings, bus: _Bus) -> None:
    bus.users -= 1
    if bus.users <= 0:
        bus.client.close()
        for k, v in list(_BUSES.items()):
            if v is bus:
                del _BUSES[k]


def _check(resp: Any, what: str, writing: bool = False) -> Any:
    """Raise the driver error for a Modbus exception response."""
    if resp is None or not resp.isError():
        return resp
    code = int(getattr(resp, "exception_code", 0))
    text = f"{what}: exception {code} ({EXCEPTION_CODES.get(code, 'unknown')})"
    if code in (1, 2, 3):
        raise (WriteRejected if writing else BadConfig)(text)
    if code == 11:
        raise DeviceTimeout(text)
    raise DeviceUnavailable(text)


class ModbusDriver:
    """A Modbus TCP device described by its profile."""

    actions = frozenset({CommandAction.SWITCH_CIRCUIT})

    def __init__(self, device: DeviceConfig):
        self.device = device
        self.settings = settings_for(device)
        self._bus: _Bus | None = None
        self._counters = {"reads": 0, "read_errors": 0, "writes": 0, "decode_errors": 0}
        if self.settings.profile.circuits == 0:
            self.actions = frozenset()

    def stats(self) -> dict[str, int]:
        """Request and error counters of this device."""
        return dict(self._counters)

    async def connect(self) -> None:
        """Join (or open) the shared connection to the device's gateway."""
        if self._bus is None:
            self._bus = _acquire(self.settings)
        await self._bus.ensure_connected()

    def _need_bus(self) -> _Bus:
        if self._bus is None:
            raise DeviceUnavailable(f"{self.device.id}: not connected")
        return self._bus

    async def _read(self, req: ReadRequest) -> list:
        bus = self._need_bus()
        what = f"{self.device.id} {req.table}[{req.address}:+{req.count}]"
        self._counters["reads"] += 1
        try:
            resp = await bus.call(
                _READ_FN[req.table],
                self.device.timeout_s,
                req.address,
                count=req.count,
                device_id=self.settings.unit_id,
            )
            _check(resp, what)
        except DriverError:
            self._counters["read_errors"] += 1
            raise
        data = resp.bits if req.table in BIT_TABLES else resp.registers
        if len(data) < req.count:
            self._counters["read_errors"] += 1
            raise DeviceUnavailable(f"{what}: short answer ({len(data)} values)")
        return data

    def _decode(self, req: ReadRequest, data: list, ts: int) -> list[TelemetryRow]:
        s = self.settings
        kind = s.profile.kind
        rows = []
        for pp in req.points:
            point = s.points[pp.key]
            try:
                if req.table in BIT_TABLES:
                    value = decode_bits(req.slice(pp, data), point.scale, point.offset)
                else:
                    value = decode_value(
                        req.slice(pp, data),
                        point.type,
                        word_order=s.profile.word_order,
                        byte_order=s.profile.byte_order,
                        scale=point.scale,
                        offset=point.offset,
                    )
            except CodecError:
                self._counters["decode_errors"] += 1
                value = None
            rows.append(TelemetryRow(self.device.id, kind, ts, pp.key, value))
        return rows

    async def read(self) -> list[TelemetryRow]:
        """Every profile point, in as few requests as the plan allows."""
        rows: list[TelemetryRow] = []
        for req in self.settings.requests:
            data = await self._read(req)
            rows.extend(self._decode(req, data, time.time_ns()))
        return rows

    async def write(self, key: str, value: float | bool) -> None:
        """Write a writable coil or holding register(s) by telemetry key."""
        point = self.settings.points.get(key)
        if point is None or not point.writable:
            raise WriteRejected(f"{self.device.id}: {key!r} is not a writable point")
        bus = self._need_bus()
        unit = self.settings.unit_id
        what = f"{self.device.id} write {key}"
        self._counters["writes"] += 1
        if point.table == "coil":
            resp = await bus.call(
                "write_coil", self.device.timeout_s, point.address, bool(value), device_id=unit
            )
        elif point.table == "holding":
            try:
                regs = encode_value(
                    float(value),
                    point.type,
                    word_order=self.settings.profile.word_order,
                    byte_order=self.settings.profile.byte_order,
                    scale=point.scale,
                    offset=point.offset,
                )
            except CodecError as exc:
                raise WriteRejected(f"{what}: {exc}") from None
            resp = await bus.call(
                "write_registers", self.device.timeout_s, point.address, regs, device_id=unit
            )
        else:
            raise WriteRejected(f"{what}: table {point.table} is read-only")
        _check(resp, what, writing=True)

    async def read_point(self, key: str) -> float | None:
        """Read one point on its own (for command read-back)."""
        point = self.settings.points[key]
        width = 1 if point.table in BIT_TABLES else WIDTH[point.type]
        pp = PlannedPoint(key, point.type, point.address or 0, width)
        req = ReadRequest(point.table or "holding", pp.address, width, (pp,))
        data = await self._read(req)
        return self._decode(req, data, time.time_ns())[0].value

    async def execute(self, action: CommandAction, params: dict[str, Any]) -> dict[str, float]:
        """switch_circuit: write the circuit's coil, then read it back."""
        if action not in self.actions:
            raise WriteRejected(f"{self.device.id}: action {action} not supported")
        try:
            circuit, on = switch_params(params, self.settings.profile.circuits)
        except ValueError as exc:
            raise WriteRejected(f"{self.device.id}: {exc}") from None
        key = f"circuit{circuit}_on"
        await self.write(key, on)
        value = await self.read_point(key)
        return {} if value is None else {key: value}

    async def close(self) -> None:
        """Leave the shared connection (closing it with the last user)."""
        if self._bus is not None:
            _release(self.settings, self._bus)
            self._bus = None
