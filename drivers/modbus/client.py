"""Modbus TCP driver: planned reads, coil/register writes, read-back.

Devices behind one gateway (one ``host:port``) share one TCP connection, and a lock keeps
exactly one transaction in flight on it: many gateways serve requests strictly one at a
time and drop or mix up pipelined ones.
"""

from __future__ import annotations

import logging
from typing import Any

from contracts import clock  # poll rows carry data time: the deployment's clock
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
from drivers.modbus.bus import (
    EXCEPTION_CODES,
    Bus,
    DeviceBusy,
    IllegalAddress,
    acquire,
    release,
    write_pdu,
)
from drivers.modbus.codec import (
    WIDTH,
    CodecError,
    block_decoder,
    decode_bits,
    decode_value,
    encode_value,
)
from drivers.modbus.config import settings_for
from drivers.modbus.line import PRIORITY_RANK
from drivers.modbus.planner import BIT_TABLES, PlannedPoint, ReadRequest

__all__ = ["ModbusDriver", "EXCEPTION_CODES", "IllegalAddress"]

log = logging.getLogger(__name__)


class ModbusDriver:
    """A Modbus TCP device described by its profile."""

    actions = frozenset({CommandAction.SWITCH_CIRCUIT})

    def __init__(self, device: DeviceConfig):
        self.device = device
        self.settings = settings_for(device)
        self._bus: Bus | None = None
        self._rank = PRIORITY_RANK[device.priority]
        self._counters = {
            "reads": 0,
            "read_errors": 0,
            "retries": 0,
            "writes": 0,
            "decode_errors": 0,
            "split_reads": 0,
            "bad_points": 0,
        }
        # The plan in use: merged reads that hit a missing address are split once and the
        # working parts kept, so later polls cost no extra requests.
        self._plan: list[ReadRequest] = list(self.settings.requests)
        self.bad_points: dict[str, str] = {}  # key -> why it is no longer read
        # Register reads decode through a struct compiled once per request of the plan
        # (keyed by identity: the plan's requests live as long as the plan).
        self._decoders: dict[int, tuple[ReadRequest, Any]] = {}
        if self.settings.profile.circuits == 0:
            self.actions = frozenset()

    def stats(self) -> dict[str, int]:
        """Request and error counters of this device."""
        return dict(self._counters)

    async def connect(self) -> None:
        """Join (or open) the shared connection to the device's gateway.

        A new session starts from the full plan again: after a firmware update or a
        device swap, points dropped earlier are tried once more.
        """
        if self._bus is None:
            s = self.settings
            self._bus = acquire(s.host, s.port, s.timeout_s)
            self._plan = list(self.settings.requests)
            self.bad_points.clear()
        await self._bus.ensure_connected()

    def _need_bus(self) -> Bus:
        if self._bus is None:
            raise DeviceUnavailable(f"{self.device.id}: not connected")
        return self._bus

    async def _read(self, req: ReadRequest) -> list:
        """One planned read, tried again (``retries`` times) on a timeout or a busy device.

        Between tries the line is let go, so a unit that does not answer holds up its
        neighbours for one timeout per try, not for the whole series.
        """
        bus = self._need_bus()
        what = f"{self.device.id} {req.table}[{req.address}:+{req.count}]"
        tries = 1 + self.device.retries
        for attempt in range(1, tries + 1):
            self._counters["reads"] += 1
            try:
                return await bus.read(
                    req.table,
                    req.address,
                    req.count,
                    self.settings.unit_id,
                    self.device.timeout_s,
                    what,
                    self._rank,
                )
            except (DeviceTimeout, DeviceBusy):
                self._counters["read_errors"] += 1
                if attempt == tries:
                    raise
                self._counters["retries"] += 1
            except DriverError:
                self._counters["read_errors"] += 1
                raise
        raise AssertionError("unreachable")  # the loop returns or raises

    def _decoder(self, req: ReadRequest) -> Any:
        hit = self._decoders.get(id(req))
        if hit is not None and hit[0] is req:
            return hit[1]
        s = self.settings
        pts = [
            (pp.type, pp.address - req.address, s.points[pp.key].scale, s.points[pp.key].offset)
            for pp in req.points
        ]
        dec = block_decoder(
            pts, req.count, word_order=s.profile.word_order, byte_order=s.profile.byte_order
        )
        if len(self._decoders) >= 256:  # one-off reads (command read-back) must not pile up
            self._decoders.clear()
        self._decoders[id(req)] = (req, dec)
        return dec

    def _decode(self, req: ReadRequest, data: list, ts: int) -> list[TelemetryRow]:
        s = self.settings
        kind = s.profile.kind
        dev = self.device.id
        if req.table not in BIT_TABLES:
            try:
                values = self._decoder(req)(data)
            except CodecError:
                pass  # decode point by point below, to count and null only the bad ones
            else:
                return [TelemetryRow(dev, kind, ts, pp.key, v) for pp, v in zip(req.points, values)]
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
        """Every profile point, in as few requests as the plan allows.

        A merged read answered with exception 02 (illegal data address) is split in two
        until the bad point(s) are isolated; those are dropped from the plan (counted,
        logged in ``bad_points``) and the rest keep being polled. The device still counts
        as misconfigured (BadConfig) when no point at all can be read.
        """
        rows: list[TelemetryRow] = []
        plan: list[ReadRequest] = []
        for req in self._plan:
            got = await self._read_isolating(req, plan)
            rows.extend(got)
        self._plan = plan
        if not plan:
            raise BadConfig(f"{self.device.id}: no readable point left: {self.bad_points}")
        return rows

    async def _read_isolating(self, req: ReadRequest, plan: list[ReadRequest]) -> list:
        try:
            data = await self._read(req)
        except IllegalAddress as exc:
            if len(req.points) == 1:
                key = req.points[0].key
                self.bad_points[key] = str(exc)
                self._counters["bad_points"] += 1
                log.warning("%s: point %s dropped from the poll: %s", self.device.id, key, exc)
                return []
            self._counters["split_reads"] += 1
            half = len(req.points) // 2
            rows: list = []
            for part in (req.points[:half], req.points[half:]):
                start = part[0].address
                end = max(p.address + p.width for p in part)
                sub = ReadRequest(req.table, start, end - start, part)
                rows.extend(await self._read_isolating(sub, plan))
            return rows
        plan.append(req)
        return self._decode(req, data, clock.now_ns())

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
            pdu = write_pdu("coil", point.address or 0, bool(value))
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
            pdu = write_pdu("holding", point.address or 0, regs)
        else:
            raise WriteRejected(f"{what}: table {point.table} is read-only")
        await bus.write(pdu, unit, self.device.timeout_s, what, self._rank)

    async def read_point(self, key: str) -> float | None:
        """Read one point on its own (for command read-back)."""
        point = self.settings.points[key]
        width = 1 if point.table in BIT_TABLES else WIDTH[point.type]
        pp = PlannedPoint(key, point.type, point.address or 0, width)
        req = ReadRequest(point.table or "holding", pp.address, width, (pp,))
        data = await self._read(req)
        return self._decode(req, data, clock.now_ns())[0].value

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
            release(self._bus)
            self._bus = None
