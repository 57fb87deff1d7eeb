"""MQTT tracker driver: its own paho client subscribed to the tracker's topic.

Fixes are decoded in paho's network thread and kept in a bounded deque (oldest dropped
first, counted) that read() drains; the supervisor polls it like any other device.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from typing import Any

import paho.mqtt.client as mqtt

from contracts.commands import CommandAction
from contracts.config import BrokerConfig, DeviceConfig
from contracts.mqtt import make_client
from contracts.telemetry import TelemetryRow
from drivers.base import DeviceTimeout, DeviceUnavailable, WriteRejected
from drivers.mqtt_tracker.codec import FixError, decode_fix
from drivers.mqtt_tracker.config import settings_for

__all__ = ["MqttTrackerDriver"]

log = logging.getLogger(__name__)


class MqttTrackerDriver:
    """A GPS tracker that publishes JSON fixes on its own topic."""

    actions: frozenset[CommandAction] = frozenset()

    def __init__(self, device: DeviceConfig, broker: BrokerConfig):
        self.device = device
        self.broker = broker
        self.settings = settings_for(device)
        self._rows: deque[list[TelemetryRow]] = deque()
        self._lock = threading.Lock()
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self._counters = {"fixes": 0, "bad_fixes": 0, "dropped_fixes": 0}
        self.last_error = ""

    def stats(self) -> dict[str, int]:
        """Fixes received, rejected and dropped."""
        with self._lock:
            return dict(self._counters)

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if not rc.is_failure:
            client.subscribe(self.settings.topic, qos=1)
            self._connected.set()

    def _on_disconnect(self, *_args: Any) -> None:
        self._connected.clear()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            rows = decode_fix(msg.payload, self.settings.profile, self.device.id, self.device.kind)
        except FixError as exc:
            with self._lock:
                self._counters["bad_fixes"] += 1
                self.last_error = str(exc)
            log.debug("%s: bad fix: %s", self.device.id, exc)
            return
        with self._lock:
            self._counters["fixes"] += 1
            if len(self._rows) >= self.settings.max_buffered:
                self._rows.popleft()
                self._counters["dropped_fixes"] += 1
            self._rows.append(rows)

    async def connect(self) -> None:
        """Connect to the broker and subscribe; paho reconnects by itself afterwards."""
        if self._client is not None:
            if self._connected.is_set():
                return
            await self.close()
        client = make_client(self.broker, f"rg-trk-{self.device.id}")
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        try:
            client.connect_async(
                self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s
            )
        except (OSError, ValueError) as exc:
            raise DeviceUnavailable(f"{self.device.id}: broker {self.broker.url}: {exc}") from None
        client.loop_start()
        self._client = client
        ok = await asyncio.to_thread(self._connected.wait, self.device.timeout_s)
        if not ok:
            raise DeviceTimeout(
                f"{self.device.id}: broker {self.broker.url} not reached in {self.device.timeout_s} s"
            )

    async def read(self) -> list[TelemetryRow]:
        """Drain the fixes received since the last read."""
        if self._client is None:
            raise DeviceUnavailable(f"{self.device.id}: not connected")
        with self._lock:
            batches = list(self._rows)
            self._rows.clear()
        if not batches and not self._connected.is_set():
            raise DeviceUnavailable(f"{self.device.id}: broker connection lost")
        return [r for rows in batches for r in rows]

    async def write(self, key: str, value: float | bool) -> None:
        """Trackers have no writable points."""
        raise WriteRejected(f"{self.device.id}: tracker points are read-only")

    async def execute(self, action: CommandAction, params: dict[str, Any]) -> dict[str, float]:
        """Trackers take no commands."""
        raise WriteRejected(f"{self.device.id}: action {action} not supported")

    async def close(self) -> None:
        """Disconnect and stop paho's thread; safe to call twice."""
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            await asyncio.to_thread(client.loop_stop)
            self._connected.clear()
