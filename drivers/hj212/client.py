"""HJ 212 driver: frames arrive on a shared TCP listener, routed by MN, drained on read.

A connection is read one CRLF-terminated frame at a time; a bad frame is counted and
skipped (the next CRLF resynchronises), a line longer than any frame can be closes the
connection. Replies (CN 9014) go back on the same connection when the frame asks, and
only once the frame's rows are committed to the agent's disk buffer (no reply when they
are not: the monitor resends).
"""

from __future__ import annotations

import asyncio
import logging

from contracts.config import DeviceConfig
from drivers.hj212.codec import FrameError, Hj212Frame, build_reply, decode_frame
from drivers.hj212.config import Hj212Settings, frame_rows, settings_for
from drivers.listener import Listener, ListenerPool, default_pool
from drivers.push import PushDriver

__all__ = ["Hj212Driver", "serve_connection"]

log = logging.getLogger(__name__)


class Hj212Driver(PushDriver):
    """A dust/noise monitor pushing HJ 212-2017 frames to the agent's listener."""

    def __init__(self, device: DeviceConfig, pool: ListenerPool | None = None):
        self.settings: Hj212Settings = settings_for(device)
        s = self.settings
        pool = pool or default_pool()
        listener = pool.attach("hj212", s.host, s.port, s.mn, self, serve_connection)
        super().__init__(device, listener, s.max_buffered, s.stale_s)

    def _ident(self) -> str:
        return f"MN {self.settings.mn}"

    def accept(self, frame: Hj212Frame) -> asyncio.Future[bool] | None:
        """Take one decoded frame routed to this device; a future while its rows commit."""
        self.seen()
        try:
            rows = frame_rows(frame, self.settings, self.device.id, self.device.kind)
        except FrameError as exc:
            self.reject(str(exc))
            log.warning("%s: unusable frame: %s", self.device.id, exc)
            return None
        return self.push(rows)


async def _read_frame(reader: asyncio.StreamReader) -> bytes:
    try:
        return await reader.readuntil(b"\r\n")
    except asyncio.LimitOverrunError:
        raise ConnectionError("line longer than any HJ 212 frame") from None


async def serve_connection(
    listener: Listener, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Read frames from one monitor connection until it closes."""
    peer = writer.get_extra_info("peername")
    while True:
        try:
            raw = await _read_frame(reader)
        except ConnectionError as exc:
            listener.bad_frame(str(exc), peer)
            return
        listener.counters["frames"] += 1
        try:
            frame = decode_frame(raw.lstrip(b"\r\n\x00 "))
        except FrameError as exc:
            listener.bad_frame(str(exc), peer)
            continue
        driver = listener.routes.get(frame.mn)
        if driver is None:
            listener.unknown(frame.mn, peer)
            continue
        committed = driver.accept(frame)
        reply = build_reply(frame)
        # Waiting here also holds back this connection's next frames: replies stay in order.
        if reply is not None and await listener.durable(committed):
            writer.write(reply)
            await writer.drain()
            listener.counters["replies"] += 1
            driver.counters["replies"] += 1
