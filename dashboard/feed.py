"""The one background MQTT client of a dashboard process: feeds the live store, publishes
commands and alarm actions."""

from __future__ import annotations

import logging
import threading

import paho.mqtt.client as mqtt

from contracts import topics
from contracts.config import BrokerConfig
from contracts.mqtt import make_client
from dashboard.livestore import LiveStore

__all__ = ["LiveFeed", "PublishError"]

log = logging.getLogger("rongguan.dashboard.feed")

_ALARMS = topics.alarm("")
_ACKS = topics.command_ack("")
_AVAIL_PREFIX = f"{topics.ROOT}/devices/"
_TELE_PREFIX = f"{topics.ROOT}/tele/"


class PublishError(RuntimeError):
    """A message could not be handed to the broker (not connected, queue full)."""


class LiveFeed:
    """Subscribes to telemetry, availability, alarms and command acks; runs paho's own thread."""

    def __init__(
        self, broker: BrokerConfig, store: LiveStore, client_id: str = "rg-dashboard"
    ) -> None:
        self.store = store
        self.broker = broker
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self._client = make_client(broker, client_id)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_subscribe = self._on_subscribe
        self._client.on_message = self._on_message
        self._sub_mid: int | None = None
        self.errors = 0  # messages whose handling raised

    def start(self) -> None:
        """Connect asynchronously (retried by paho) and start the network thread."""
        self._client.connect_async(
            self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s
        )
        self._client.loop_start()

    def stop(self) -> None:
        """Disconnect and join the network thread."""
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()

    def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False) -> None:
        """Publish (thread-safe); raises :class:`PublishError` if the broker is not reachable."""
        if not self.connected.is_set():
            raise PublishError(f"not connected to the broker at {self.broker.url}")
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise PublishError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")

    def _on_connect(self, client: mqtt.Client, _ud, _flags, reason, _props) -> None:
        if reason.is_failure:
            log.warning("broker refused the dashboard: %s", reason)
            return
        self.connected.set()
        result, mid = client.subscribe([
            (topics.telemetry_filter(), 0),
            (topics.availability_filter(), 1),
            (topics.alarm_filter(), 1),
            (topics.command_ack_filter(), 1),
        ])  # fmt: skip
        self._sub_mid = mid
        log.info("dashboard connected to %s", self.broker.url)

    def _on_subscribe(self, _client, _ud, mid, _codes, _props) -> None:
        if mid == self._sub_mid:
            self.subscribed.set()

    def _on_disconnect(self, _client, _ud, _flags, reason, _props) -> None:
        self.connected.clear()
        self.subscribed.clear()
        log.warning("dashboard lost the broker (%s); paho reconnects", reason)

    def _on_message(self, _client, _ud, msg: mqtt.MQTTMessage) -> None:
        # Never let one bad message kill paho's thread: the store counts bad input.
        try:
            topic = msg.topic
            if topic.startswith(_TELE_PREFIX):
                self.store.apply_batch_payload(msg.payload)
            elif topic.startswith(_ALARMS):
                self.store.apply_alarm(topic[len(_ALARMS) :], msg.payload)
            elif topic.startswith(_ACKS):
                self.store.apply_ack(msg.payload)
            elif topic.startswith(_AVAIL_PREFIX) and topic.endswith("/availability"):
                self.store.apply_availability(
                    topic[len(_AVAIL_PREFIX) : -len("/availability")], msg.payload
                )
        except Exception:  # noqa: BLE001 - counted and logged; the feed must survive
            self.errors += 1
            log.exception("dashboard failed on a message on %s", msg.topic)
