"""JT/T 808 driver: terminals connect to a shared TCP listener, routed by phone number.

Every 0x7e-delimited chunk of the stream is one frame candidate (back-to-back flags give
empty chunks, which are skipped, so shared or doubled flags both work). The platform
answers on the same connection: 0x8100 to a registration, 0x8001 to everything else
(0 ok, 1 failed, 2 bad message, 3 unsupported). A frame whose header cannot be decoded
gets no reply (there is no serial to answer) and is counted on the listener. A location
is answered only once its rows are committed to the agent's disk buffer; when they are
not, the terminal gets no reply and resends (its retransmission is for exactly that).
"""

from __future__ import annotations

import asyncio
import logging

from contracts.config import DeviceConfig
from drivers.jt808 import messages as m
from drivers.jt808.codec import FrameError, Jt808Frame, decode_frame, encode_frame
from drivers.jt808.config import Jt808Settings, auth_code_for, location_rows, settings_for
from drivers.listener import Listener, ListenerPool, default_pool
from drivers.push import PushDriver

__all__ = ["Jt808Driver", "serve_connection"]

log = logging.getLogger(__name__)

OK, FAILED, BAD_MESSAGE, UNSUPPORTED = 0, 1, 2, 3
_NO_SUCH_TERMINAL = 4


class Jt808Driver(PushDriver):
    """A vehicle terminal speaking JT/T 808 to the agent's listener."""

    def __init__(self, device: DeviceConfig, pool: ListenerPool | None = None):
        self.settings: Jt808Settings = settings_for(device)
        s = self.settings
        pool = pool or default_pool()
        listener = pool.attach("jt808", s.host, s.port, s.phone, self, serve_connection)
        super().__init__(device, listener, s.max_buffered, s.stale_s)
        self.authenticated = False

    def _ident(self) -> str:
        return f"phone {self.settings.phone}"

    def accept(self, frame: Jt808Frame) -> tuple[int, asyncio.Future[bool] | None]:
        """Handle one frame of this terminal: the general reply's result code, and the
        future of its rows' commit (None: nothing to wait for)."""
        self.seen()
        try:
            body = m.decode_body(frame)
        except FrameError as exc:
            self.reject(str(exc))
            log.warning("%s: bad 0x%04x body: %s", self.device.id, frame.msg_id, exc)
            return BAD_MESSAGE, None
        dev, kind = self.device.id, self.device.kind
        if frame.msg_id == m.LOCATION:
            return OK, self.push(location_rows(body, self.settings, dev, kind))
        if frame.msg_id == m.BATCH_LOCATION:
            rows = [
                r for loc in body["items"] for r in location_rows(loc, self.settings, dev, kind)
            ]
            return OK, self.push(rows)  # one commit for the batch: one reply covers it
        if frame.msg_id == m.AUTH:
            self.authenticated = body.get("auth_code") == auth_code_for(self.settings.phone)
            return (OK if self.authenticated else FAILED), None
        if frame.msg_id not in (m.HEARTBEAT, m.REGISTER):
            return UNSUPPORTED, None
        return OK, None


class _Replier:
    """Platform serial numbers and reply frames of one connection."""

    def __init__(self, listener: Listener, writer: asyncio.StreamWriter):
        self.listener = listener
        self.writer = writer
        self.serial = 0

    def send(self, frame: Jt808Frame, msg_id: int, body: bytes) -> None:
        self.serial = (self.serial + 1) & 0xFFFF
        self.writer.write(
            encode_frame(msg_id, frame.phone, self.serial, body, version=frame.version)
        )
        self.listener.counters["replies"] += 1


async def _reply(r: _Replier, frame: Jt808Frame, driver: Jt808Driver | None) -> None:
    if frame.msg_id == m.REGISTER:
        if driver is None:
            r.send(frame, m.REGISTER_REPLY, m.register_reply_body(frame.serial, 4, ""))
            return
        try:
            m.decode_body(frame)
        except FrameError as exc:
            driver.reject(str(exc))
            r.send(frame, m.GENERAL_REPLY, m.general_reply_body(frame.serial, frame.msg_id, 2))
            return
        driver.seen()
        code = auth_code_for(driver.settings.phone)
        r.send(frame, m.REGISTER_REPLY, m.register_reply_body(frame.serial, OK, code))
        driver.counters["replies"] += 1
        return
    result, committed = (FAILED, None) if driver is None else driver.accept(frame)
    if not await r.listener.durable(committed):
        return
    r.send(frame, m.GENERAL_REPLY, m.general_reply_body(frame.serial, frame.msg_id, result))
    if driver is not None:
        driver.counters["replies"] += 1


async def serve_connection(
    listener: Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Read frames from one terminal connection until it closes."""
    peer = writer.get_extra_info("peername")
    replier = _Replier(listener, writer)
    while True:
        try:
            chunk = await reader.readuntil(b"\x7e")
        except asyncio.LimitOverrunError:
            listener.bad_frame("no 0x7e flag within 16 KiB", peer)
            return
        if len(chunk) == 1:
            continue
        listener.counters["frames"] += 1
        try:
            frame = decode_frame(chunk[:-1])
        except FrameError as exc:
            listener.bad_frame(str(exc), peer)
            continue
        driver = listener.routes.get(frame.phone)
        if driver is None:
            listener.unknown(frame.phone, peer)
        await _reply(replier, frame, driver)
        await writer.drain()
