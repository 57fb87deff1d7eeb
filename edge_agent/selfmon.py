"""The agent's own figures as telemetry: device ``<agent id>``, kind ``agent``.

They travel like any device's rows (batched, stored on disk, replayed), so the center
sees an agent's buffer depth, poll health and memory next to the data it carries, and
rules can alarm on them (e.g. ``agent.buffer_oldest_age_s`` above an hour).

    field                  meaning
    devices                devices the agent runs (after the last reload)
    devices_online         ... of them online; _degraded, _offline likewise
    polls_ok, polls_failed counters since start (per running supervisor, summed)
    buffer_depth           batches on disk not yet acknowledged by the broker
    buffer_oldest_age_s    age of the oldest of them
    batches_dropped        batches the disk quota's policy dropped (since start)
    batches_buffered       batches stored while the broker was away, _replayed likewise
    broker_connected       1 / 0
    rss_mb, cpu_s          resident memory and CPU time of the process
    reloads_applied        config reloads applied, _refused likewise
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections.abc import Callable
from typing import Any

from contracts import clock  # the agent's rows are data: the deployment's clock
from contracts.telemetry import DeviceKind, TelemetryRow

__all__ = ["agent_rows", "rss_mb", "self_telemetry", "FIELDS"]

_COPIED = (
    "polls_ok",
    "polls_failed",
    "buffer_depth",
    "buffer_oldest_age_s",
    "batches_dropped",
    "batches_buffered",
    "batches_replayed",
    "batches_published",
    "reloads_applied",
    "reloads_refused",
)
FIELDS = (
    "devices",
    "devices_online",
    "devices_degraded",
    "devices_offline",
    *_COPIED,
    "broker_connected",
    "rss_mb",
    "cpu_s",
)
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_mb() -> float:
    """Resident memory of this process now (Linux /proc), else the peak from getrusage."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE / 2**20
    except (OSError, IndexError, ValueError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def agent_rows(
    agent_id: str, metrics: dict[str, Any], now_ns: int | None = None
) -> list[TelemetryRow]:
    """Rows of the agent pseudo-device from ``EdgeAgent.metrics()``."""
    ts = clock.now_ns() if now_ns is None else now_ns
    states = [d["state"] for d in metrics.get("devices", {}).values()]
    values: dict[str, float] = {
        "devices": float(len(states)),
        "devices_online": float(states.count("online")),
        "devices_degraded": float(states.count("degraded")),
        "devices_offline": float(states.count("offline")),
    }
    for key in _COPIED:
        if key in metrics:
            values[key] = float(metrics[key])
    values["broker_connected"] = 1.0 if metrics.get("broker_connected") else 0.0
    values["rss_mb"] = round(rss_mb(), 2)
    values["cpu_s"] = round(time.process_time(), 3)
    kind = str(DeviceKind.AGENT)
    return [TelemetryRow(agent_id, kind, ts, k, v) for k, v in values.items()]


async def self_telemetry(
    agent_id: str,
    metrics: Callable[[], dict[str, Any]],
    add: Callable[[list[TelemetryRow]], None],
    interval_s: Callable[[], float],
    stop: asyncio.Event,
) -> None:
    """``add`` the agent's rows every ``interval_s()`` seconds (0: off; asked again every
    period, so a reload changes it) until ``stop`` is set."""
    while not stop.is_set():
        every = interval_s()
        try:
            await asyncio.wait_for(stop.wait(), every if every > 0 else 60.0)
            return
        except TimeoutError:
            pass
        if interval_s() > 0:
            add(agent_rows(agent_id, metrics()))
