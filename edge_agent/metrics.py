"""Self-monitoring: the agent's figures in Prometheus text exposition, served by asyncio.

    rg_agent_poll_total{device,bus,result}    polls by outcome (ok / failed / timeout)
    rg_agent_poll_latency_seconds_sum/_count  per device, successful polls
    rg_agent_device_online{device,bus}        1 online, 0.5 degraded, 0 offline
    rg_agent_bus_poll_total{bus,result}       the same, summed per bus (endpoint)
    rg_agent_bus_poll_latency_seconds_sum/_count
    rg_agent_buffer_depth / _oldest_age_seconds / _dropped_total / _bytes / ...
    rg_agent_buffer_disk_errors_total         writes/reads the disk refused (batches kept in memory)
    rg_agent_push_replies_withheld_total      device replies not sent: rows not committed
    rg_agent_commands_total{state}            acks sent by state
    rg_agent_reloads_total{result}            config reloads applied / refused
    rg_agent_broker_connected
    rg_agent_modbus_stray_answers_total       answers a gateway sent to no request in flight
    rg_agent_opcua_unrouted_changes_total     changes for monitored items no device has
    rg_agent_tracker_unrouted_messages_total  tracker messages for no attached device

A bus is the device's endpoint: devices behind one Modbus gateway or one OPC-UA server
share it, so a slow or failing bus shows up once instead of as N devices.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from typing import Any

from contracts.prometheus import MetricsServer, render

__all__ = ["render", "agent_figures", "MetricsServer"]

log = logging.getLogger(__name__)
_STATE = {"online": 1.0, "degraded": 0.5, "offline": 0.0}


def agent_figures(agent: Any) -> list[tuple[str, str, dict[str, str], float]]:
    """(name, type, labels, value) for every figure of an EdgeAgent."""
    out: list[tuple[str, str, dict[str, str], float]] = []
    m = agent.metrics()
    bus: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for dev_id, sup in agent.supervisors.items():
        b = sup.device.endpoint
        lab = {"device": dev_id, "bus": b}
        c = sup.counters
        for result, n in (
            ("ok", c["polls_ok"]),
            ("failed", c["polls_failed"] - c["timeouts"]),
            ("timeout", c["timeouts"]),
        ):
            out.append(("rg_agent_poll_total", "counter", {**lab, "result": result}, n))
            bus[b][result] += n
        out.append(("rg_agent_poll_latency_seconds_sum", "counter", lab, sup.latency_sum_s))
        out.append(("rg_agent_poll_latency_seconds_count", "counter", lab, c["polls_ok"]))
        out.append(("rg_agent_device_online", "gauge", lab, _STATE.get(sup.state, 0.0)))
        out.append(("rg_agent_rows_total", "counter", lab, c["rows"]))
        bus[b]["latency"] += sup.latency_sum_s
    for b, f in sorted(bus.items()):
        for result in ("ok", "failed", "timeout"):
            out.append(
                ("rg_agent_bus_poll_total", "counter", {"bus": b, "result": result}, f[result])
            )
        out.append(("rg_agent_bus_poll_latency_seconds_sum", "counter", {"bus": b}, f["latency"]))
        out.append(("rg_agent_bus_poll_latency_seconds_count", "counter", {"bus": b}, f["ok"]))
    for key, name, typ in (
        ("buffer_depth", "rg_agent_buffer_depth", "gauge"),
        ("buffer_oldest_age_s", "rg_agent_buffer_oldest_age_seconds", "gauge"),
        ("batches_dropped", "rg_agent_buffer_dropped_total", "counter"),
        ("batches_buffered", "rg_agent_buffer_buffered_total", "counter"),
        ("batches_replayed", "rg_agent_buffer_replayed_total", "counter"),
        ("batches_published", "rg_agent_batches_published_total", "counter"),
        ("batches_inflight", "rg_agent_batches_inflight", "gauge"),
        ("buffer_bytes", "rg_agent_buffer_bytes", "gauge"),
        ("disk_errors", "rg_agent_buffer_disk_errors_total", "counter"),
        ("batches_spilled", "rg_agent_buffer_in_memory_total", "counter"),
        ("batches_in_memory", "rg_agent_buffer_in_memory", "gauge"),
        ("spill_dropped", "rg_agent_buffer_in_memory_dropped_total", "counter"),
        ("commits_waiting", "rg_agent_replies_waiting_for_disk", "gauge"),
        ("commits_refused", "rg_agent_commits_refused_total", "counter"),
        ("command_log_errors", "rg_agent_command_log_errors_total", "counter"),
        ("command_ids_pruned", "rg_agent_command_log_ids_pruned_total", "counter"),
        ("replies_withheld", "rg_agent_push_replies_withheld_total", "counter"),
    ):
        if key in m:
            out.append((name, typ, {}, float(m[key])))
    for key, n in m.items():
        if key.startswith("commands_"):
            state = key.removeprefix("commands_")
            out.append(("rg_agent_commands_total", "counter", {"state": state}, float(n)))
    for result in ("applied", "refused"):
        if f"reloads_{result}" in m:
            n = float(m[f"reloads_{result}"])
            out.append(("rg_agent_reloads_total", "counter", {"result": result}, n))
    for key, n in m.get("connections", {}).items():
        out.append((f"rg_agent_{key}_total", "counter", {}, float(n)))
    if "broker_connected" in m:
        out.append(("rg_agent_broker_connected", "gauge", {}, float(m["broker_connected"])))
    return out
