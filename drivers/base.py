"""The driver interface every protocol implements, and the project's own driver errors.

Library exceptions (asyncua, pymodbus, paho, OSError, timeouts) are translated into
these errors inside each driver, so the agent's supervisor handles one small set.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from contracts.commands import CommandAction
from contracts.config import DeviceConfig
from contracts.telemetry import TelemetryRow

__all__ = [
    "Driver",
    "DriverError",
    "DeviceTimeout",
    "DeviceUnavailable",
    "WriteRejected",
    "BadConfig",
    "switch_params",
    "RateLimitedLog",
    "CommitHook",
]

#: (device id, rows) -> a future that is True once the rows are committed on disk (the
#: agent's outbox); pushing devices are answered, or acked, only then.
CommitHook = Callable[[str, list[TelemetryRow]], "asyncio.Future[bool]"]


class DriverError(Exception):
    """Base of every error a driver raises."""


class DeviceTimeout(DriverError):
    """The device did not answer in time; the connection may still be usable."""


class DeviceUnavailable(DriverError):
    """The connection is lost or cannot be made; the supervisor reconnects."""


class WriteRejected(DriverError):
    """The device refused a write or a method call (bad value, read-only point, ...)."""


class BadConfig(DriverError):
    """The device config or profile does not fit the device or the driver."""


@runtime_checkable
class Driver(Protocol):
    """One connection to one field device, driven by the agent's supervisor."""

    device: DeviceConfig
    actions: frozenset[CommandAction]

    async def connect(self) -> None:
        """Open the connection; raise DeviceUnavailable/DeviceTimeout/BadConfig."""
        ...

    async def read(self) -> list[TelemetryRow]:
        """Read every point of the device once (or drain pushed data)."""
        ...

    async def write(self, key: str, value: float | bool) -> None:
        """Write one writable point by its telemetry key."""
        ...

    async def execute(self, action: CommandAction, params: dict[str, Any]) -> dict[str, float]:
        """Carry out a command and return the read-back values by field key."""
        ...

    async def close(self) -> None:
        """Release the connection; safe to call twice."""
        ...

    def stats(self) -> dict[str, int]:
        """Driver-level counters (requests, decode errors, drops, ...)."""
        ...


def switch_params(params: dict[str, Any], circuits: int) -> tuple[int, bool]:
    """Validate ``switch_circuit`` params; ValueError names what is wrong."""
    circuit = params.get("circuit")
    on = params.get("on")
    if type(circuit) is not int:
        raise ValueError(f"'circuit' must be an integer, got {circuit!r}")
    if not 1 <= circuit <= circuits:
        raise ValueError(f"circuit {circuit} outside 1..{circuits}")
    if type(on) is not bool:
        raise ValueError(f"'on' must be true or false, got {on!r}")
    extra = set(params) - {"circuit", "on"}
    if extra:
        raise ValueError(f"unexpected params: {', '.join(sorted(extra))}")
    return circuit, on


class RateLimitedLog:
    """Logs a recurring failure at most once per ``every_s`` (a full disk fails every write)."""

    def __init__(self, logger: logging.Logger, every_s: float = 30.0, level: int = logging.ERROR):
        self.logger, self.every_s, self.level = logger, every_s, level
        self._last = -every_s

    def __call__(self, msg: str, *args: Any) -> bool:
        """Log ``msg % args`` unless it was logged less than ``every_s`` ago; True if logged."""
        now = time.monotonic()
        if now - self._last < self.every_s:
            return False
        self._last = now
        self.logger.log(self.level, msg, *args)
        return True
