"""HJ 212-2017 dust monitors, device side: each pushes frames to the agent's TCP listener.

A device is a separate program from the platform, so this module has its own encoder:
``##`` + 4-digit data length + data segment + CRC16 (4 hex digits) + CR LF. The CRC is the
standard's own (init 0xFFFF, each byte folded into the *high* byte's position, poly
0xA001), which is not the Modbus CRC; the standard's example frame (…``RtdInterval=30&&``
→ ``1C80``) is checked by the tests. Each device sends CN 2011 real-time frames every
``interval_s``, CN 2051 minute and CN 2061 hour frames with min/avg/max of the samples,
one data flag per pollutant code, waits for the CN 9014 reply when it asks for one (Flag
bit A) and retransmits, and reconnects with exponential backoff when the listener is down.
Frames are made on the simulated clock (intervals in simulated seconds) and carry its
stamps in QN and DataTime; reply timeouts and reconnect backoff are wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable
from datetime import datetime

from contracts.astro import CST
from hardware.profiles import load_profile
from hardware.sim.clock import SimClock
from hardware.sim.dust import DustModel

__all__ = ["hj212_crc", "encode_frame", "data_segment", "decode_frame", "HJ212Device"]

log = logging.getLogger(__name__)

_ST = "22"  # system type: ambient air quality (what the profile declares)
_PW = "123456"
_VERSION_2017 = 1 << 2  # Flag bits V5..V0 = 1 for HJ 212-2017


def hj212_crc(data: bytes) -> int:
    """The standard's CRC16 of a data segment."""
    reg = 0xFFFF
    for byte in data:
        reg = (reg >> 8) ^ byte
        for _ in range(8):
            reg = (reg >> 1) ^ 0xA001 if reg & 1 else reg >> 1
    return reg


def encode_frame(segment: str) -> bytes:
    """A whole frame around one data segment (ASCII; HJ 212 has no escaping)."""
    body = segment.encode("ascii")
    if len(body) > 9999:
        raise ValueError(f"HJ 212 data segment of {len(body)} bytes exceeds 9999")
    return b"##%04d%s%04X\r\n" % (len(body), body, hj212_crc(body))


def decode_frame(frame: bytes) -> dict[str, str]:
    """Header fields of a frame plus ``CP`` (raw); ValueError when length or CRC is wrong."""
    frame = frame.strip(b"\r\n")
    if not frame.startswith(b"##") or len(frame) < 10:
        raise ValueError("not an HJ 212 frame")
    n = int(frame[2:6])
    body, crc = frame[6 : 6 + n], frame[6 + n : 10 + n]
    if len(body) != n or int(crc, 16) != hj212_crc(body):
        raise ValueError("HJ 212 frame length or CRC mismatch")
    text = body.decode("ascii")
    head, _, cp = text.partition("CP=&&")
    out = dict(p.split("=", 1) for p in head.split(";") if "=" in p)
    out["CP"] = cp[:-2] if cp.endswith("&&") else cp
    return out


def data_segment(qn: str, cn: str, mn: str, flag: int, cp: str, st: str = _ST) -> str:
    """A data segment: QN;ST;CN;PW;MN;Flag;CP=&&...&&."""
    return f"QN={qn};ST={st};CN={cn};PW={_PW};MN={mn};Flag={flag};CP=&&{cp}&&"


def _qn(now: float) -> str:
    t = datetime.fromtimestamp(now, CST)
    return t.strftime("%Y%m%d%H%M%S") + f"{t.microsecond // 1000:03d}"


