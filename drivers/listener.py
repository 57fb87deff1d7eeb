"""Shared TCP listeners for devices that push (HJ 212, JT/T 808).

Many devices share one ``tcp://BIND:PORT`` endpoint, so the listener is not owned by a
driver: a :class:`ListenerPool` (one per agent) holds one asyncio server per endpoint,
and each driver attaches its identity (MN or phone number) as a route. Frames are routed
to the driver's ``accept`` method; frames for unknown identities and bad frames are
counted on the listener. A driver's close() never stops the listener (other devices, and
the same device after a reconnect, still need it); the pool is stopped by the agent.

Durable replies: when the agent sets the pool's ``commit`` hook, pushed rows go straight
to its outbox and a reply the frame asks for is sent only once :meth:`Listener.durable`
says the rows are committed to the disk buffer. It waits at most ``REPLY_WAIT_S`` and for
at most ``MAX_WAITING_REPLIES`` frames per listener; a refused, late or excess frame gets
no reply (counted as ``replies_withheld``) so the device sends it again, as its protocol's
retransmission intends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from drivers.base import BadConfig, CommitHook, DeviceUnavailable, RateLimitedLog

__all__ = [
    "Listener",
    "ListenerPool",
    "ConnectionHandler",
    "CommitHook",
    "default_pool",
    "REPLY_WAIT_S",
    "MAX_WAITING_REPLIES",
]

log = logging.getLogger(__name__)

REPLY_WAIT_S = 5.0  # below the usual device reply timeouts (HJ 212 and JT/T 808: 5-10 s)
MAX_WAITING_REPLIES = 4096


# (listener, reader, writer) -> runs until the peer goes away
ConnectionHandler = Callable[
    ["Listener", asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]
]


class Listener:
    """One TCP server on one endpoint for one protocol, routing by device identity."""

    def __init__(self, protocol: str, host: str, port: int, handler: ConnectionHandler):
        self.protocol = protocol
        self.host = host
        self.port = port
        self._handler = handler
        self.routes: dict[str, Any] = {}
        self.counters = {
            "connections": 0,
            "frames": 0,
            "bad_frames": 0,
            "unknown_ids": 0,
            "replies": 0,
            "replies_withheld": 0,  # rows not committed (refused, too slow, too many waiting)
        }
        self.last_error = ""
        self.commit: CommitHook | None = None
        self.waiting = 0  # frames whose reply waits for the disk
        self._withheld_log = RateLimitedLog(log, 30.0, logging.WARNING)
        self._server: asyncio.Server | None = None
        self._conns: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self._start_lock = asyncio.Lock()

    @property
    def running(self) -> bool:
        """True while the server accepts connections."""
        return self._server is not None and self._server.is_serving()

    def bad_frame(self, reason: str, peer: Any) -> None:
        """Count and log a rejected frame."""
        self.counters["bad_frames"] += 1
        self.last_error = reason
        log.warning("%s listener %s:%d: bad frame from %s: %s", *self._where(), peer, reason)

    def unknown(self, ident: str, peer: Any) -> None:
        """Count and log a frame from a device this agent does not own."""
        self.counters["unknown_ids"] += 1
        log.warning("%s listener %s:%d: unknown device %r from %s", *self._where(), ident, peer)

    async def durable(self, committed: asyncio.Future[bool] | None) -> bool:
        """Wait until a frame's rows are on disk; False: send the device no reply."""
        if committed is None:
            return True  # no rows in the frame, or no agent buffer behind this listener
        if self.waiting >= MAX_WAITING_REPLIES:
            ok = False
        else:
            self.waiting += 1
            try:
                # shielded: the future is the outbox's; a late reply must not cancel it
                # (asyncio.timeout: no extra task per frame, unlike wait_for)
                async with asyncio.timeout(REPLY_WAIT_S):
                    ok = await asyncio.shield(committed)
            except TimeoutError:
                ok = False
            finally:
                self.waiting -= 1
        if not ok:
            self.counters["replies_withheld"] += 1
            self._withheld_log(  # a full disk refuses every frame
                "%s listener %s:%d: rows not committed to the buffer, no reply sent (the "
                "device resends); %d replies withheld so far",
                *self._where(),
                self.counters["replies_withheld"],
            )
        return ok

    def _where(self) -> tuple[str, str, int]:
        return self.protocol, self.host, self.port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._conns[task] = writer
        self.counters["connections"] += 1
        try:
            await self._handler(self, reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception:  # one peer's bug must not take the listener down
            log.exception("%s listener %s:%d: connection handler failed", *self._where())
        finally:
            self._conns.pop(task, None)
            writer.close()

    async def start(self) -> None:
        """Bind (idempotent); DeviceUnavailable when the port cannot be bound."""
        async with self._start_lock:
            if self.running:
                return
            try:
                self._server = await asyncio.start_server(
                    self._serve, self.host, self.port, limit=16384
                )
            except OSError as exc:
                raise DeviceUnavailable(
                    f"{self.protocol} listener tcp://{self.host}:{self.port}: {exc}"
                ) from None
            if self.port == 0:  # tests bind to a free port and read it back
                self.port = self._server.sockets[0].getsockname()[1]
            log.info("%s listener on %s:%d", *self._where())

    async def stop(self) -> None:
        """Close the server and every open connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        # Closing the sockets ends the handlers by themselves (end of stream); cancelling
        # them instead makes asyncio's stream protocol log a CancelledError per connection.
        for writer in list(self._conns.values()):
            writer.close()
        if self._conns:
            _done, pending = await asyncio.wait(list(self._conns), timeout=2)
            for t in pending:
                t.cancel()
        if server is not None:
            await server.wait_closed()


class ListenerPool:
    """The listeners of one agent, one per (host, port)."""

    def __init__(self) -> None:
        self.listeners: dict[tuple[str, int], Listener] = {}
        #: Where pushed rows go to be committed before a reply (None: drivers buffer
        #: them); set before the first listener is attached, which takes it over.
        self.commit: CommitHook | None = None

    def attach(
        self,
        protocol: str,
        host: str,
        port: int,
        ident: str,
        route: Any,
        handler: ConnectionHandler,
    ) -> Listener:
        """Register a device route on the endpoint's listener (created on first use)."""
        lst = self.listeners.get((host, port))
        if lst is None:
            lst = self.listeners[(host, port)] = Listener(protocol, host, port, handler)
            lst.commit = self.commit
        elif lst.protocol != protocol:
            raise BadConfig(
                f"endpoint tcp://{host}:{port} is already a {lst.protocol} listener, "
                f"cannot also serve {protocol}"
            )
        other = lst.routes.get(ident)
        if other is not None and other is not route:
            raise BadConfig(f"{protocol} identity {ident!r} on tcp://{host}:{port} used twice")
        lst.routes[ident] = route
        return lst

    def forget(self, route: Any) -> None:
        """Remove every route to ``route`` (a driver the agent no longer runs)."""
        for lst in self.listeners.values():
            for ident in [i for i, r in lst.routes.items() if r is route]:
                del lst.routes[ident]

    async def prune(self) -> None:
        """Stop and drop the listeners no device routes to any more (their port is freed)."""
        for key, lst in list(self.listeners.items()):
            if not lst.routes:
                await lst.stop()
                del self.listeners[key]

    async def start(self) -> None:
        """Bind every listener; a port that cannot be bound is logged (its devices go offline)."""
        for lst in self.listeners.values():
            try:
                await lst.start()
            except DeviceUnavailable as exc:
                log.error("%s", exc)

    async def stop(self) -> None:
        """Stop every listener."""
        for lst in self.listeners.values():
            await lst.stop()

    def stats(self) -> dict[str, dict[str, int]]:
        """Counters per listener endpoint."""
        return {
            f"{lst.protocol}://{h}:{port}": dict(lst.counters)
            for (h, port), lst in self.listeners.items()
        }


_DEFAULT = ListenerPool()


def default_pool() -> ListenerPool:
    """The process-wide pool used when a driver is created without the agent's pool."""
    return _DEFAULT
