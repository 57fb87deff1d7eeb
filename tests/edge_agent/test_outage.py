"""The broker down under load: nothing lost, order kept per device.

A full minute (``OUTAGE_S``) under a dense load: the district's 18 simulated devices
polled every 0.2 s (OPC-UA pushing every 0.2 s, 12 trackers every 0.2 s) and batches cut
every 0.05 s. Measured with a 25 s outage: ~1,200 rows/s, ~350 batches and ~30,000 rows
buffered on disk; a minute leaves about 2.4 times that.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bench.servers import Mosquitto
from contracts.config import BrokerConfig, parse_config
from edge_agent import EdgeAgent
from hardware.inventory import build_inventory
from hardware.sim.city import SimulatedCity
from hardware.sim.deployment import agent_devices
from tests.edge_agent.relay import TcpRelay
from tests.edge_agent.test_agent import AGENT, Watcher, until
from tests.edge_agent.test_reload import (
    delivered_in_order,
    deployment,
    outage_begins,
    outage_ends,
)

pytestmark = pytest.mark.servers

OUTAGE_S = 60.0
MIN_BUFFERED = 100  # far below the ~20 batches/s expected: proves the load, not the speed


def test_broker_down_under_load_loses_nothing_and_keeps_order(
    mosquitto: Mosquitto, mqtt_broker: BrokerConfig, tmp_path: Path
) -> None:
    async def main() -> None:
        inventory = build_inventory("district")
        city = SimulatedCity(inventory, mqtt=mqtt_broker, tracker_interval_s=0.2, tick_s=0.2)
        devices = agent_devices(inventory, await city.start())
        for d in devices:
            d["interval_s"] = 0.2
        relay = TcpRelay(mosquitto.port).open()
        data = deployment(f"mqtt://127.0.0.1:{relay.port}", tmp_path, devices)
        data["agents"][0]["batch"] = {"max_delay_s": 0.05, "max_rows": 5000}
        data["agents"][0]["telemetry_interval_s"] = 1.0
        watcher = Watcher(mqtt_broker)
        await until(watcher.subscribed.is_set, 15, "watcher subscribed")
        agent = EdgeAgent(parse_config(data), AGENT, seed=7)
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            await until(
                lambda: agent.metrics().get("devices_online", 0) == len(devices), 30, "online"
            )
            await until(lambda: agent.metrics()["batches_published"] >= 20, 20, "flowing")
            await outage_begins(relay, mosquitto)
            rows_before = agent.metrics()["rows"]
            await asyncio.sleep(OUTAGE_S)  # the outage itself is the scenario
            m = agent.metrics()
            assert not m["broker_connected"] and m["batches_buffered"] >= MIN_BUFFERED, m
            assert m["rows"] - rows_before > 0 and m["batches_dropped"] == 0
            await outage_ends(relay, mosquitto, watcher)
            buffered = m["batches_buffered"]
            await until(
                lambda: (
                    agent.metrics()["batches_replayed"] >= buffered
                    and agent.metrics()["buffer_depth"] <= 5
                ),
                120,
                "replay",
            )
            # every device kept polling through the outage and after it
            assert all(s["polls_ok"] > 0 for s in agent.metrics()["devices"].values())
        finally:
            stop.set()
            await asyncio.wait_for(task, 60)
            relay.close()
            await city.stop()
        batches = await delivered_in_order(agent, watcher, 30)
        assert {d for b in batches for d in b.device_id} >= {d["id"] for d in devices}

    asyncio.run(asyncio.wait_for(main(), 300))
