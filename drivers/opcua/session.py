"""One OPC-UA session per server, shared by every device the agent reads from it.

A session per device does not scale: 400 cabinets behind one server are 400 secure
channels, 400 watchdogs and 400 publish loops, and a server restart brings 400 sessions
back at once (measured: a Python server stops activating sessions in time). Here the
devices of one endpoint (with the same security and user) share one session, and the
devices with the same publishing settings share one subscription on it
(``shared.SharedSubscription``); each device still adds, removes and loses its own
monitored items, so it starts, stops and fails on its own.

    device A ─┐                                             ┌─ items of A
    device B ─┼─ SharedSession ── Client ── subscription ───┼─ items of B
    device C ─┘   (generation n)  one watchdog, one publish └─ items of C

A lost session (watchdog, closed channel) is noted on the session; every device sees it
on its next read and reconnects through its supervisor. The first one back opens a new
session (generation n + 1); the others join it, and a device whose subscription belongs
to an older generation resubscribes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time

from asyncua import Client

from drivers.opcua.config import OpcUaSettings
from drivers.opcua.monitor import subscription_parameters
from drivers.opcua.security import apply_security
from drivers.opcua.shared import SharedSubscription
from drivers.shared import Shared

__all__ = ["SharedSession", "acquire", "release", "quiet_close", "stats", "RETRY_GAP_S"]

log = logging.getLogger(__name__)
RETRY_GAP_S = 1.0  # devices asking within this of a failed connect get its error at once


class SharedSession:
    """The session to one server for the devices that share its endpoint and security."""

    def __init__(self, settings: OpcUaSettings):
        self.endpoint = settings.endpoint
        self.security = settings.security
        self.timeout_s = settings.timeout_s
        self.client: Client | None = None
        self.generation = 0  # grows with every session opened
        self.lost: str | None = None
        self.users = 0
        self._lock = asyncio.Lock()
        self._namespaces: dict[str, int] = {}
        self._subs: dict[tuple[float, int], SharedSubscription] = {}
        self._failure: BaseException | None = None  # the last connect's error, and when
        self._failed_at = -math.inf
        self.connects = 0
        self.unrouted = 0  # changes of subscriptions already closed for items removed

    def counters(self) -> dict[str, int]:
        """Changes the server sent for monitored items no device had any more."""
        return {"unrouted_changes": self.unrouted + sum(s.unrouted for s in self._subs.values())}

    async def ensure(self) -> Client:
        """The live session's client, opening a new session when there is none."""
        async with self._lock:  # the devices of a server wait for one connect, not N
            if self.client is not None and self.lost is None:
                return self.client
            if self._failure is not None and time.monotonic() - self._failed_at < RETRY_GAP_S:
                # A dead server with 400 devices: one connect attempt, not 400.
                raise self._failure.with_traceback(None)
            old, self.client = self.client, None
            await self._drop_subscriptions()
            if old is not None:
                await quiet_close(old)
            # asyncua probes the server every watchdog interval and gives up on an answer
            # slower than that: a busy server must not cost every device its data.
            client = Client(
                self.endpoint,
                timeout=self.timeout_s,
                watchdog_intervall=max(1.0, self.timeout_s),
            )
            client.connection_lost_callback = self._on_lost
            self.connects += 1
            trust = None
            try:
                # asyncio.timeout, not wait_for: a connect failing as the timeout fires must
                # not leave an unretrieved task error behind (seen under load)
                async with asyncio.timeout(self.timeout_s * 2):
                    trust = await apply_security(client, self.security)
                    await client.connect()
            except BaseException as exc:
                await quiet_close(client)
                refused = trust.error() if trust is not None else None
                if refused is not None:  # a clear reason, not BadCertificateUntrusted alone
                    self._failure, self._failed_at = refused, time.monotonic()
                    raise refused from None
                if isinstance(exc, Exception):
                    self._failure, self._failed_at = exc, time.monotonic()
                raise
            self.client, self.lost, self._failure = client, None, None
            self._namespaces.clear()
            self.generation += 1
            return client

    async def namespace_index(self, uri: str) -> int:
        """Index of a namespace URI on this server (ValueError when it has none)."""
        if uri not in self._namespaces:
            assert self.client is not None
            self._namespaces[uri] = await self.client.get_namespace_index(uri)
        return self._namespaces[uri]

    async def subscription(self, settings: OpcUaSettings) -> SharedSubscription:
        """The session's subscription for the device's publishing settings (made on first use)."""
        async with self._lock:
            if self.client is None or self.lost is not None:
                raise ConnectionError(f"session lost: {self.lost or 'closed'}")
            key = (settings.publishing_ms, settings.keepalive_count)
            shared = self._subs.get(key)
            if shared is None or shared.closing:
                shared = SharedSubscription(subscription_parameters(settings))
                await shared.start(self.client)
                self._subs[key] = shared
            return shared

    async def leave(self, shared: SharedSubscription) -> None:
        """A device left ``shared``: delete it when it was the last."""
        key = next((k for k, v in self._subs.items() if v is shared), None)
        if key is None or not shared.empty:
            return  # others still use it, or another device is closing it already
        del self._subs[key]
        self.unrouted += shared.unrouted
        shared.closing = True
        await shared.close(delete=self.client is not None and self.lost is None)

    async def _drop_subscriptions(self) -> None:
        subs, self._subs = list(self._subs.values()), {}
        self.unrouted += sum(shared.unrouted for shared in subs)  # before any await
        for shared in subs:
            await shared.close(delete=False)  # they went with their session

    async def _on_lost(self, exc: Exception) -> None:
        # Called by asyncua's watchdog task: every device's next read reports it.
        self.lost = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        for shared in self._subs.values():
            for queue in shared.queues:
                queue.notify()  # devices awaiting pushes learn of the loss at once

    async def close(self) -> None:
        """End the session."""
        client, self.client = self.client, None
        await self._drop_subscriptions()
        if client is not None:
            await quiet_close(client)


_SESSIONS: Shared[SharedSession] = Shared("opcua")


def acquire(settings: OpcUaSettings) -> SharedSession:
    """The session for the device's endpoint and security, with one more user."""
    key = (settings.endpoint, settings.security, settings.timeout_s)
    return _SESSIONS.acquire(key, lambda: SharedSession(settings))


async def release(session: SharedSession) -> None:
    """One user less; the last one ends the session. A failed session (it holds no
    connection) stays registered: its failure spares the next device a try."""
    failed = session.client is None and session._failure is not None
    if _SESSIONS.release(session, keep=failed) and not failed:
        await session.close()


def stats() -> dict[str, int]:
    """Open sessions, their shared subscriptions and devices, for this event loop."""
    mine = _SESSIONS.mine()
    return {
        "sessions": sum(1 for v in mine if v.client is not None),
        "subscriptions": sum(len(v._subs) for v in mine),
        "devices": sum(v.users for v in mine),
    }


async def quiet_close(client: Client) -> None:
    """Disconnect; a dead session fails to, and the socket is gone either way."""
    try:
        await asyncio.wait_for(client.disconnect(), 2.0)
    except Exception:
        log.debug("disconnect failed", exc_info=True)
