"""One shared Modbus TCP connection per gateway, one transaction in flight, and the
mapping of Modbus exception responses to driver errors.

The connection is a plain asyncio protocol over the pure framing of ``mbap``: a request
costs one ``write``, one timer and one future, a fraction of a general-purpose client's
machinery (``rongguan bench poll`` compares them). It also keeps library log noise out:
connection failures are driver errors, which the agent's supervisor logs rate-limited.
"""

from __future__ import annotations

import asyncio
from typing import Any

from drivers.base import BadConfig, DeviceTimeout, DeviceUnavailable, DriverError, WriteRejected
from drivers.modbus.line import PRIORITY_RANK, PriorityLock
from drivers.modbus.mbap import (
    READ_FC,
    ExceptionResponse,
    FrameError,
    frame,
    parse_read,
    parse_write,
    read_request,
    split,
    write_coil_request,
    write_registers_request,
)
from drivers.shared import Shared

__all__ = [
    "EXCEPTION_CODES",
    "IllegalAddress",
    "DeviceBusy",
    "Bus",
    "acquire",
    "release",
    "exception_error",
    "write_pdu",
]

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


class IllegalAddress(BadConfig):
    """Exception 02 on a read: some address of the request does not exist on the device."""


class DeviceBusy(DeviceUnavailable):
    """Exception 05 or 06: the device is alive but asks to be asked again later."""


def exception_error(code: int, what: str, writing: bool = False) -> DriverError:
    """The driver error for a Modbus exception response."""
    text = f"{what}: exception {code} ({EXCEPTION_CODES.get(code, 'unknown')})"
    if code == 2 and not writing:
        return IllegalAddress(text)
    if code in (1, 2, 3):
        return (WriteRejected if writing else BadConfig)(text)
    if code == 11:
        return DeviceTimeout(text)
    if code in (5, 6):
        return DeviceBusy(text)
    return DeviceUnavailable(text)


_NORMAL = PRIORITY_RANK["normal"]


