"""The edge agent at scale: OPC-UA with 10,000 monitored items, and memory by city size.

opcua     ~435 simulated cabinets (23 items each) on one asyncua server in a child
          process, read for ``seconds`` by (a) a bare asyncua client, one session with
          one subscription of every item, counting changes: the baseline; then (b) a
          whole EdgeAgent (supervisors, shared session, batching, disk buffer, MQTT to a
          Mosquitto child). Figures: items/s delivered, CPU share, RSS.
memory    the agent configured for the district and for the city inventory, against
          the simulators and a Mosquitto child; RSS of a fresh process before the agent
          starts (imports, config) and once 99 % of the reachable devices are online,
          and the difference per device. The city has more OPC-UA cabinets (4,800) than one
          Python simulator serves on a small machine: the first ``city_opcua`` are
          served, the others sit behind endpoints that refuse connections (cabinets
          offline, as on a bad night) and count in the agent's memory as such.

Needs ``mosquitto`` (the OS package). The simulators run in child processes; their CPU
is not this process's. Other load on the machine lowers every figure.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from asyncua import Client

from bench._simproc import SimProcess
from contracts.config import parse_config
from drivers.opcua.codec import node_string
from drivers.opcua.config import settings_for
from drivers.opcua.monitor import item_requests, subscription_parameters
from drivers.opcua.shared import QUEUE_MAX
from edge_agent import EdgeAgent
from edge_agent.selfmon import rss_mb

__all__ = ["run"]

_POINTS_PER_CABINET = 23
_REPO = Path(__file__).resolve().parents[1]
_ALL = 1_000_000


def _free_port() -> int:
    """A free port below the ephemeral range: the simulator's thousands of servers, which
    bind port 0, cannot take it before the agent binds it."""
    rng = random.Random()
    for _ in range(1000):
        port = rng.randrange(20_000, 32_000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 20000..32000")


class _Mosquitto:
    """A Mosquitto child on a free port."""

    def __init__(self, workdir: Path):
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            raise RuntimeError("this benchmark needs mosquitto (apt install mosquitto)")
        self.port = _free_port()
        conf = workdir / "mosquitto.conf"
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n")
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start")

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def _deployment(var_dir: str, broker: str, devices: list[dict[str, Any]]) -> Any:
    return parse_config(
        {
            "var_dir": var_dir,
            "broker": {"url": broker},
            "agents": [
                {
                    "id": "bench-agent",
                    "batch": {"max_rows": 5000, "max_delay_s": 1.0},
                    "devices": devices,
                }
            ],
        }
    )


async def _plain_opcua(devices: list[dict[str, Any]], seconds: float) -> dict[str, float]:
    """One bare asyncua session and subscription with every item; changes counted."""
    cfg = _deployment("/nonexistent", "mqtt://127.0.0.1:1", devices)
    settings = [settings_for(d) for d in cfg.agents[0].devices]
    client = Client(settings[0].endpoint, timeout=5, watchdog_intervall=5.0)  # as the agent
    await client.connect()
    try:
        ns = await client.get_namespace_index(settings[0].namespace)
        # asyncua's default queue (1,000 changes, oldest dropped) loses most of a publish
        # of 10,000 items without a word: give the baseline the agent's bound
        sub = await client.create_subscription(
            subscription_parameters(settings[0]), None, queue_maxsize=QUEUE_MAX
        )
        n = 0
        for s in settings:
            nids = [client.get_node(node_string(ns, s.prefix, p.node)).nodeid for p in s.points]
            await sub.create_monitored_items(item_requests(s, nids, n + 1))
            n += len(nids)
        count = 0

        async def consume() -> None:
            nonlocal count
            async for _ev in sub:
                count += 1

        task = asyncio.create_task(consume())
        await asyncio.sleep(5)  # initial values and a steady state first
        c0, w0, n0 = time.process_time(), time.perf_counter(), count
        await asyncio.sleep(seconds)
        cpu, wall, got = time.process_time() - c0, time.perf_counter() - w0, count - n0
        task.cancel()
        return {"items": float(n), "items_per_s": got / wall, "cpu": cpu / wall}
    finally:
        await client.disconnect()


async def _agent(
    devices: list[dict[str, Any]], broker: str, var_dir: str, seconds: float, reachable: int
) -> dict[str, Any]:
    """A whole EdgeAgent: RSS before and after, rows/s and CPU in a steady window."""
    cfg = _deployment(var_dir, broker, devices)
    rss0 = rss_mb()
    agent = EdgeAgent(cfg, "bench-agent", seed=1)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    t0 = time.monotonic()
    # 99 %: under this load a few Modbus devices time out now and then, and come back
    while agent.metrics().get("devices_online", 0) < 0.99 * reachable:
        if time.monotonic() - t0 > 300:
            break
        await asyncio.sleep(1)
    online_s = time.monotonic() - t0
    await asyncio.sleep(5)
    m0, c0, w0 = agent.metrics(), time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    m1, cpu, wall = agent.metrics(), time.process_time() - c0, time.perf_counter() - w0
    rss1 = rss_mb()
    online: dict[str, int] = {}
    reasons: dict[str, Counter[str]] = {}
    for sup in agent.supervisors.values():
        if sup.state == "online":
            online[sup.device.protocol] = online.get(sup.device.protocol, 0) + 1
        else:  # the commonest reason per protocol, ports and ids masked
            why = re.sub(r"\d+", "N", sup.reason)[:100]
            reasons.setdefault(sup.device.protocol, Counter())[why] += 1
    stop.set()
    await asyncio.wait_for(task, 120)
    return {
        "devices": len(devices),
        "online": m1["devices_online"],
        "online_by_protocol": online,
        "not_online_why": {p: c.most_common(1)[0] for p, c in reasons.items()},
        "online_after_s": round(online_s, 1),
        "rows_per_s": round((_rows(m1) - _rows(m0)) / wall, 1),
        "published_rows_per_s": round((m1["rows"] - m0["rows"]) / wall, 1),
        "cpu_share": round(cpu / wall, 3),
        "rss_before_mb": round(rss0, 1),
        "rss_mb": round(rss1, 1),
        "rss_agent_mb": round(rss1 - rss0, 1),
        "kb_per_device": round((rss1 - rss0) * 1024 / len(devices), 1),
        "batches_dropped": m1["batches_dropped"],
    }


def _rows(metrics: dict[str, Any]) -> int:
    """Rows the devices delivered (all supervisors) so far."""
    return sum(int(d["rows"]) for d in metrics["devices"].values())


def _opcua(items: int, seconds: float, tmp: Path) -> dict[str, Any]:
    cabinets = -(-items // _POINTS_PER_CABINET)
    with SimProcess("city", {"opcua": cabinets}, tick_s=2.0) as sim:
        plain = asyncio.run(_plain_opcua(sim.devices, seconds))
        broker = _Mosquitto(tmp)
        try:
            devices = [{**d, "timeout_s": 5.0} for d in sim.devices]
            agent = asyncio.run(
                _agent(devices, broker.url, str(tmp / "opcua"), seconds, len(devices))
            )
        finally:
            broker.stop()
    return {
        "cabinets": cabinets,
        "monitored_items": int(plain["items"]),
        "plain_asyncua": {
            "items_per_s": round(plain["items_per_s"], 1),
            "cpu_share": round(plain["cpu"], 3),
        },
        "agent": agent,
        "items_per_s_ratio": round(agent["rows_per_s"] / plain["items_per_s"], 2),
        "cpu_per_item_ratio": round(
            (agent["cpu_share"] / agent["rows_per_s"]) / (plain["cpu"] / plain["items_per_s"]), 2
        ),
    }


def _offline_cabinets(served: set[str], servers: int) -> list[dict[str, Any]]:
    """Device entries for the city's cabinets no simulator serves: refused connections."""
    from hardware.inventory import build_inventory
    from hardware.profiles import load_profile
    from hardware.sim.deployment import agent_devices

    inv = build_inventory("city")
    rest = [
        c.id
        for c in inv.cabinets
        if load_profile(c.profile).protocol == "opcua" and c.id not in served
    ]
    ns = load_profile("opcua_lighting_cabinet").namespace
    per = -(-len(rest) // servers)
    endpoints = {
        "opcua": [
            {
                "endpoint": f"opc.tcp://127.0.0.1:{_free_port()}",
                "namespace": ns,
                "devices": rest[i : i + per],
            }  # fmt: skip
            for i in range(0, len(rest), per)
        ]
    }
    return agent_devices(inv, endpoints)


def _memory(size: str, seconds: float, city_opcua: int, tmp: Path) -> dict[str, Any]:
    broker = _Mosquitto(tmp)
    hj, jt = _free_port(), _free_port()
    counts = {"modbus_lc": _ALL, "modbus_dust": _ALL, "hj212": _ALL, "jt808": _ALL}
    counts["trackers"] = _ALL
    counts["opcua"] = _ALL if size != "city" else city_opcua
    options = {
        "mqtt_url": broker.url,
        "hj212_listener": f"127.0.0.1:{hj}",
        "jt808_listener": f"127.0.0.1:{jt}",
        # a city's 13,800 trackers every 30 s (the district's every 2 s) through one broker
        "tracker_interval_s": 30.0 if size == "city" else 2.0,
    }
    try:
        with SimProcess(size, counts, **options) as sim:
            devices = list(sim.devices)
            reachable = len(devices)
            if size == "city":
                served = {d["id"] for d in devices if d["protocol"] == "opcua"}
                devices += _offline_cabinets(served, servers=10)
            out = asyncio.run(_agent(devices, broker.url, str(tmp / size), seconds, reachable))
    finally:
        broker.stop()
    by_protocol: dict[str, int] = {}
    for d in devices:
        by_protocol[d["protocol"]] = by_protocol.get(d["protocol"], 0) + 1
    return {"size": size, "reachable": reachable, "by_protocol": by_protocol, **out}


def _part(part: str, items: int, seconds: float, city_opcua: int) -> dict[str, Any]:
    """One part of the benchmark in this process."""
    with tempfile.TemporaryDirectory(prefix="rg-bench-agent-") as tmp:
        if part == "opcua":
            return _opcua(items, seconds, Path(tmp))
        return _memory(part.removeprefix("memory-"), seconds, city_opcua, Path(tmp))


def run(
    items: int = 10_000,
    seconds: float = 30.0,
    sizes: tuple[str, ...] = ("district", "city"),
    city_opcua: int = 435,
) -> dict[str, Any]:
    """OPC-UA at 10,000 items vs a bare client, then the agent's memory per city size,
    each in a fresh process (memory freed by one part would flatter the next)."""
    out: dict[str, Any] = {}
    for part in ["opcua", *(f"memory-{s}" for s in sizes)]:
        args = [sys.executable, "-m", "bench.agent", part, str(items), str(seconds)]
        proc = subprocess.run(
            [*args, str(city_opcua)], cwd=_REPO, capture_output=True, text=True, timeout=1800
        )
        lines = proc.stdout.strip().splitlines()
        if proc.returncode != 0 or not lines:
            raise RuntimeError(f"bench.agent {part} failed:\n{proc.stderr[-3000:]}")
        out[part.replace("-", "_")] = json.loads(lines[-1])
    out["cpu_count"] = os.cpu_count()
    return out


if __name__ == "__main__":
    if len(sys.argv) > 1:  # one part, in a child of run()
        part, n, secs, opc = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
        print(json.dumps(_part(part, n, secs, opc)))
    else:
        print(json.dumps(run(), indent=2))
