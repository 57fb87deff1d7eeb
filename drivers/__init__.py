"""Field-device drivers: one folder per protocol, pure codecs kept apart from I/O."""

from __future__ import annotations

from drivers.base import (
    BadConfig,
    DeviceTimeout,
    DeviceUnavailable,
    Driver,
    DriverError,
    WriteRejected,
)
from drivers.registry import create_driver, protocols

__all__ = [
    "Driver",
    "DriverError",
    "DeviceTimeout",
    "DeviceUnavailable",
    "WriteRejected",
    "BadConfig",
    "create_driver",
    "protocols",
]
