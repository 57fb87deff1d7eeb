"""Common part of drivers for devices that push frames to a shared listener.

Rows handed over by the listener wait in a bounded deque (oldest dropped first, counted)
that read() drains. A device that has sent nothing for ``stale_s`` (or never) fails its
poll with DeviceTimeout, so the supervisor's availability follows the device.

Under an agent (the listener has a ``commit`` hook) rows skip that deque: they go
straight to the agent's outbox, and push() returns the future the listener awaits before
replying, so a device is never told that rows arrived before they are on disk.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from contracts.commands import CommandAction
from contracts.config import DeviceConfig
from contracts.telemetry import TelemetryRow
from drivers.base import DeviceTimeout, DeviceUnavailable, WriteRejected
from drivers.listener import Listener

__all__ = ["PushDriver"]


class PushDriver:
    """A device that pushes frames over TCP; the base of the HJ 212 and JT/T 808 drivers."""

    actions: frozenset[CommandAction] = frozenset()

    def __init__(self, device: DeviceConfig, listener: Listener, max_buffered: int, stale_s: float):
        self.device = device
        self.listener = listener
        self.max_buffered = max_buffered
        self.stale_s = stale_s
        self._rows: deque[list[TelemetryRow]] = deque()
        self._last_frame: float | None = None
        self.counters = {"frames": 0, "bad_frames": 0, "dropped_frames": 0, "replies": 0}
        self.last_error = ""

    def stats(self) -> dict[str, int]:
        """Frames received, rejected, dropped (buffer full) and replies sent."""
        return dict(self.counters)

    def seen(self) -> None:
        """Note that the device spoke (any frame, even one without rows)."""
        self._last_frame = time.monotonic()
        self.counters["frames"] += 1

    def push(self, rows: list[TelemetryRow]) -> asyncio.Future[bool] | None:
        """Hand over the rows of one frame; a future when they are committed via the agent.

        Without a commit hook they wait in the deque (the oldest frame goes when it is full).
        """
        if not rows:
            return None
        if self.listener.commit is not None:
            return self.listener.commit(self.device.id, rows)
        if len(self._rows) >= self.max_buffered:
            self._rows.popleft()
            self.counters["dropped_frames"] += 1
        self._rows.append(rows)
        return None

    def reject(self, reason: str) -> None:
        """Count a frame from this device that could not be used."""
        self.counters["bad_frames"] += 1
        self.last_error = reason

    async def connect(self) -> None:
        """Make sure the shared listener is up (it stays up when this device goes)."""
        try:
            await self.listener.start()
        except DeviceUnavailable as exc:
            raise DeviceUnavailable(f"{self.device.id}: {exc}") from None

    async def read(self) -> list[TelemetryRow]:
        """Drain what the device pushed; DeviceTimeout when it has gone quiet."""
        if not self.listener.running:
            raise DeviceUnavailable(f"{self.device.id}: listener is not running")
        batches = list(self._rows)
        self._rows.clear()
        if batches:
            return [r for rows in batches for r in rows]
        if self._last_frame is None:
            raise DeviceTimeout(f"{self.device.id}: no frame received yet ({self._ident()})")
        age = time.monotonic() - self._last_frame
        if age > self.stale_s:
            raise DeviceTimeout(f"{self.device.id}: no frame for {age:.0f} s ({self._ident()})")
        return []

    def _ident(self) -> str:
        return "?"

    async def write(self, key: str, value: float | bool) -> None:
        """Pushing devices have no writable points here."""
        raise WriteRejected(f"{self.device.id}: points are read-only")

    async def execute(self, action: CommandAction, params: dict[str, Any]) -> dict[str, float]:
        """Pushing devices take no commands here."""
        raise WriteRejected(f"{self.device.id}: action {action} not supported")

    async def close(self) -> None:
        """Nothing to release: the listener is shared and stopped by its pool."""
