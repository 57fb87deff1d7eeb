"""OPC-UA driver: polled reads of the profile's variables, method calls for commands."""

from __future__ import annotations

from drivers.opcua.client import OpcUaDriver

__all__ = ["OpcUaDriver"]
