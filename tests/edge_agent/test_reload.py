"""Hot reload: devices added, removed and changed while the agent runs, against the
simulators and real Mosquitto; the disk buffer and its unsent batches survive it."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench.servers import Mosquitto
from contracts.config import BrokerConfig, load_config, parse_config
from contracts.telemetry import TelemetryBatch
from edge_agent import EdgeAgent
from edge_agent.agent import REMOVED_REASON
from hardware.inventory import build_inventory
from hardware.sim.city import SimulatedCity
from hardware.sim.deployment import agent_devices
from tests.edge_agent.relay import TcpRelay
from tests.edge_agent.test_agent import AGENT, Watcher, until

pytestmark = pytest.mark.servers
REPO = Path(__file__).resolve().parents[2]


def deployment(broker_url: str, var_dir: Path, devices: list[dict[str, Any]], **agent: Any) -> dict:
    """A one-agent deployment polling ``devices`` every 0.5 s, batching every 0.1 s."""
    for d in devices:
        d.setdefault("interval_s", 0.5)
        d.setdefault("timeout_s", 2.0)
    return {
        "var_dir": str(var_dir),
        "broker": {"url": broker_url},
        "agents": [
            {"id": AGENT, "batch": {"max_delay_s": 0.1}, **agent, "devices": devices},
        ],
    }


async def delivered_in_order(agent: Any, watcher: Watcher, timeout_s: float) -> list:
    """Once the agent stopped with nothing buffered or dropped: every batch it published
    reached the watcher, from seq 1 on, every row, and per device and field time never
    goes back. Returns the batches."""
    m = agent.metrics()
    assert m["buffer_depth"] == 0 and m["batches_dropped"] == 0
    await until(lambda: len(watcher.unique()) >= m["batches_published"], timeout_s, "delivered")
    batches: list[TelemetryBatch] = watcher.unique()
    watcher.close()
    seqs = [b.seq for b in batches]
    assert seqs == list(range(1, len(seqs) + 1)), set(range(1, seqs[-1] + 1)) - set(seqs)
    assert sum(len(b) for b in batches) == m["rows"]
    last: dict[tuple[str, str], int] = {}
    for b in batches:
        for dev, fld, ts in zip(b.device_id, b.field_name, b.ts):
            assert ts >= last.get((dev, fld), 0), (b.seq, dev, fld)
            last[(dev, fld)] = ts
    return batches


async def outage_begins(relay: TcpRelay, mosquitto: Mosquitto) -> None:
    """The broker goes down (and the agent's way to it with it)."""
    relay.close()
    with pytest.raises(OSError):  # really closed: the agent cannot sneak back in early
        socket.create_connection(("127.0.0.1", relay.port), timeout=2).close()
    await asyncio.to_thread(mosquitto.stop)


async def outage_ends(relay: TcpRelay, mosquitto: Mosquitto, watcher: Watcher) -> None:
    """The broker comes back; the agent reaches it only once the watcher listens again."""
    await asyncio.to_thread(mosquitto.start)
    await until(watcher.subscribed.is_set, 30, "watcher resubscribed")
    relay.open()


def test_reload_while_the_broker_is_down_loses_nothing(
    mosquitto: Mosquitto, mqtt_broker: BrokerConfig, tmp_path: Path, caplog: Any
) -> None:
    async def main() -> None:
        inventory = build_inventory("tiny")
        city = SimulatedCity(inventory, mqtt=mqtt_broker, tracker_interval_s=0.5)
        devices = agent_devices(inventory, await city.start())
        relay = TcpRelay(mosquitto.port).open()
        url = f"mqtt://127.0.0.1:{relay.port}"
        modbus = [d for d in devices if d["protocol"] == "modbus"]
        opcua = [d for d in devices if d["protocol"] == "opcua"]
        added, removed, changed = modbus[-1]["id"], opcua[-1]["id"], modbus[0]["id"]
        first = [d for d in devices if d["id"] != added]
        cfg_path = tmp_path / "deploy.yaml"
        cfg_path.write_text(yaml.safe_dump(deployment(url, tmp_path, first)))
        watcher = Watcher(mqtt_broker)
        await until(watcher.subscribed.is_set, 15, "watcher subscribed")
        agent = EdgeAgent(load_config(cfg_path), AGENT, seed=5, config_path=cfg_path)
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            await until(
                lambda: agent.metrics().get("batches_published", 0) >= 3, 20, "first batches"
            )
            await outage_begins(relay, mosquitto)
            await until(lambda: agent.metrics()["batches_buffered"] >= 5, 20, "buffering")
            depth = agent.metrics()["buffer_depth"]
            old = dict(agent.supervisors)
            outbox = agent._outbox

            second = [
                {**d, "interval_s": 0.4} if d["id"] == changed else d
                for d in devices
                if d["id"] != removed
            ]
            cfg_path.write_text(yaml.safe_dump(deployment(url, tmp_path, second)))
            reload_ns = time.time_ns()
            plan = await agent.reload()
            assert plan.ok, plan.errors
            assert [d.id for d in plan.added] == [added]
            assert plan.removed == [removed] and [d.id for d in plan.changed] == [changed]
            assert set(agent.supervisors) == {d["id"] for d in second}
            assert agent.supervisors[changed] is not old[changed]
            assert agent.supervisors[changed].device.interval_s == 0.4
            kept = set(second_ids := {d["id"] for d in second}) - {added, changed}
            assert all(agent.supervisors[i] is old[i] for i in kept), second_ids
            assert agent._outbox is outbox and agent.metrics()["buffer_depth"] >= depth
            await until(
                lambda: agent.metrics()["devices"][added]["polls_ok"] >= 2, 20, "added polled"
            )

            # A config that fails validation changes nothing.
            bad = deployment(url, tmp_path, [dict(d) for d in second])
            bad["agents"][0]["devices"][0]["interval_s"] = -1
            cfg_path.write_text(yaml.safe_dump(bad))
            running = dict(agent.supervisors)
            with caplog.at_level(logging.ERROR, logger="edge_agent.agent"):
                refused = await agent.reload()
            assert not refused.ok and agent.supervisors == running
            assert agent.metrics()["reloads_refused"] == 1
            logged = "\n".join(r.getMessage() for r in caplog.records)
            assert f"{cfg_path}:" in logged and "interval_s" in logged and "(got -1)" in logged

            buffered = agent.metrics()["batches_buffered"]
            await outage_ends(relay, mosquitto, watcher)
            await until(
                lambda: (
                    agent.metrics()["batches_replayed"] >= buffered
                    and agent.metrics()["buffer_depth"] <= 2
                ),
                60,
                "replay",
            )
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)
            relay.close()
            await city.stop()
        batches = await delivered_in_order(agent, watcher, 20)
        late = [
            t for b in batches for d, t in zip(b.device_id, b.ts) if d == removed and t > reload_ns
        ]
        assert not late, "the removed device was still polled after the reload"
        assert any(d == added for b in batches for d in b.device_id)
        assert any(d == AGENT and f == "reloads_applied" for b in batches for d, f in
                   zip(b.device_id, b.field_name))  # fmt: skip
        assert watcher.avail[removed]["state"] == "offline"
        assert watcher.avail[removed]["reason"] == REMOVED_REASON

    asyncio.run(asyncio.wait_for(main(), 240))


