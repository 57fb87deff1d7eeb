"""The agent's MQTT connection: paho in its own thread, events handed to asyncio.

paho runs its network loop in a thread and reconnects by itself; every callback is
forwarded to the event loop with ``call_soon_threadsafe`` so the rest of the agent is
plain single-threaded asyncio. The agent's retained status is "online" on each connect
and "offline" through the last will (or on a clean stop).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from contracts import topics
from contracts.config import BrokerConfig
from contracts.mqtt import make_client

__all__ = ["MqttLink"]

log = logging.getLogger(__name__)


class MqttLink:
    """One paho client shared by telemetry, availability, status and commands."""

    def __init__(self, broker: BrokerConfig, agent_id: str):
        self.broker = broker
        self.agent_id = agent_id
        self.status_topic = topics.agent_status(agent_id)
        self.connected = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._subs: dict[str, Callable[[bytes], None]] = {}
        self.on_puback: Callable[[int], None] = lambda mid: None
        self.on_connected: list[Callable[[], None]] = []
        self.connects = 0
        self.disconnects = 0
        self._client = make_client(
            broker, f"rg-agent-{agent_id}", will=(self.status_topic, b"offline")
        )
        # Field gateways sit on flaky links: come back quickly once the broker is back.
        self._client.reconnect_delay_set(min_delay=1, max_delay=5)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._client.on_message = self._on_message

    # paho thread -------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if rc.is_failure:
            log.warning("broker %s refused the connection: %s", self.broker.url, rc)
            return
        client.publish(self.status_topic, b"online", qos=1, retain=True)
        for topic in self._subs:
            client.subscribe(topic, qos=1)
        self._loop.call_soon_threadsafe(self._set_connected)

    def _on_disconnect(self, *_args: Any) -> None:
        self._loop.call_soon_threadsafe(self._set_disconnected)

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, *_rest: Any) -> None:
        self._loop.call_soon_threadsafe(self.on_puback, mid)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        handler = self._subs.get(msg.topic)
        if handler is not None:
            self._loop.call_soon_threadsafe(handler, bytes(msg.payload))

    # event loop ------------------------------------------------------------------
    def _set_connected(self) -> None:
        self.connects += 1
        self.connected.set()
        log.info("agent %s connected to %s", self.agent_id, self.broker.url)
        for cb in self.on_connected:
            cb()

    def _set_disconnected(self) -> None:
        if self.connected.is_set():
            self.disconnects += 1
            log.warning("agent %s lost the broker %s", self.agent_id, self.broker.url)
        self.connected.clear()

    def subscribe(self, topic: str, handler: Callable[[bytes], None]) -> None:
        """Call ``handler(payload)`` on the event loop for each message on ``topic``."""
        self._subs[topic] = handler
        if self.connected.is_set():
            self._client.subscribe(topic, qos=1)

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> int:
        """Hand a message to paho (kept and resent by paho until acknowledged); its mid."""
        return self._client.publish(topic, payload, qos=qos, retain=retain).mid

    def start(self) -> None:
        """Start connecting in the background; paho keeps retrying."""
        self._client.connect_async(
            self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s
        )
        self._client.loop_start()

    async def stop(self, timeout_s: float = 2.0) -> None:
        """Publish "offline" (retained), disconnect and stop paho's thread."""
        if self.connected.is_set():
            info = self._client.publish(self.status_topic, b"offline", qos=1, retain=True)
            try:
                await asyncio.to_thread(info.wait_for_publish, timeout_s)
            except (RuntimeError, ValueError):
                pass  # the broker went away meanwhile; the last will says the same
        self._client.disconnect()
        await asyncio.to_thread(self._client.loop_stop)
        self.connected.clear()
