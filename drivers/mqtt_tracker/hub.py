"""One MQTT connection for all the trackers of an agent, routing fixes by topic.

A client per tracker costs a TCP connection, a broker session and a network thread
each: at city scale (10,000+ trucks on one agent) that is 10,000 threads. The hub holds
one paho client per broker and event loop; each driver attaches its topic and gets the
messages of that topic handed to it (in paho's thread; the driver keeps its own bounded
buffer). The last driver to detach stops the client.

Durable mode (a ``session`` name, given by an agent): the hub keeps a persistent broker
session (stable client id, clean session off) and acknowledges each QoS 1 message itself
(paho's ``manual_ack``): the handler gets an ``ack`` callable to call once the message's
rows are committed to disk. A message never acked stays with the broker, which sends it
again on the session's next connection; :meth:`TrackerHub.redeliver` makes that
connection happen (at most every ``REDELIVER_AFTER_S``), and an agent killed before its
commit gets the message again when it comes back. A message for a topic no tracker has
attached yet is left unacked too (counted, redelivered): after a restart the broker sends
the backlog of every topic at once, before the later trackers' staggered first polls. An
agent attaches all its trackers before the first connects (``start=False``), and a
stopping agent keeps their subscriptions (``detach(unsubscribe=False)``) so the broker
keeps their fixes meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import paho.mqtt.client as mqtt

from contracts.config import BrokerConfig
from contracts.mqtt import make_client
from drivers.shared import Shared

__all__ = ["TrackerHub", "acquire", "call_soon", "release"]

log = logging.getLogger(__name__)
_SUBSCRIBE_CHUNK = 500  # topics per SUBSCRIBE packet when (re)connecting
REDELIVER_AFTER_S = 5.0
# Durable mode: how long after connecting a message for a topic nobody attached is left
# unacked (its tracker is still in its staggered first poll or its backoff). Later it is
# a stale subscription (a tracker removed while the agent was down): acked, unsubscribed.
UNROUTED_GRACE_S = 120.0

Ack = Callable[[], None]
Handler = Callable[[bytes, Ack | None], None]  # (payload, ack: None when already acked)


def call_soon(loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> bool:
    """Run ``fn`` on ``loop`` from paho's thread; False when the loop is closed (shutdown)."""
    if loop.is_closed():  # paho's thread may outlive the loop (a stopped agent, a test)
        return False
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:  # closed between the check and the call
        return False
    return True


