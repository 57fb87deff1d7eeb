"""OPC-UA driver on asyncua: a subscription per device (polling as fallback), methods.

Subscription mode (default): connect() joins the session to the device's server (one
session per server, shared by its devices: ``session``) and creates the device's own
subscription with a monitored item per profile point; the server pushes changes, and
read() hands over what arrived since the last call; ``changed`` is set meanwhile, so the
agent may read at once. A node the server refuses (unknown, no access) is left out and
counted in ``bad_nodes``; one refused only for its percent deadband is re-added without
(``filter_fallbacks``). A server that refuses subscriptions is polled (``fallbacks``).

The session is watched: asyncua's watchdog probes the server every max(1 s, timeout)
and reports a silent or lost connection, and the subscription must publish (data or
keep-alive) at least every 1.5 × keepalive_count × publishing interval. When either
fails, or another device has meanwhile opened a new session, read() raises
DeviceUnavailable; the agent's DeviceSupervisor then closes the driver and calls
connect() again with exponential backoff and jitter, which recreates the subscription.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from asyncua import Client, ua

from contracts import clock  # poll rows carry data time: the deployment's clock
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
from drivers.opcua import session as sessions
from drivers.opcua.codec import is_good, node_string, to_float
from drivers.opcua.config import settings_for
from drivers.opcua.monitor import ChangeQueue, create_items
from drivers.opcua.security import UntrustedServer

__all__ = ["OpcUaDriver", "MAX_QUEUED_ROWS"]

MAX_QUEUED_ROWS = 100_000  # per device, between two reads; oldest dropped beyond (counted)
# Subscription refusals that mean "poll this server instead" rather than "retry later".
_NO_SUBSCRIPTIONS = ("BadServiceUnsupported", "BadTooManySubscriptions", "BadNotSupported")


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
        self._counters = {
            "reads": 0,
            "read_errors": 0,
            "bad_nodes": 0,
            "calls": 0,
            "sessions": 0,
            "sessions_lost": 0,
            "subscriptions": 0,
            "fallbacks": 0,
            "monitored_items": 0,
            "untrusted_servers": 0,
            "filter_fallbacks": 0,
        }
        self._queue: ChangeQueue | None = None
        self._sub: Any = None
        self._session: sessions.SharedSession | None = None
        self._generation = 0
        self._items: tuple[list[int], list[int]] = ([], [])  # client / server handles
        self._totals = {"changes": 0, "bad_values": 0, "dropped": 0}
        self.bad_keys: dict[str, str] = {}  # point key -> status the server gave its node
        # Set when the server pushes a change (or ends the subscription): the supervisor
        # may await it beside its period to forward pushed data at once. None: polled.
        self.changed: asyncio.Event | None = (
            asyncio.Event() if self.settings.mode == "subscribe" else None
        )

    def stats(self) -> dict[str, int]:
        """Request, session, subscription and error counters of this device."""
        out = dict(self._counters)
        live = self._queue.counters if self._queue is not None else {}
        for k, v in self._totals.items():
            out[k] = v + live.get(k, 0)
        return out

    @property
    def subscribed(self) -> bool:
        """True while data arrives through a subscription (False: polled)."""
        return self._sub is not None

    async def connect(self) -> None:
        """Join the server's session and resolve the namespace index and node ids."""
        await self.close()
        s = self.settings
        session = sessions.acquire(s)
        try:
            client = await session.ensure()
            self._ns = await session.namespace_index(s.namespace)
        except BaseException as exc:
            await sessions.release(session)
            if isinstance(exc, asyncio.CancelledError):
                raise
            if isinstance(exc, UntrustedServer):
                self._counters["untrusted_servers"] += 1
            if isinstance(exc, ValueError):
                raise BadConfig(
                    f"{self.device.id}: server has no namespace {s.namespace!r}"
                ) from None
            raise _translate(exc, f"{self.device.id} connect {s.endpoint}") from None
        self._client, self._session, self._generation = client, session, session.generation
        self._counters["sessions"] += 1
        self._nodes = [client.get_node(node_string(self._ns, s.prefix, p.node)) for p in s.points]
        self._by_key = dict(zip((p.key for p in s.points), self._nodes))
        if s.mode == "subscribe":
            try:
                await asyncio.wait_for(self._subscribe(client), s.timeout_s * 2)
            except ua.UaStatusCodeError as exc:
                if type(exc).__name__ not in _NO_SUBSCRIPTIONS:
                    await self.close()
                    raise _translate(exc, f"{self.device.id} subscribe") from None
                self._counters["fallbacks"] += 1  # polled from now on, until reconnected
            except BaseException as exc:
                await self.close()
                if isinstance(exc, asyncio.CancelledError):
                    raise
                raise _translate(exc, f"{self.device.id} subscribe") from None

    async def _subscribe(self, client: Client) -> None:
        s = self.settings
        session = self._session
        assert session is not None
        shared = await session.subscription(s)
        first = shared.handles(len(s.points))
        handles = list(range(first, first + len(s.points)))
        queue = ChangeQueue(
            self.device.id,
            s.profile.kind,
            dict(zip(handles, s.points)),
            MAX_QUEUED_ROWS,
            self.changed,
        )
        try:
            results, fallbacks = await create_items(
                shared.add, queue, s, [n.nodeid for n in self._nodes], first
            )
        except BaseException:
            await session.leave(shared)
            raise
        self.bad_keys = {}
        server_handles = []
        for point, res in zip(s.points, results):
            if isinstance(res, ua.StatusCode):
                # Isolate the node: the other items of the subscription keep working.
                self.bad_keys[point.key] = res.name
            else:
                server_handles.append(res)
        self._counters["bad_nodes"] += len(self.bad_keys)
        self._counters["filter_fallbacks"] += fallbacks
        self._counters["monitored_items"] = len(s.points) - len(self.bad_keys)
        self._counters["subscriptions"] += 1
        self._sub, self._queue = shared, queue
        self._items = (handles, server_handles)

    def _check_session(self) -> None:
        """DeviceUnavailable when the watchdog lost the server or publishing stopped."""
        s = self.settings
        session = self._session
        reason = None
        if session is not None and session.lost is not None:
            reason = session.lost
        elif session is not None and session.generation != self._generation:
            reason = "the server's session was reopened"
        if reason is None and self._queue is not None and self._queue.status is not None:
            reason = f"subscription ended by the server: {self._queue.status.name}"
        if reason is None and self._sub is not None:
            last = self._sub.last_publish_at
            limit = max(1.5 * s.keepalive_count * s.publishing_ms / 1000, 2 * s.timeout_s)
            if last is not None and time.monotonic() - last > limit:
                reason = f"no publish or keep-alive for {time.monotonic() - last:.1f} s"
        if reason is not None:
            self._counters["sessions_lost"] += 1
            raise DeviceUnavailable(f"{self.device.id}: session lost: {reason}")

    def _need(self) -> Client:
        if self._client is None:
            raise DeviceUnavailable(f"{self.device.id}: not connected")
        return self._client

    async def read(self) -> list[TelemetryRow]:
        """Changes pushed since the last call (subscribed), or all points in one Read."""
        client = self._need()
        if self.changed is not None:
            self.changed.clear()  # what is queued now is drained below
        if self._queue is not None:
            rows = self._queue.drain()
            if rows:
                return rows  # a lost session is reported on the next call, nothing dropped
        self._check_session()
        if self._queue is not None:
            return []
        self._counters["reads"] += 1
        try:
            results = await client.read_attributes(self._nodes, ua.AttributeIds.Value)
        except Exception as exc:
            self._counters["read_errors"] += 1
            raise _translate(exc, f"{self.device.id} read") from None
        ts = clock.now_ns()
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
        """Drop the subscription and leave the shared session; safe to call twice."""
        if self.changed is not None:
            self.changed.clear()  # nothing to fetch until connected again: no early wake
        client, self._client = self._client, None
        session, self._session = self._session, None
        queue, self._queue = self._queue, None
        sub, self._sub = self._sub, None
        if queue is not None:
            for k in self._totals:
                self._totals[k] += queue.counters[k]
        if sub is not None and queue is not None and session is not None:
            handles, server_handles = self._items
            if session.client is client and session.lost is None:
                try:  # the subscription lives on for the server's other devices
                    await asyncio.wait_for(
                        sub.remove(queue, handles, server_handles), self.settings.timeout_s
                    )
                except Exception:
                    sub.forget(queue, handles)  # a dead session took the items with it
            else:
                sub.forget(queue, handles)
            await session.leave(sub)
        if session is not None:
            await sessions.release(session)
