"""MQTT tracker driver: the tracker's topic on the agent's shared MQTT connection.

Fixes are decoded in paho's network thread (``hub.TrackerHub`` routes them by topic) and
kept in a bounded deque (oldest dropped first, counted) that read() drains; the
supervisor polls it like any other device.

Under an agent (:meth:`MqttTrackerDriver.use_commit`) the hub runs in durable mode: the
rows of a fix go straight to the agent's outbox, and the fix's PUBACK is sent only once
they are committed to disk. A fix the buffer refuses is not acked (counted); the broker
keeps it and sends it again on the hub's next connection (see ``hub``).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from functools import partial
from typing import Any

from contracts.commands import CommandAction
from contracts.config import BrokerConfig, DeviceConfig
from contracts.telemetry import TelemetryRow
from drivers.base import CommitHook, DeviceTimeout, DeviceUnavailable, WriteRejected
from drivers.mqtt_tracker import hub as hubs
from drivers.mqtt_tracker.codec import FixError, decode_fix
from drivers.mqtt_tracker.config import settings_for
from drivers.mqtt_tracker.hub import Ack

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
        self._hub: hubs.TrackerHub | None = None
        self._ready = asyncio.Event()
        self._counters = {"fixes": 0, "bad_fixes": 0, "dropped_fixes": 0, "acks_withheld": 0}
        self.last_error = ""
        self._session: str | None = None
        self._commit: CommitHook | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def use_commit(self, session: str, commit: CommitHook) -> None:
        """Durable mode: PUBACK a fix only once ``commit`` has its rows on disk.

        Called on the event loop, it attaches the topic at once without connecting, so the
        backlog the broker sends when the first tracker connects finds this one's route.
        """
        self._session, self._commit = session, commit
        if self._hub is None:
            self._loop = asyncio.get_running_loop()
            self._hub = hubs.acquire(self.broker, session)
            self._ready = self._hub.attach(self.settings.topic, self._on_payload, start=False)

    def stats(self) -> dict[str, int]:
        """Fixes received, rejected and dropped."""
        with self._lock:
            return dict(self._counters)

    def _on_payload(self, payload: bytes, ack: Ack | None = None) -> None:
        """In paho's thread: decode, then commit (durable mode) or keep for read()."""
        try:
            rows = decode_fix(payload, self.settings.profile, self.device.id, self.device.kind)
        except FixError as exc:
            with self._lock:
                self._counters["bad_fixes"] += 1
                self.last_error = str(exc)
            log.debug("%s: bad fix: %s", self.device.id, exc)
            if ack is not None:
                ack()  # sending it again would not make it readable
            return
        if ack is not None and self._commit is not None and self._loop is not None:
            with self._lock:
                self._counters["fixes"] += 1
            hubs.call_soon(self._loop, self._commit_fix, rows, ack)  # unacked if the loop is gone
            return
        if ack is not None:
            ack()
        with self._lock:
            self._counters["fixes"] += 1
            if len(self._rows) >= self.settings.max_buffered:
                self._rows.popleft()
                self._counters["dropped_fixes"] += 1
            self._rows.append(rows)

    def _commit_fix(self, rows: list[TelemetryRow], ack: Ack) -> None:
        assert self._commit is not None
        self._commit(self.device.id, rows).add_done_callback(partial(self._committed, ack))

    def _committed(self, ack: Ack, fut: asyncio.Future[bool]) -> None:
        if not fut.cancelled() and fut.result():
            ack()
            return
        with self._lock:
            self._counters["acks_withheld"] += 1
        if self._hub is not None:
            self._hub.redeliver()

    async def connect(self) -> None:
        """Attach the topic to the agent's shared MQTT connection; wait until it is up."""
        if self._hub is None:
            self._loop = asyncio.get_running_loop()
            self._hub = hubs.acquire(self.broker, self._session if self._commit else None)
            self._ready = self._hub.attach(self.settings.topic, self._on_payload)
        else:
            self._hub.start()
        try:  # subscribed (SUBACK), not merely connected: nothing sent after is missed
            await asyncio.wait_for(self._ready.wait(), self.device.timeout_s)
        except TimeoutError:
            raise DeviceTimeout(
                f"{self.device.id}: broker {self.broker.url} not reached in {self.device.timeout_s} s"
            ) from None

    async def read(self) -> list[TelemetryRow]:
        """Drain the fixes received since the last read."""
        if self._hub is None:
            raise DeviceUnavailable(f"{self.device.id}: not connected")
        with self._lock:
            batches = list(self._rows)
            self._rows.clear()
        if not batches and not self._hub.connected.is_set():
            raise DeviceUnavailable(f"{self.device.id}: broker connection lost")
        return [r for rows in batches for r in rows]

    async def write(self, key: str, value: float | bool) -> None:
        """Trackers have no writable points."""
        raise WriteRejected(f"{self.device.id}: tracker points are read-only")

    async def execute(self, action: CommandAction, params: dict[str, Any]) -> dict[str, float]:
        """Trackers take no commands."""
        raise WriteRejected(f"{self.device.id}: action {action} not supported")

    async def close(self) -> None:
        """Detach from the shared connection (stopped with its last tracker); safe twice."""
        await self._detach(unsubscribe=True)

    async def suspend(self) -> None:
        """Close for an agent's stop: a durable session keeps the subscription, so the
        broker keeps this tracker's fixes until the agent's next run."""
        await self._detach(unsubscribe=not self._commit)

    async def _detach(self, *, unsubscribe: bool) -> None:
        hub, self._hub = self._hub, None
        if hub is not None:
            hub.detach(self.settings.topic, self._on_payload, unsubscribe=unsubscribe)
            await hubs.release(hub)
