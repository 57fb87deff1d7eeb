"""OPC-UA driver on asyncua: one read of all profile nodes per poll, methods for commands.

Reconnecting is the agent supervisor's job: on a lost session this driver raises
DeviceUnavailable, and the supervisor closes it and calls connect() again with backoff.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from asyncua import Client, ua

from contracts.commands import CommandAction
from contracts.config import DeviceConfig
from contracts.telemetry import TelemetryRow
from drivers.base import (
    BadConfig,
    DeviceTimeout,
    DeviceUnavailable,
    DriverError,
    WriteRejected,
    switch_params,
)
from drivers.opcua.codec import is_good, node_string, to_float
from drivers.opcua.config import settings_for

__all__ = ["OpcUaDriver"]


def _translate(exc: BaseException, what: str, writing: bool = False) -> DriverError:
    """One driver error for any asyncua / socket failure."""
    if isinstance(exc, DriverError):
        return exc
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return DeviceTimeout(f"{what}: no answer in time")
    if isinstance(exc, ua.UaStatusCodeError):
        name = type(exc).__name__
        if writing and "Connection" not in name and "Session" not in name and "Secure" not in name:
            return WriteRejected(f"{what}: {name}: {exc}")
        return DeviceUnavailable(f"{what}: {name}: {exc}")
    return DeviceUnavailable(f"{what}: {type(exc).__name__}: {exc}")


class OpcUaDriver:
    """An OPC-UA device (a lighting cabinet object with variables and methods)."""

    def __init__(self, device: DeviceConfig):
        self.device = device
        self.settings = settings_for(device)
        self.actions = frozenset(
            CommandAction(a) for a in self.settings.methods if a in CommandAction._value2member_map_
        )
        self._client: Client | None = None
        self._ns = 0
        self._nodes: list[Any] = []
        self._by_key: dict[str, Any] = {}
        self._counters = {"reads": 0, "read_errors": 0, "bad_nodes": 0, "calls": 0}

    def stats(self) -> dict[str, int]:
        """Request and error counters of this device."""
        return dict(self._counters)

    async def connect(self) -> None:
        """Open a session and resolve the namespace index and node ids."""
        await self.close()
        client = Client(self.settings.endpoint, timeout=self.settings.timeout_s)
        try:
            await asyncio.wait_for(client.connect(), self.settings.timeout_s * 2)
            self._ns = await client.get_namespace_index(self.settings.namespace)
        except ValueError:
            await _quiet_close(client)
            raise BadConfig(
                f"{self.device.id}: server has no namespace {self.settings.namespace!r}"
            ) from None
        except BaseException as exc:
            await _quiet_close(client)
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise _translate(exc, f"{self.device.id} connect {self.settings.endpoint}") from None
        self._client = client
        s = self.settings
        self._nodes = [client.get_node(node_string(self._ns, s.prefix, p.node)) for p in s.points]
        self._by_key = dict(zip((p.key for p in s.points), self._nodes))

    def _need(self) -> Client:
        if self._client is None:
            raise DeviceUnavailable(f"{self.device.id}: not connected")
        return self._client

    async def read(self) -> list[TelemetryRow]:
        """All profile points in one Read service call."""
        client = self._need()
        self._counters["reads"] += 1
        try:
            results = await client.read_attributes(self._nodes, ua.AttributeIds.Value)
        except Exception as exc:
            self._counters["read_errors"] += 1
            raise _translate(exc, f"{self.device.id} read") from None
        ts = time.time_ns()
        kind = self.settings.profile.kind
        rows = []
        for p, dv in zip(self.settings.points, results):
            value = None
            if dv.StatusCode is None or is_good(dv.StatusCode.value):
                value = to_float(
                    dv.Value.Value if dv.Value is not None else None, p.scale, p.offset
                )
            else:
                # One missing or failing node must not cost the other points.
                self._counters["bad_nodes"] += 1
            rows.append(TelemetryRow(self.device.id, kind, ts, p.key, value))
        return rows

    async def read_point(self, key: str) -> float | None:
        """Read one point on its own (for command read-back)."""
        node = self._by_key.get(key)
        if node is None:
            raise BadConfig(f"{self.device.id}: no point {key!r}")
        point = next(p for p in self.settings.points if p.key == key)
        try:
            dv = (await self._need().read_attributes([node], ua.AttributeIds.Value))[0]
        except Exception as exc:
            raise _translate(exc, f"{self.device.id} read {key}") from None
        if dv.StatusCode is not None and not is_good(dv.StatusCode.value):
            return None
        return to_float(dv.Value.Value if dv.Value is not None else None, point.scale, point.offset)

    async def write(self, key: str, value: float | bool) -> None:
        """Write one writable variable (typed as the profile says)."""
        point = next((p for p in self.settings.points if p.key == key), None)
        if point is None or not point.writable:
            raise WriteRejected(f"{self.device.id}: {key!r} is not a writable point")
        vtype = ua.VariantType.Boolean if point.type == "bool" else ua.VariantType.Double
        raw = bool(value) if point.type == "bool" else (float(value) - point.offset) / point.scale
        try:
            await self._by_key[key].write_value(ua.DataValue(ua.Variant(raw, vtype)))
        except Exception as exc:
            raise _translate(exc, f"{self.device.id} write {key}", writing=True) from None

    async def execute(self, action: CommandAction, params: dict[str, Any]) -> dict[str, float]:
        """switch_circuit: call the cabinet's SwitchCircuit method, then read CircuitN.On back."""
        if action not in self.actions:
            raise WriteRejected(f"{self.device.id}: action {action} not supported")
        try:
            circuit, on = switch_params(params, self.settings.profile.circuits)
        except ValueError as exc:
            raise WriteRejected(f"{self.device.id}: {exc}") from None
        client = self._need()
        s = self.settings
        obj = client.get_node(node_string(self._ns, s.prefix))
        method = ua.NodeId.from_string(node_string(self._ns, s.prefix, s.methods[action.value]))
        self._counters["calls"] += 1
        try:
            ok = await obj.call_method(
                method,
                ua.Variant(circuit, ua.VariantType.UInt16),
                ua.Variant(on, ua.VariantType.Boolean),
            )
        except Exception as exc:
            raise _translate(
                exc, f"{self.device.id} {s.methods[action.value]}", writing=True
            ) from None
        # The method's answer is the device's own view; the read-back below is what counts.
        del ok
        key = f"circuit{circuit}_on"
        value = await self.read_point(key)
        return {} if value is None else {key: value}

    async def close(self) -> None:
        """End the session; safe to call twice."""
        client, self._client = self._client, None
        if client is not None:
            await _quiet_close(client)


async def _quiet_close(client: Client) -> None:
    # Disconnecting a dead session fails by nature; the socket is gone either way.
    try:
        await asyncio.wait_for(client.disconnect(), 2.0)
    except Exception:
        pass
