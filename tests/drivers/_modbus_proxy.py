"""A loopback TCP proxy in front of a Modbus TCP server that watches the wire.

It parses MBAP frames both ways and records, per client connection, the unit id of
every request in the order it reached the server and the most requests outstanding
(sent, not yet answered) at any moment. ``hold()`` keeps requests from going on to
the server until ``release()``: the line is busy, and what queues behind it can be seen.
"""

from __future__ import annotations

import asyncio
import contextlib

from drivers.modbus.mbap import split

__all__ = ["ModbusProxy"]


class ModbusProxy:
    """Forwards client connections to ``upstream`` (host, port), frame by frame."""

    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.port = 0
        self.connections = 0
        self.units: list[int] = []  # unit id of each request, in the order forwarded
        self.received = 0  # requests received from clients (held ones included)
        self.outstanding = 0
        self.max_outstanding = 0
        self._open = asyncio.Event()
        self._open.set()
        self._arrived = asyncio.Condition()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def endpoint(self) -> str:
        return f"modbus://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        me = asyncio.current_task()
        tasks = [t for t in self._tasks if t is not me]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    def hold(self) -> None:
        """Keep requests from reaching the server (the line is busy)."""
        self._open.clear()

    def release(self) -> None:
        """Let requests through again."""
        self._open.set()

    async def wait_received(self, n: int, timeout_s: float = 30.0) -> None:
        """Until ``n`` requests in all have reached the proxy."""
        async with asyncio.timeout(timeout_s):
            async with self._arrived:
                await self._arrived.wait_for(lambda: self.received >= n)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        me = asyncio.current_task()
        if me is not None:
            self._tasks.add(me)
        up_r, up_w = await asyncio.open_connection(*self.upstream)
        back = asyncio.create_task(self._answers(up_r, writer))
        self._tasks.add(back)
        try:
            buf = bytearray()
            while data := await reader.read(4096):
                buf += data
                messages, used = split(buf)
                raw = bytes(buf[:used])
                del buf[:used]
                # every request that has arrived counts as outstanding at once, held or not
                self.outstanding += len(messages)
                self.max_outstanding = max(self.max_outstanding, self.outstanding)
                async with self._arrived:
                    self.received += len(messages)
                    self._arrived.notify_all()
                offset = 0
                for _tid, unit, pdu in messages:
                    size = 7 + len(pdu)
                    chunk, offset = raw[offset : offset + size], offset + size
                    await self._open.wait()
                    self.units.append(unit)
                    up_w.write(chunk)
                    await up_w.drain()
        except asyncio.CancelledError:
            pass  # stop(): the handler's end is the connection's end
        finally:
            back.cancel()
            up_w.close()
            writer.close()

    async def _answers(self, up_r: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = bytearray()
        while data := await up_r.read(4096):
            buf += data
            messages, used = split(buf)
            del buf[:used]
            self.outstanding -= len(messages)
            writer.write(data)
            await writer.drain()
