"""OPC-UA subscription side of the driver: monitored-item requests and the change queue.

The server pushes data changes (and keep-alives when nothing changes) to the client's
publish loop; ``shared.SharedSubscription`` routes each change by its client handle to
the device's ``ChangeQueue``, which turns it into a TelemetryRow and holds it until the
agent's next ``read()`` drains it, and sets the driver's ``changed`` event so the agent
can read at once instead of at its next period. The queue is bounded: when the agent
falls behind, the oldest rows are dropped and counted.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime

from asyncua import ua

from contracts import clock  # a change without a source stamp: data time
from contracts.telemetry import TelemetryRow
from drivers.opcua.codec import is_good, to_float
from drivers.opcua.config import OpcUaSettings
from hardware.profiles import Point

__all__ = ["ChangeQueue", "create_items", "item_requests", "subscription_parameters"]

# A percent deadband needs the node's EURange: items refused for it are re-added without.
_FILTER_REFUSED = (
    "BadMonitoredItemFilterUnsupported",
    "BadFilterNotAllowed",
    "BadDeadbandFilterInvalid",
    "BadMonitoredItemFilterInvalid",
)
_Add = Callable[
    ["ChangeQueue", list[ua.MonitoredItemCreateRequest]], Awaitable[list[int | ua.StatusCode]]
]


def subscription_parameters(s: OpcUaSettings) -> ua.CreateSubscriptionParameters:
    """Publishing interval and keep-alive/lifetime counts of the device's subscription."""
    params = ua.CreateSubscriptionParameters()
    params.RequestedPublishingInterval = s.publishing_ms
    params.RequestedMaxKeepAliveCount = s.keepalive_count
    # The server keeps the subscription alive for lifetime × interval without a publish.
    params.RequestedLifetimeCount = s.keepalive_count * 3
    params.MaxNotificationsPerPublish = 0
    params.PublishingEnabled = True
    params.Priority = 0
    return params


def _filter(s: OpcUaSettings, point: Point, percent: bool) -> ua.DataChangeFilter | None:
    # A deadband on a boolean is meaningless (and servers may refuse it): changes only.
    percent = percent and s.deadband_percent > 0
    if point.type == "bool" or (s.deadband <= 0 and not percent):
        return None
    flt = ua.DataChangeFilter()
    flt.Trigger = ua.DataChangeTrigger.StatusValue
    if percent:
        flt.DeadbandType = ua.DeadbandType.Percent
        flt.DeadbandValue = s.deadband_percent
    else:
        flt.DeadbandType = ua.DeadbandType.Absolute
        # The deadband applies to the raw value; the profile scale maps it to telemetry.
        flt.DeadbandValue = s.deadband / abs(point.scale or 1.0)
    return flt


def item_requests(
    s: OpcUaSettings, node_ids: list[ua.NodeId], first_handle: int = 1, percent: bool = True
) -> list[ua.MonitoredItemCreateRequest]:
    """One monitored-item request per point (sampling interval, queue size, deadband);
    ``percent=False``: the absolute deadband (if any) instead of the percent one."""
    out = []
    for i, (point, nid) in enumerate(zip(s.points, node_ids)):
        rv = ua.ReadValueId()
        rv.NodeId = nid
        rv.AttributeId = ua.AttributeIds.Value
        mp = ua.MonitoringParameters()
        mp.ClientHandle = first_handle + i
        mp.SamplingInterval = s.sampling_ms
        mp.QueueSize = s.queue_size
        mp.DiscardOldest = True
        flt = _filter(s, point, percent)
        if flt is not None:
            mp.Filter = flt
        req = ua.MonitoredItemCreateRequest()
        req.ItemToMonitor = rv
        req.MonitoringMode = ua.MonitoringMode.Reporting
        req.RequestedParameters = mp
        out.append(req)
    return out


async def create_items(
    add: _Add, queue: ChangeQueue, s: OpcUaSettings, node_ids: list[ua.NodeId], first: int
) -> tuple[list[int | ua.StatusCode], int]:
    """Create a device's items through ``add``; per item the server handle or the status it
    was refused with, and how many fell back from a refused percent deadband."""
    results = await add(queue, item_requests(s, node_ids, first))
    refused = [
        i
        for i, r in enumerate(results)
        if isinstance(r, ua.StatusCode) and r.name in _FILTER_REFUSED
    ]
    if not refused or s.deadband_percent <= 0:
        return results, 0
    plain = item_requests(s, node_ids, first, percent=False)
    again = await add(queue, [plain[i] for i in refused])
    for i, res in zip(refused, again):
        results[i] = res
    return results, len(refused)


def _ts_ns(dv: ua.DataValue) -> int:
    stamp: datetime | None = dv.SourceTimestamp or dv.ServerTimestamp
    return int(stamp.timestamp() * 1e9) if stamp is not None else clock.now_ns()


class ChangeQueue:
    """Data changes of one device as rows, bounded (oldest dropped, counted), drained by read()."""

    def __init__(
        self,
        device_id: str,
        kind: str,
        points: dict[int, Point],
        maxlen: int,
        wake: asyncio.Event | None = None,
    ):
        self.device_id = device_id
        self.wake = wake  # set on every change and status change
        self.kind = kind
        self.points = points  # client handle of the monitored item -> point
        self._rows: deque[TelemetryRow] = deque()
        self.maxlen = maxlen
        self.counters = {"changes": 0, "bad_values": 0, "dropped": 0}
        self.status: ua.StatusCode | None = None  # set when the server ends the subscription

    def change(self, handle: int, dv: ua.DataValue) -> None:
        """One changed monitored item of this device."""
        point = self.points.get(handle)
        if point is None:
            return
        value = None
        if dv.StatusCode is None or is_good(dv.StatusCode.value):
            value = to_float(
                dv.Value.Value if dv.Value is not None else None, point.scale, point.offset
            )
        else:
            self.counters["bad_values"] += 1
        self.counters["changes"] += 1
        if len(self._rows) >= self.maxlen:
            self._rows.popleft()
            self.counters["dropped"] += 1
        self._rows.append(TelemetryRow(self.device_id, self.kind, _ts_ns(dv), point.key, value))
        self.notify()

    def status_change(self, status: ua.StatusCode) -> None:
        """The server ended or timed out the subscription (BadTimeout, BadShutdown, ...)."""
        self.status = status
        self.notify()  # report the end at once, not at the next period

    def notify(self) -> None:
        """Wake the device waiting for pushes (new rows, or news about its subscription)."""
        if self.wake is not None:
            self.wake.set()

    def drain(self) -> list[TelemetryRow]:
        """Every queued row, oldest first."""
        rows = list(self._rows)
        self._rows.clear()
        return rows
