"""Self-monitoring: the agent's figures in Prometheus text exposition, served by asyncio.

    rg_agent_poll_total{device,bus,result}    polls by outcome (ok / failed / timeout)
    rg_agent_poll_latency_seconds_sum/_count  per device, successful polls
    rg_agent_device_online{device,bus}        1 online, 0.5 degraded, 0 offline
    rg_agent_bus_poll_total{bus,result}       the same, summed per bus (endpoint)
    rg_agent_bus_poll_latency_seconds_sum/_count
    rg_agent_buffer_depth / _oldest_age_seconds / _dropped_total / ...
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

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

__all__ = ["render", "agent_figures", "MetricsServer"]

log = logging.getLogger(__name__)
_STATE = {"online": 1.0, "degraded": 0.5, "offline": 0.0}


def _labels(**kv: str) -> str:
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34)).replace(chr(10), " ")}"'
        for k, v in kv.items()
    )
    return "{" + inner + "}" if inner else ""


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


def render(figures: list[tuple[str, str, dict[str, str], float]]) -> str:
    """Prometheus text exposition format 0.0.4 of the figures (one TYPE line per name)."""
    lines: list[str] = []
    typed: set[str] = set()

    def family(f: tuple[str, str, dict[str, str], float]) -> str:
        return f[0].removesuffix("_sum").removesuffix("_count")

    # The exposition format wants every sample of one family together.
    for name, typ, labels, value in sorted(figures, key=family):
        base = name.removesuffix("_sum").removesuffix("_count")
        if base not in typed and name not in typed:
            typed.add(base if base != name else name)
            lines.append(f"# TYPE {base} {'summary' if base != name else typ}")
        lines.append(f"{name}{_labels(**labels)} {float(value)!r}")
    return "\n".join(lines) + "\n"


class MetricsServer:
    """GET /metrics on host:port (plain HTTP/1.0 over asyncio streams, no dependency)."""

    def __init__(self, text: Callable[[], str], port: int, host: str = "127.0.0.1"):
        self.text, self.port, self.host = text, port, host
        self.requests = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Listen (port 0 picks a free port, stored back in ``port``)."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            parts = head.split(b"\r\n", 1)[0].split()
            self.requests += 1
            if len(parts) >= 2 and parts[0] == b"GET" and parts[1].split(b"?")[0] == b"/metrics":
                status, body = "200 OK", self.text().encode()
            else:
                status, body = "404 Not Found", b"try /metrics\n"
            writer.write(
                f"HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            pass  # a scraper that hung up or sent garbage: nothing to answer
        except Exception:
            log.exception("metrics request failed")
        finally:
            writer.close()