class TrackerHub:
    """A shared paho client: topic -> handler, resubscribed on every reconnect."""

    def __init__(
        self, broker: BrokerConfig, loop: asyncio.AbstractEventLoop, session: str | None = None
    ):
        self.broker = broker
        self.session = session
        self.users = 0
        self._loop = loop
        self._routes: dict[str, Handler] = {}
        self._ready: dict[str, asyncio.Event] = {}  # set once the broker acked the topic
        self._pending: dict[int, list[str]] = {}  # SUBSCRIBE mid -> its topics
        self._lock = threading.Lock()
        self._up = False  # paho's view of the session, under the lock (see attach)
        self.connected = asyncio.Event()  # set on the event loop
        self.unrouted = 0  # messages for a tracker detached since the subscription
        self.unrouted_unacked = 0  # ... of them left unacked for redelivery (durable mode)
        self._started_t = 0.0
        self.reconnects_for_redelivery = 0
        self._redeliver: asyncio.TimerHandle | None = None
        self._cycling: asyncio.Task[None] | None = None
        self._client: mqtt.Client | None = None

    def _soon(self, fn: Callable[..., Any], *args: Any) -> None:
        call_soon(self._loop, fn, *args)

    def _subscribe(self, client: mqtt.Client, topics: list[str]) -> None:
        # called under the lock: the SUBACK must find its mid registered
        _rc, mid = client.subscribe([(t, 1) for t in topics])
        self._pending[mid] = topics

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if rc.is_failure:
            log.warning("broker %s refused the tracker hub: %s", self.broker.url, rc)
            return
        with self._lock:  # a topic attached from now on subscribes itself (attach)
            self._up = True
            topics = list(self._routes)
            for i in range(0, len(topics), _SUBSCRIBE_CHUNK):
                self._subscribe(client, topics[i : i + _SUBSCRIBE_CHUNK])
        self._soon(self.connected.set)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, mid: int, *_rest: Any) -> None:
        with self._lock:
            topics = self._pending.pop(mid, [])
        self._soon(self._acked, topics)

    def _acked(self, topics: list[str]) -> None:
        for t in topics:
            ev = self._ready.get(t)
            if ev is not None:
                ev.set()

    def _on_disconnect(self, *_args: Any) -> None:
        with self._lock:
            self._up = False
            self._pending.clear()
        self._soon(self._lost)

    def _lost(self) -> None:
        self.connected.clear()
        for ev in self._ready.values():
            ev.clear()

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        ack = partial(client.ack, msg.mid, msg.qos) if self.session and msg.qos else None
        handler = self._routes.get(msg.topic)
        if handler is None:
            self.unrouted += 1
            if ack is None:
                return
            if time.monotonic() - self._started_t < UNROUTED_GRACE_S:
                # Durable: the tracker may attach later (a restart's backlog arrives for
                # every topic at once); unacked, the broker sends it again on reconnect.
                self.unrouted_unacked += 1
                self._soon(self.redeliver)
                return
            ack()  # nobody came for it: a stale subscription that would block the session
            with self._lock:
                if msg.topic not in self._routes:
                    client.unsubscribe(msg.topic)
            return
        handler(msg.payload, ack)

    def counters(self) -> dict[str, int]:
        """Messages the broker delivered for no attached tracker; reconnects for redelivery."""
        return {
            "unrouted_messages": self.unrouted,
            "unrouted_unacked": self.unrouted_unacked,
            "reconnects_for_redelivery": self.reconnects_for_redelivery,
        }

    def redeliver(self) -> None:
        """Messages were left unacked: reconnect soon, so the broker sends them again."""
        if self._redeliver is None and self._client is not None:
            self._redeliver = self._loop.call_later(REDELIVER_AFTER_S, self._spawn_cycle)

    def _spawn_cycle(self) -> None:
        self._redeliver = None
        task = self._loop.create_task(self._cycle())
        self._cycling = task  # keep a reference until it is done

    async def _cycle(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        self.reconnects_for_redelivery += 1
        client.disconnect()
        await asyncio.to_thread(client.loop_stop)
        self._lost()
        if self.users > 0 and self._client is None:  # attach() may have started one meanwhile
            self._start()

    def attach(self, topic: str, handler: Handler, *, start: bool = True) -> asyncio.Event:
        """Route ``topic`` to ``handler``; the event is set once the broker acked it.

        ``start=False`` registers the route without connecting (see :meth:`start`): an
        agent attaches every tracker first, so a restart's backlog finds all its routes.
        """
        ready = self._ready.setdefault(topic, asyncio.Event())
        with self._lock:
            self._routes[topic] = handler
            if self._up and self._client is not None:
                self._subscribe(self._client, [topic])
        if start:
            self.start()
        return ready

    def start(self) -> None:
        """Connect unless connected (or connecting) already."""
        if self._client is None:
            self._start()

    def detach(self, topic: str, handler: Handler, *, unsubscribe: bool = True) -> None:
        """Stop routing ``topic`` to ``handler``; ``unsubscribe=False`` keeps the durable
        session's subscription (an agent stopping: the broker keeps the fixes meanwhile)."""
        with self._lock:
            if self._routes.get(topic) == handler:  # bound methods: equal, not identical
                del self._routes[topic]
            else:
                return
            self._ready.pop(topic, None)
            if unsubscribe and self._up and self._client is not None:
                self._client.unsubscribe(topic)

    def _start(self) -> None:
        if self.session:  # durable: the same session (and its unacked messages) every time
            client = make_client(
                self.broker, f"rg-trk-{self.session}", clean_start=False, manual_ack=True
            )
        else:
            client = make_client(self.broker, "rg-trk-hub")
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        self._started_t = time.monotonic()
        client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s)
        client.loop_start()
        self._client = client

    async def stop(self) -> None:
        """Disconnect and stop paho's thread."""
        if self._redeliver is not None:
            self._redeliver.cancel()
            self._redeliver = None
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
        self._lost()


_HUBS: Shared[TrackerHub] = Shared("tracker")


def acquire(broker: BrokerConfig, session: str | None = None) -> TrackerHub:
    """The running loop's hub for this broker (and durable session), with one more user."""
    loop = asyncio.get_running_loop()
    key = (broker.url, broker.username, session)
    return _HUBS.acquire(key, lambda: TrackerHub(broker, loop, session))


async def release(hub: TrackerHub) -> None:
    """One user less; the last one stops the hub."""
    if _HUBS.release(hub):
        await hub.stop()