def test_reload_plan_names_every_difference_and_refuses_bad_drivers(tmp_path: Path) -> None:
    from edge_agent.reload import plan_reload

    base = {"protocol": "modbus", "kind": "dust_monitor", "profile": "modbus_dust_monitor"}
    devs = [{**base, "id": f"D{i}", "endpoint": "modbus://127.0.0.1:5020"} for i in range(3)]
    running = parse_config(deployment("mqtt://127.0.0.1:1883", tmp_path, devs))
    new_devs = [
        dict(devs[0]),
        {**devs[1], "unit_id": 9},
        {**base, "id": "D9", "endpoint": "modbus://h:1"},
    ]
    new = deployment("mqtt://127.0.0.1:1884", tmp_path, new_devs, buffer={"max_batches": 7})
    plan = plan_reload(running, parse_config(new), AGENT)
    assert plan.ok and plan.kept == 1 and plan.removed == ["D2"]
    assert [d.id for d in plan.added] == ["D9"] and [d.id for d in plan.changed] == ["D1"]
    assert any(s.startswith("broker") for s in plan.restart_only)
    assert any(".buffer" in s for s in plan.restart_only)
    # a driver that refuses an added device refuses the whole reload
    bad = [*new_devs, {**base, "id": "DX", "endpoint": "http://nowhere"}]
    plan = plan_reload(running, parse_config(deployment("mqtt://h:1", tmp_path, bad)), AGENT)
    assert not plan.ok and any("DX" in e and "modbus://" in e for e in plan.errors)
    # ... but an unchanged, already broken device does not block other changes
    running = parse_config(deployment("mqtt://h:1", tmp_path, [dict(d) for d in bad]))
    plan = plan_reload(running, parse_config(deployment("mqtt://h:1", tmp_path, bad[1:])), AGENT)
    assert plan.ok and plan.removed == ["D0"]
    # a config without this agent is refused
    other = deployment("mqtt://h:1", tmp_path, [])
    other["agents"][0]["id"] = "someone-else"
    plan = plan_reload(running, parse_config(other), AGENT)
    assert not plan.ok and "no agent" in plan.errors[0]


def test_sighup_applies_the_file_and_refuses_a_bad_one(
    mqtt_broker: BrokerConfig, tmp_path: Path
) -> None:
    async def main() -> None:
        inventory = build_inventory("tiny")
        city = SimulatedCity(inventory)
        devices = agent_devices(inventory, await city.start())
        added = devices[-1]["id"]
        cfg_path = tmp_path / "deploy.yaml"
        cfg_path.write_text(yaml.safe_dump(deployment(mqtt_broker.url, tmp_path, devices[:-1])))
        watcher = Watcher(mqtt_broker)
        log_path = tmp_path / "agent.log"
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        cmd = [sys.executable, "-m", "edge_agent", str(cfg_path), AGENT]
        with open(log_path, "wb") as log_file:
            proc = subprocess.Popen(cmd, env=env, cwd=tmp_path, stderr=log_file)
        try:
            await until(
                lambda: set(watcher.fields()) >= {d["id"] for d in devices[:-1]}, 30, "rows"
            )
            assert added not in watcher.fields()
            cfg_path.write_text(yaml.safe_dump(deployment(mqtt_broker.url, tmp_path, devices)))
            proc.send_signal(signal.SIGHUP)
            await until(lambda: added in watcher.fields(), 30, "rows of the added device")

            bad = deployment(mqtt_broker.url, tmp_path, devices)
            bad["agents"][0]["devices"][0]["intervl_s"] = 1
            cfg_path.write_text(yaml.safe_dump(bad))
            proc.send_signal(signal.SIGHUP)
            await until(lambda: "reload refused" in log_path.read_text(), 30, "the refusal")
            text = log_path.read_text()
            assert f"{cfg_path}:" in text and "devices[0].intervl_s" in text
            seq = max(b.seq for b in watcher.unique())
            await until(lambda: max(b.seq for b in watcher.unique()) > seq + 3, 20, "still running")
            assert proc.poll() is None
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(proc.wait, 30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            watcher.close()
            await city.stop()

    asyncio.run(asyncio.wait_for(main(), 120))