class HJ212Device:
    """One monitor's TCP client: frames, replies, retransmission, reconnect with backoff."""

    def __init__(
        self,
        model: DustModel,
        mn: str,
        host: str,
        port: int,
        *,
        interval_s: float = 20.0,
        minute_s: float = 60.0,
        hour_s: float = 3600.0,
        reply_timeout_s: float = 5.0,
        retries: int = 2,
        want_reply: bool = True,
        is_offline: Callable[[str], bool] = lambda _: False,
        max_backlog: int = 256,
        clock: SimClock | None = None,
    ):
        self.model = model
        self.clock = clock if clock is not None else SimClock()
        self.mn = mn
        self.host, self.port = host, port
        self.interval_s, self.minute_s, self.hour_s = interval_s, minute_s, hour_s
        self.reply_timeout_s, self.retries = reply_timeout_s, retries
        self.flag = _VERSION_2017 | (1 if want_reply else 0)
        self.is_offline = is_offline
        self.points = load_profile(model.mon.profile).points
        self.rng = random.Random(f"hj212/{mn}")
        # Frames made while the link is down wait here (oldest dropped when full, counted).
        self.backlog: deque[bytes] = deque()
        self._pending_frames = asyncio.Event()  # set while the backlog has frames
        self.max_backlog = max_backlog
        self.sent = self.acked = self.unacked = self.dropped = self.connects = 0
        self.frames = 0  # distinct frames sent (retransmissions not counted)
        self._windows: dict[str, list[dict[str, float]]] = {"2051": [], "2061": []}
        self._sent: dict[str, str] = {}  # DataTime of the last frame per CN
        self._pending: dict[str, asyncio.Future[None]] = {}
        self._writer: asyncio.StreamWriter | None = None

    # -- frames ------------------------------------------------------------------
    def _wire(self, key: str, value: float) -> float:
        p = next(p for p in self.points if p.key == key)
        return (value - p.offset) / p.scale

    def _fmt(self, key: str, value: float) -> str:
        digits = 4 if next(p for p in self.points if p.key == key).scale != 1 else 1
        return f"{self._wire(key, value):.{digits}f}"

    def realtime_frame(self, now: float) -> bytes:
        """A CN 2011 frame of the model's values and flags at simulated time ``now``."""
        values = self.model.state(now)
        flags = self.model.flags(now)
        for w in self._windows.values():
            w.append(values)
        parts = [f"DataTime={self._local(now):%Y%m%d%H%M%S}"]
        for p in self.points:
            parts.append(
                f"{p.code}-Rtd={self._fmt(p.key, values[p.key])},{p.code}-Flag={flags[p.key]}"
            )
        return self._frame("2011", now, ";".join(parts))

    def stats_frame(self, cn: str, now: float) -> bytes | None:
        """A CN 2051 (minute) or 2061 (hour) frame over the samples since the last one."""
        when = f"{self._local(now):%Y%m%d%H%M}00"
        if when == self._sent.get(cn):
            return None  # one frame per DataTime: a second would be a duplicate row downstream
        samples, self._windows[cn] = self._windows[cn], []
        if not samples:
            return None
        self._sent[cn] = when
        flags = self.model.flags(now)
        parts = [f"DataTime={when}"]
        for p in self.points:
            xs = [s[p.key] for s in samples]
            parts.append(
                f"{p.code}-Min={self._fmt(p.key, min(xs))},{p.code}-Avg="
                f"{self._fmt(p.key, sum(xs) / len(xs))},{p.code}-Max={self._fmt(p.key, max(xs))}"
                f",{p.code}-Flag={flags[p.key]}"
            )
        return self._frame(cn, now, ";".join(parts))

    def _local(self, now: float) -> datetime:
        return datetime.fromtimestamp(self.clock.stamp(now), CST)

    def _frame(self, cn: str, now: float, cp: str) -> bytes:
        return encode_frame(data_segment(_qn(self.clock.stamp(now)), cn, self.mn, self.flag, cp))

    def wake(self) -> None:
        """Look at the device's state now (it may have gone off the network)."""
        self._pending_frames.set()

    def _queue(self, frame: bytes) -> None:
        if len(self.backlog) >= self.max_backlog:
            self.backlog.popleft()
            self.dropped += 1
        self.backlog.append(frame)
        self._pending_frames.set()

    # -- connection --------------------------------------------------------------
    async def run(self) -> None:
        """Produce frames forever; connect, send and reconnect with backoff."""
        producer = asyncio.create_task(self._produce(), name=f"hj212-{self.mn}-produce")
        backoff = 1.0
        try:
            while True:
                if self.is_offline(self.model.mon.id):
                    await asyncio.sleep(0.2)
                    continue
                try:
                    reader, writer = await asyncio.open_connection(self.host, self.port)
                except OSError:
                    await asyncio.sleep(backoff * self.rng.uniform(0.8, 1.2))
                    backoff = min(60.0, backoff * 2)
                    continue
                backoff = 1.0
                self.connects += 1
                self._writer = writer
                listen = asyncio.create_task(self._listen(reader))
                try:
                    await self._send_loop(writer, listen)
                except (OSError, ConnectionError):
                    pass
                finally:
                    self._writer = None
                    listen.cancel()
                    writer.close()
                    with contextlib.suppress(Exception):
                        await writer.wait_closed()
        finally:
            producer.cancel()

    async def _produce(self) -> None:
        clock = self.clock
        start = clock.now()
        # Monitors are not in step: each has its own phase within the interval.
        next_rt = start + self.rng.uniform(0, self.interval_s)
        next_min, next_hour = start + self.minute_s, start + self.hour_s
        while True:
            now = clock.now()
            if not self.is_offline(self.model.mon.id):  # an unpowered device makes no data
                if now >= next_rt:
                    self._queue(self.realtime_frame(now))
                    next_rt += self.interval_s
                for cn, due in (("2051", next_min), ("2061", next_hour)):
                    if now >= due and (f := self.stats_frame(cn, now)) is not None:
                        self._queue(f)
            # a loop that fell behind (a fast clock under load) skips the periods it missed
            while now >= next_min:
                next_min += self.minute_s
            while now >= next_hour:
                next_hour += self.hour_s
            # At least 10 ms: an overloaded loop catches up without spinning.
            due = max(clock.wall_of(min(next_rt, next_min, next_hour)), clock.wall() + 0.01)
            await asyncio.sleep(due - clock.wall())

    async def _send_loop(self, writer: asyncio.StreamWriter, listen: asyncio.Task[None]) -> None:
        while not listen.done():
            if self.is_offline(self.model.mon.id):
                return  # drop off the network: the listener sees the connection close
            if not self.backlog:
                self._pending_frames.clear()
                await self._pending_frames.wait()  # the next frame, or wake()
                continue
            frame = self.backlog[0]
            qn = frame.split(b"QN=", 1)[1][:17].decode()
            self.frames += 1
            for _attempt in range(1 + (self.retries if self.flag & 1 else 0)):
                writer.write(frame)
                await writer.drain()
                self.sent += 1
                if not self.flag & 1:
                    break
                fut = asyncio.get_running_loop().create_future()
                self._pending[qn] = fut
                try:
                    await asyncio.wait_for(fut, self.reply_timeout_s)
                    self.acked += 1
                    break
                except TimeoutError:
                    continue
                finally:
                    self._pending.pop(qn, None)
            else:
                self.unacked += 1
            if self.backlog and self.backlog[0] is frame:
                self.backlog.popleft()

    async def _listen(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            try:
                msg = decode_frame(line)
            except ValueError:
                log.debug("%s: bad frame from platform: %r", self.mn, line[:80])
                continue
            fut = self._pending.get(msg.get("QN", ""))
            if msg.get("CN") == "9014" and fut is not None and not fut.done():
                fut.set_result(None)
