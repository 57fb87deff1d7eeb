"""JT/T 808 vehicle terminals, device side: register, authenticate, report, buffer, batch.

Each terminal opens its own TCP connection to the agent's listener, registers (0x0100 →
0x8100 with an auth code), authenticates (0x0102 → 0x8001) and then sends a location
report (0x0200) every ``interval_s`` and a heartbeat (0x0002) when it has been quiet for
``heartbeat_s``. In a blind area (fault ``blind_area``) fixes are buffered (bounded, the
oldest dropped and counted); when coverage returns the terminal sends its live fix first
and then the buffered ones as 0x0704 batches of type 1 (blind-area supplement), so they
arrive late and out of order with respect to wall time, as real terminals do. Fixes follow
the simulated clock (interval in simulated seconds, fix times its stamps); reply timeouts,
heartbeats and reconnect backoff are wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
import time
from collections import deque
from collections.abc import Callable

from hardware.sim import jt808_codec as jt
from hardware.sim.clock import SimClock
from hardware.sim.trucks import TruckModel

__all__ = ["JT808Device", "OVERSPEED_KMH"]

log = logging.getLogger(__name__)

OVERSPEED_KMH = 60.0  # the terminal's own overspeed alarm threshold (alarm bit 1)
_BATCH = 20  # points per 0x0704 message (keeps the body under the 1023-byte limit)


class JT808Device:
    """One truck's terminal: a TCP client speaking the 2013 (or 2019) header."""

    def __init__(
        self,
        truck: TruckModel,
        phone: str,
        host: str,
        port: int,
        *,
        interval_s: float = 20.0,
        heartbeat_s: float = 60.0,
        version: int | None = None,
        reply_timeout_s: float = 5.0,
        is_offline: Callable[[str], bool] = lambda _: False,
        max_blind: int = 2000,
        clock: SimClock | None = None,
    ):
        self.truck = truck
        self.clock = clock if clock is not None else SimClock()
        self.phone = phone
        self.host, self.port = host, port
        self.interval_s, self.heartbeat_s = interval_s, heartbeat_s
        self.version = version
        self.reply_timeout_s = reply_timeout_s
        self.is_offline = is_offline
        self.rng = random.Random(f"jt808/{phone}")
        self.blind: deque[bytes] = deque()
        self.max_blind = max_blind
        self.auth_code: bytes | None = None
        self.serial = 0
        self.sent = self.acked = self.batches = self.blind_dropped = self.connects = 0
        self.refused = self.reports = 0
        self._replies: dict[int, asyncio.Future[jt.Message]] = {}

    @property
    def device_id(self) -> str:
        """The inventory id of the truck."""
        return self.truck.veh.id

    def fix(self, now: float) -> bytes:
        """Step the truck to simulated time ``now`` and encode its fix as a location body."""
        self.truck.step(now)
        s = self.truck.state(now)
        status = jt.STATUS_FIX | jt.STATUS_ACC  # engine on while in service
        if s["cover_open"]:
            status |= jt.STATUS_COVER
        alarm = jt.ALARM_OVERSPEED if float(s["speed"]) > OVERSPEED_KMH else 0
        return jt.location_body(
            lat=float(s["lat"]),
            lon=float(s["lon"]),
            speed_kmh=float(s["speed"]),
            heading=float(s["heading"]),
            when=self.clock.stamp(now),
            alarm=alarm,
            status=status,
            odometer_km=float(s["odometer"]),
        )

    async def run(self) -> None:
        """Connect, register, authenticate and report forever; reconnect with backoff."""
        # Terminals are not in step: each powers up at its own moment within an interval.
        await asyncio.sleep(self.clock.wall_s(self.rng.uniform(0, self.interval_s)))
        backoff = 1.0
        while True:
            if self.is_offline(self.device_id):
                self.truck.step(self.clock.now())  # the truck drives on with its tracker dead
                await asyncio.sleep(0.2)
                continue
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError:
                await asyncio.sleep(backoff * self.rng.uniform(0.8, 1.2))
                backoff = min(60.0, backoff * 2)
                continue
            self.connects += 1
            listen = asyncio.create_task(self._listen(reader))
            try:
                if await self._login(writer):
                    backoff = 1.0
                    await self._report(writer, listen)
                else:
                    await asyncio.sleep(backoff)
                    backoff = min(60.0, backoff * 2)
            except (OSError, ConnectionError, TimeoutError):
                pass
            finally:
                listen.cancel()
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()

    async def _send(self, writer: asyncio.StreamWriter, msg_id: int, body: bytes) -> int:
        serial = self.serial
        self.serial = (self.serial + 1) & 0xFFFF
        writer.write(jt.encode(msg_id, self.phone, serial, body, self.version))
        await writer.drain()
        self.sent += 1
        return serial

    async def _request(self, writer: asyncio.StreamWriter, msg_id: int, body: bytes) -> jt.Message:
        fut: asyncio.Future[jt.Message] = asyncio.get_running_loop().create_future()
        self._replies[self.serial] = fut
        serial = await self._send(writer, msg_id, body)
        try:
            return await asyncio.wait_for(fut, self.reply_timeout_s)
        finally:
            self._replies.pop(serial, None)

    async def _login(self, writer: asyncio.StreamWriter) -> bool:
        if self.auth_code is None:
            reg = jt.register_body(self.truck.veh.plate, self.phone[-7:], self.version)
            reply = await self._request(writer, 0x0100, reg)
            if reply.msg_id != 0x8100 or len(reply.body) < 3 or reply.body[2] != 0:
                self.refused += 1
                log.warning("%s: registration refused: %s", self.phone, reply.body[2:3].hex())
                return False
            self.auth_code = reply.body[3:]
        reply = await self._request(
            writer, 0x0102, jt.auth_body(self.auth_code, "86" + self.phone, self.version)
        )
        ok = reply.msg_id == 0x8001 and len(reply.body) >= 5 and reply.body[4] == 0
        if not ok:
            self.auth_code = None  # register again next time
            self.refused += 1
        return ok

    async def _report(self, writer: asyncio.StreamWriter, listen: asyncio.Task[None]) -> None:
        clock = self.clock
        last_sent = time.monotonic()
        next_at = clock.now()
        while not listen.done():
            now = clock.now()
            if self.is_offline(self.device_id):
                return
            body = self.fix(now)
            if any(f.kind == "blind_area" and f.active(now) for f in self.truck.faults):
                if len(self.blind) >= self.max_blind:
                    self.blind.popleft()
                    self.blind_dropped += 1
                self.blind.append(body)
            else:
                await self._send(writer, 0x0200, body)
                self.reports += 1
                while self.blind:  # live fix first, then the backlog: late and out of order
                    items = [self.blind.popleft() for _ in range(min(_BATCH, len(self.blind)))]
                    batch = struct.pack(">HB", len(items), 1) + b"".join(
                        struct.pack(">H", len(b)) + b for b in items
                    )
                    await self._send(writer, 0x0704, batch)
                    self.batches += 1
                last_sent = time.monotonic()
            if time.monotonic() - last_sent >= self.heartbeat_s and not self.blind:
                await self._send(writer, 0x0002, b"")
                last_sent = time.monotonic()
            next_at = max(next_at + self.interval_s, now)  # a late loop does not burst
            await clock.sleep_until(next_at)

    async def _listen(self, reader: asyncio.StreamReader) -> None:
        buf = b""
        while chunk := await reader.read(4096):
            buf += chunk
            *frames, buf = buf.split(b"\x7e")
            for raw in frames:
                if not raw:
                    continue
                try:
                    msg = jt.decode(raw)
                except ValueError:
                    continue
                if len(msg.body) >= 2:
                    ack = struct.unpack(">H", msg.body[:2])[0]
                    fut = self._replies.get(ack)
                    if fut is not None and not fut.done():
                        fut.set_result(msg)
                    elif msg.msg_id == 0x8001:
                        self.acked += 1
            if len(buf) > 65536:
                buf = b""  # garbage without flags: resynchronise
