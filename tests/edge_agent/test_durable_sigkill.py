"""SIGKILL with the broker away: nothing acknowledged to or by the agent's buffer is lost.

A real agent process polls the simulated city and takes HJ 212 frames from a pushing
monitor (this test's own client, which resends a frame until it gets its reply, as the
standard says). The run:

1. agent A publishes through a relay to a real Mosquitto; SIGKILL: the broker publishes
   its last will, "offline", retained;
2. the relay is closed (the broker is unreachable); agent B buffers on disk; SIGKILL;
   what its buffer file holds then is "acknowledged to the buffer";
3. agent C starts on the same file, still without the broker, then the relay opens: every
   batch of that file and every frame the monitor got a reply for reaches the broker,
   in order per device; SIGKILL again: "offline" is retained once more.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import yaml

from bench.servers import free_port
from contracts import topics
from contracts.config import BrokerConfig, parse_config
from contracts.telemetry import TelemetryBatch
from hardware.inventory import build_inventory
from hardware.sim.city import SimulatedCity
from hardware.sim.deployment import agent_devices
from tests.edge_agent.relay import TcpRelay
from tests.edge_agent.test_agent import AGENT, Watcher, until
from tests.edge_agent.test_push_listeners import _hj_frame

pytestmark = pytest.mark.servers
REPO = Path(__file__).resolve().parents[2]
MN = "88888880000077"
PUSHER = "DM-PUSH"


class Monitor:
    """An HJ 212 monitor: frame n carries PM10 = n µg/m³; resent until it is answered."""

    def __init__(self, port: int):
        self.port = port
        self.acked: list[int] = []
        self.resends = 0
        self.stop = asyncio.Event()

    async def run(self) -> None:
        n = 1
        while not self.stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                await asyncio.sleep(0.2)  # no agent at the moment: try again shortly
                continue
            try:
                while not self.stop.is_set():
                    writer.write(_hj_frame(MN, n / 1000))  # mg/m³ on the wire
                    await writer.drain()
                    await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)
                    self.acked.append(n)
                    n += 1
                    await asyncio.sleep(0.05)  # the monitor's own pace
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                self.resends += 1  # no reply: the same n goes again on the next connection
            finally:
                writer.close()


def _retained_status(broker: BrokerConfig) -> bytes:
    """The retained agent status a new subscriber gets."""
    got: list[bytes] = []
    done = threading.Event()
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.retain:
            got.append(bytes(msg.payload))
            done.set()

    c.on_message = on_message
    c.on_connect = lambda cl, *a: cl.subscribe(topics.agent_status(AGENT), 1)
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        assert done.wait(10), "no retained agent status"
    finally:
        c.disconnect()
        c.loop_stop()
    return got[0]


def _on_disk(path: Path) -> list[TelemetryBatch]:
    with closing(sqlite3.connect(path)) as db:
        return [TelemetryBatch.decode(p) for (p,) in db.execute("SELECT payload FROM outbox")]


def test_sigkill_with_the_broker_away_loses_nothing_acknowledged(mosquitto, mqtt_broker, tmp_path):
    relay = TcpRelay(mosquitto.port).open()
    hj_port = free_port()

    async def main() -> None:
        inventory = build_inventory("tiny")
        city = SimulatedCity(inventory, mqtt=mqtt_broker, tracker_interval_s=0.5)
        devices = agent_devices(inventory, await city.start())
        for d in devices:
            d["interval_s"], d["timeout_s"] = 0.5, 1.0
        devices.append({"id": PUSHER, "kind": "dust_monitor", "protocol": "hj212",
                        "profile": "hj212_dust_monitor", "endpoint": f"tcp://127.0.0.1:{hj_port}",
                        "address": {"mn": MN}, "interval_s": 0.5, "timeout_s": 1.0})  # fmt: skip
        doc = {
            "var_dir": str(tmp_path),
            "broker": {"url": f"mqtt://127.0.0.1:{relay.port}"},
            "agents": [{"id": AGENT, "batch": {"max_delay_s": 0.2}, "devices": devices}],
        }
        buffer_path = parse_config(doc).path(parse_config(doc).agent(AGENT).buffer.path)
        cfg_path = tmp_path / "deploy.yaml"
        cfg_path.write_text(yaml.safe_dump(doc))
        watcher = Watcher(mqtt_broker)
        monitor = Monitor(hj_port)
        pusher = asyncio.create_task(monitor.run())
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        cmd = [sys.executable, "-m", "edge_agent", str(cfg_path), AGENT, "--log-level", "WARNING"]
        procs: list[subprocess.Popen[bytes]] = []

        def start() -> subprocess.Popen[bytes]:
            procs.append(subprocess.Popen(cmd, env=env, cwd=tmp_path))
            return procs[-1]

        def kill(p: subprocess.Popen[bytes]) -> None:
            p.send_signal(signal.SIGKILL)
            p.wait(10)

        def status() -> list[bytes]:
            with watcher._lock:
                return list(watcher.status)

        try:
            await until(watcher.subscribed.is_set, 10, "watcher subscribed")
            # 1. connected, then killed: the broker publishes the last will
            a = start()
            await until(lambda: len(watcher.batches) >= 3 and len(monitor.acked) >= 3, 30, "run A")
            await until(lambda: status() and status()[-1] == b"online", 10, "A online")
            kill(a)
            await until(lambda: status()[-1] == b"offline", 15, "last will after the kill")
            assert await asyncio.to_thread(_retained_status, mqtt_broker) == b"offline"
            # 2. the broker is away: B keeps everything on disk, then dies
            relay.close()
            b = start()
            acked_before_b = len(monitor.acked)
            await until(lambda: len(_on_disk(buffer_path)) >= 5
                        and len(monitor.acked) >= acked_before_b + 3, 30, "B buffering")  # fmt: skip
            kill(b)
            stored = {bt.seq: bt for bt in _on_disk(buffer_path)}
            assert any(r.device_id == PUSHER for bt in stored.values() for r in bt.rows())
            # 3. C takes over the file, buffers more, and the broker comes back
            c = start()
            acked_before_c = len(monitor.acked)
            await until(lambda: len(monitor.acked) >= acked_before_c + 2, 30, "C buffering")
            relay.open()
            await until(lambda: status()[-1] == b"online", 30, "C online")
            acked = list(monitor.acked)

            def delivered() -> bool:
                got = {bt.seq for bt in watcher.unique()}
                pm10 = {round(r.value) for bt in watcher.unique() for r in bt.rows()
                        if r.device_id == PUSHER and r.field == "pm10"}  # fmt: skip
                return set(stored) <= got and set(acked) <= pm10

            await until(delivered, 60, "every acknowledged batch and frame delivered")
            kill(c)
            await until(lambda: status()[-1] == b"offline", 15, "last will after the last kill")
            assert await asyncio.to_thread(_retained_status, mqtt_broker) == b"offline"
            monitor.stop.set()
            # In order: batches reach the broker in the order they were stored (so each
            # device's rows keep theirs), repeats of a batch aside; the monitor's frames
            # (numbered) never go backwards.
            with watcher._lock:
                firsts = list(dict.fromkeys(bt.seq for bt in watcher.batches))
            assert firsts == sorted(firsts), "batches delivered out of order"
            pm10 = [round(r.value) for bt in watcher.unique() for r in bt.rows()
                    if r.device_id == PUSHER and r.field == "pm10"]  # fmt: skip
            assert pm10 == sorted(pm10) and len(set(pm10)) >= len(acked)
        finally:
            monitor.stop.set()
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait(10)
            pusher.cancel()
            watcher.close()
            await city.stop()

    try:
        asyncio.run(asyncio.wait_for(main(), 240))
    finally:
        relay.close()
