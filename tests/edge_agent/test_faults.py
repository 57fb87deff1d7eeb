"""Fault tests on real parts: a device that never answers (the others keep their rate),
and the agent process killed with SIGKILL and restarted (nothing acknowledged is lost)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from contracts.config import BrokerConfig, parse_config
from edge_agent import EdgeAgent
from hardware.inventory import build_inventory
from hardware.sim.city import SimulatedCity
from hardware.sim.deployment import agent_devices
from tests.edge_agent.test_agent import AGENT, Watcher, until

pytestmark = pytest.mark.servers
REPO = Path(__file__).resolve().parents[2]


def _deployment(broker: BrokerConfig, tmp_path: Path, devices: list[dict[str, Any]]) -> dict:
    for d in devices:
        d["interval_s"], d["timeout_s"] = 0.5, 1.0
    return {
        "var_dir": str(tmp_path),
        "broker": {"url": broker.url},
        "agents": [{"id": AGENT, "batch": {"max_delay_s": 0.2}, "devices": devices}],
    }


def test_a_silent_device_times_out_and_the_others_keep_their_rate(
    mqtt_broker: BrokerConfig, tmp_path: Path
) -> None:
    async def main() -> None:
        async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # accepts, reads, never answers: a hung device

        hole = await asyncio.start_server(swallow, "127.0.0.1", 0)
        port = hole.sockets[0].getsockname()[1]
        inventory = build_inventory("tiny")
        city = SimulatedCity(inventory, mqtt=broker_cfg)
        devices = agent_devices(inventory, await city.start())
        modbus = next(d for d in devices if d["protocol"] == "modbus")
        devices.append({**modbus, "id": "HUNG-1", "endpoint": f"modbus://127.0.0.1:{port}"})
        cfg = parse_config(_deployment(broker_cfg, tmp_path, devices))
        agent = EdgeAgent(cfg, AGENT, seed=3, metrics_port=0)
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            await until(lambda: agent.metrics().get("devices_online", 0) >= 3, 10, "online")
            before = {d: s.counters["polls_ok"] for d, s in agent.supervisors.items()}
            t0 = time.monotonic()
            await asyncio.sleep(4.0)
            took = time.monotonic() - t0
            after = {d: s.counters["polls_ok"] for d, s in agent.supervisors.items()}
            hung = agent.supervisors["HUNG-1"]
            assert after["HUNG-1"] == 0 and hung.counters["timeouts"] >= 1
            assert hung.state in ("degraded", "offline")
            polled = [d for d in after if d != "HUNG-1" and agent.supervisors[d].driver]
            for d in polled:
                rate = (after[d] - before[d]) / took
                assert rate >= 0.8 / 0.5, (d, rate)  # interval 0.5 s: ~2 polls/s each
            assert agent.metrics_server is not None
            url = f"http://127.0.0.1:{agent.metrics_server.port}/metrics"
            text = await asyncio.to_thread(lambda: urllib.request.urlopen(url).read().decode())
            assert 'rg_agent_poll_total{device="HUNG-1"' in text
            assert 'result="timeout"} ' in text and "rg_agent_buffer_depth " in text
            assert "rg_agent_bus_poll_latency_seconds_count{bus=" in text
            assert "rg_agent_modbus_stray_answers_total " in text  # a Modbus bus was used
        finally:
            stop.set()
            await task
            await city.stop()
            hole.close()

    broker_cfg = mqtt_broker
    asyncio.run(asyncio.wait_for(main(), 60))


def test_sigkill_and_restart_lose_nothing_acknowledged(
    mqtt_broker: BrokerConfig, tmp_path: Path
) -> None:
    async def main() -> None:
        inventory = build_inventory("tiny")
        city = SimulatedCity(inventory, mqtt=mqtt_broker, tracker_interval_s=0.5)
        devices = agent_devices(inventory, await city.start())
        cfg_path = tmp_path / "deploy.yaml"
        cfg_path.write_text(yaml.safe_dump(_deployment(mqtt_broker, tmp_path, devices)))
        watcher = Watcher(mqtt_broker)
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        cmd = [sys.executable, "-m", "edge_agent", str(cfg_path), AGENT, "--log-level", "WARNING"]

        def seqs() -> list[int]:
            with watcher._lock:
                return [b.seq for b in watcher.batches]

        try:
            proc = subprocess.Popen(cmd, env=env, cwd=tmp_path)
            await until(lambda: len(seqs()) >= 8, 20, "batches from the first run")
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            killed_at = max(seqs())
            proc = subprocess.Popen(cmd, env=env, cwd=tmp_path)
            await until(lambda: max(seqs()) >= killed_at + 8, 20, "batches after the restart")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
            got = sorted(set(seqs()))
            # Sequence numbers are dense across restarts: a gap is a lost batch.
            assert got == list(range(got[0], got[-1] + 1)), set(range(got[0], got[-1])) - set(got)
        finally:
            if proc.poll() is None:
                proc.kill()
            watcher.close()
            await city.stop()

    asyncio.run(asyncio.wait_for(main(), 90))
