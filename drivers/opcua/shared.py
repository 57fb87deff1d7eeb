"""One subscription per session and publishing settings, carrying many devices' items.

OPC-UA answers one Publish request with the notifications of one subscription; a client
that keeps a single Publish in flight (asyncua does) starves a session of 400
subscriptions, and the server expires them (measured). So the devices of a session with
the same publishing interval and keep-alive share one subscription: each device adds its
monitored items under client handles of its own range, and one consumer task routes
every change by handle to the device's ChangeQueue. A device leaving deletes only its
items; the last one deletes the subscription.

Changes arrive through asyncua's iterator API (one bounded queue, no task per change).
If that queue ever overflows, asyncua drops the session (``OverflowPolicy.DISCONNECT``):
every device then reconnects and reads its values afresh, counted as a lost session,
instead of losing changes silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from asyncua import Client, ua
from asyncua.common.subscription import DataChangeEvent, OverflowPolicy, StatusChangeEvent

from drivers.opcua.monitor import ChangeQueue

__all__ = ["SharedSubscription", "QUEUE_MAX"]

log = logging.getLogger(__name__)
QUEUE_MAX = 200_000  # changes waiting for the router; it keeps up by far in practice


class SharedSubscription:
    """A subscription of one session whose monitored items belong to many devices."""

    def __init__(self, params: ua.CreateSubscriptionParameters):
        self.params = params
        self.sub: Any = None
        self.routes: dict[int, ChangeQueue] = {}
        self.queues: set[ChangeQueue] = set()
        self._next_handle = 1
        self._consumer: asyncio.Task[None] | None = None
        self.unrouted = 0  # changes for items already removed
        self.closing = False  # its last device left: new devices get a new subscription

    @property
    def last_publish_at(self) -> float | None:
        """Monotonic time of the last publish (data or keep-alive) the server sent."""
        return None if self.sub is None else self.sub.last_publish_at

    async def start(self, client: Client) -> None:
        """Create the subscription on the server and start routing its changes."""
        self.sub = await client.create_subscription(
            self.params, None, queue_maxsize=QUEUE_MAX, overflow=OverflowPolicy.DISCONNECT
        )
        self._consumer = asyncio.create_task(self._route(), name="opcua-route")

    async def _route(self) -> None:
        async for ev in self.sub:
            if isinstance(ev, DataChangeEvent):
                item = ev.data.monitored_item
                queue = self.routes.get(item.ClientHandle)
                if queue is None:
                    self.unrouted += 1
                    continue
                queue.change(item.ClientHandle, item.Value)
            elif isinstance(ev, StatusChangeEvent):
                for queue in self.queues:
                    queue.status_change(ev.notification.Status)

    def handles(self, n: int) -> int:
        """The first of ``n`` client handles reserved for one device."""
        first, self._next_handle = self._next_handle, self._next_handle + n
        return first

    async def add(
        self, queue: ChangeQueue, requests: list[ua.MonitoredItemCreateRequest]
    ) -> list[int | ua.StatusCode]:
        """Create a device's items (handles from :meth:`handles`); per item: server handle or
        the status the server refused it with."""
        if self.closing:
            raise ConnectionError("subscription closed by its last device")
        handles = [r.RequestedParameters.ClientHandle for r in requests]
        for h in handles:
            self.routes[h] = queue  # before the call: the first values may come at once
        self.queues.add(queue)
        try:
            results = await self.sub.create_monitored_items(requests)
        except BaseException:
            self.forget(queue, handles)
            raise
        for h, res in zip(handles, results):
            if isinstance(res, ua.StatusCode):
                self.routes.pop(h, None)
        return results

    def forget(self, queue: ChangeQueue, client_handles: list[int]) -> None:
        """Stop routing a device's items here."""
        for h in client_handles:
            if self.routes.get(h) is queue:
                del self.routes[h]
        self.queues.discard(queue)

    async def remove(
        self, queue: ChangeQueue, client_handles: list[int], server_handles: list[int]
    ) -> None:
        """Delete a device's items on the server (the subscription lives on for the others)."""
        self.forget(queue, client_handles)
        if server_handles:
            await self.sub.unsubscribe(server_handles)

    @property
    def empty(self) -> bool:
        """No device has items here any more."""
        return not self.queues

    async def close(self, delete: bool = True) -> None:
        """Stop routing and (on a live session) delete the subscription on the server."""
        if self._consumer is not None:
            self._consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._consumer
            self._consumer = None
        if delete and self.sub is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.sub.delete(), 2.0)