class _Connection(asyncio.Protocol):
    """The TCP stream: answers are matched to the one request in flight by transaction id."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._tid = 0
        self._waiter: asyncio.Future[bytes] | None = None
        self._deadline = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self.lost: Exception | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buf += data
        try:
            messages, used = split(self._buf)
        except FrameError as exc:
            self._fail(DeviceUnavailable(f"garbled stream: {exc}"))
            return
        del self._buf[:used]
        for tid, _unit, pdu in messages:
            w = self._waiter
            if w is not None and not w.done() and tid == self._tid:
                w.set_result(pdu)
            else:
                self.bus.stray += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(DeviceUnavailable(f"connection lost: {exc or 'closed by the device'}"))

    def _fail(self, exc: Exception) -> None:
        self.lost = exc
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.transport is not None:
            self.transport.abort()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    async def request(self, unit: int, pdu: bytes, timeout_s: float) -> bytes:
        """Send one request and wait for its answer (the caller holds the bus lock)."""
        if self.lost is not None or self.transport is None:
            raise DeviceUnavailable(str(self.lost or "not connected"))
        loop = asyncio.get_running_loop()
        self._tid = (self._tid % 0xFFFF) + 1
        waiter = self._waiter = loop.create_future()
        self._deadline = loop.time() + timeout_s
        # One timer per connection, re-armed when it fires, instead of one per request:
        # polling back to back, a request costs a deadline, not a timer-heap entry.
        if self._timer is None or self._timer.when() > self._deadline:
            if self._timer is not None:
                self._timer.cancel()  # a unit with a shorter timeout on the same bus
            self._timer = loop.call_at(self._deadline, self._check_deadline)
        self.transport.write(frame(self._tid, unit, pdu))
        try:
            return await waiter
        finally:
            self._waiter = None

    def _check_deadline(self) -> None:
        self._timer = None
        waiter = self._waiter
        if waiter is None or waiter.done():
            return  # idle: the next request arms a timer again
        loop = asyncio.get_running_loop()
        if loop.time() >= self._deadline:
            waiter.set_exception(TimeoutError())
        else:
            self._timer = loop.call_at(self._deadline, self._check_deadline)


class Bus:
    """One TCP connection to a gateway, shared by the unit ids behind it."""

    def __init__(self, host: str, port: int, timeout_s: float):
        self.key = (host, port)
        self.timeout_s = timeout_s
        self.lock = PriorityLock()  # one transaction in flight, higher priority first
        self.users = 0
        self.requests = 0
        self.stray = 0  # answers to no request in flight (late, or duplicated)
        self.connects = 0  # TCP connections opened, over the bus's life
        self._connecting = asyncio.Lock()
        self._conn: _Connection | None = None

    def counters(self) -> dict[str, int]:
        """Anomalies of this gateway's connections, summed over reconnects."""
        return {
            "stray_answers": self.stray,
            "connects": self.connects,
            "overtaken": self.lock.served_out_of_order,
        }

    @property
    def where(self) -> str:
        return f"modbus {self.key[0]}:{self.key[1]}"

    async def ensure_connected(self) -> None:
        """Open the connection unless it is open; DeviceUnavailable names why it is not."""
        if self._conn is not None and self._conn.lost is None:
            return
        # Units behind one gateway connect at once at start-up: one opens, the others wait
        # for it, so the gateway sees a single connection.
        async with self._connecting:
            if self._conn is not None and self._conn.lost is None:
                return
            self.close()
            loop = asyncio.get_running_loop()
            try:
                async with asyncio.timeout(self.timeout_s):
                    _t, conn = await loop.create_connection(lambda: _Connection(self), *self.key)
            except TimeoutError:
                msg = f"{self.where}: no connection within {self.timeout_s} s"
                raise DeviceTimeout(msg) from None
            except OSError as exc:
                raise DeviceUnavailable(f"{self.where}: {exc.strerror or exc}") from None
            self.connects += 1
            self._conn = conn

    async def _call(self, unit: int, pdu: bytes, timeout_s: float, what: str, rank: int) -> bytes:
        async with self.lock.holding(rank):
            await self.ensure_connected()
            assert self._conn is not None
            self.requests += 1
            try:
                return await self._conn.request(unit, pdu, timeout_s)
            except TimeoutError:
                # A late answer would be taken for the next request's: start afresh.
                self.close()
                raise DeviceTimeout(f"{what}: no answer within {timeout_s} s") from None
            except DeviceUnavailable as exc:
                self.close()
                raise DeviceUnavailable(f"{what}: {exc}") from None

    async def read(
        self,
        table: str,
        address: int,
        count: int,
        unit: int,
        timeout_s: float,
        what: str,
        rank: int = _NORMAL,
    ) -> list[int] | list[bool]:
        """Registers or bits of one read; the driver error for any failure."""
        fc = READ_FC[table]
        pdu = read_request(table, address, count)
        answer = await self._call(unit, pdu, timeout_s, what, rank)
        return _parsed(lambda: parse_read(answer, fc, count), what, self)

    async def write(
        self, pdu: bytes, unit: int, timeout_s: float, what: str, rank: int = _NORMAL
    ) -> None:
        """One write request (from ``write_pdu``); the driver error for a refusal."""
        answer = await self._call(unit, pdu, timeout_s, what, rank)
        _parsed(lambda: parse_write(answer, pdu), what, self, writing=True)

    def close(self) -> None:
        """Drop the connection (the next request opens a new one)."""
        conn, self._conn = self._conn, None
        if conn is not None and conn.transport is not None:
            conn.transport.abort()


def write_pdu(table: str, address: int, values: list[int] | bool) -> bytes:
    """The request PDU writing a coil (bool) or holding registers (list of words)."""
    if table == "coil":
        return write_coil_request(address, bool(values))
    return write_registers_request(address, list(values))  # type: ignore[arg-type]


def _parsed(parse: Any, what: str, bus: Bus, writing: bool = False) -> Any:
    try:
        return parse()
    except ExceptionResponse as exc:
        raise exception_error(exc.code, what, writing) from None
    except FrameError as exc:
        bus.close()  # an answer that is not one: the stream is not to be trusted
        raise DeviceUnavailable(f"{what}: bad answer: {exc}") from None


_BUSES: Shared[Bus] = Shared("modbus")


def acquire(host: str, port: int, timeout_s: float) -> Bus:
    """The loop's bus for ``host:port`` (created on first use), with one more user."""
    return _BUSES.acquire((host, port), lambda: Bus(host, port, timeout_s))


def release(bus: Bus) -> None:
    """One user less; the last one closes the connection."""
    if _BUSES.release(bus):
        bus.close()
