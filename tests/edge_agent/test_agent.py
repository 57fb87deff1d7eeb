"""The agent against the simulated city (OPC-UA, Modbus, MQTT trackers) and real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from contracts import topics
from contracts.commands import Command, CommandAck, CommandAction, CommandState
from contracts.config import BrokerConfig, parse_config
from contracts.telemetry import TelemetryBatch
from edge_agent import EdgeAgent
from hardware.inventory import build_inventory
from hardware.sim.city import SimulatedCity
from hardware.sim.deployment import agent_devices

pytestmark = pytest.mark.servers
AGENT = "agent-t"


class Watcher:
    """A plain paho subscriber recording telemetry batches, acks, availability, status."""

    def __init__(self, broker: BrokerConfig):
        self.batches: list[TelemetryBatch] = []
        self.acks: list[CommandAck] = []
        self.avail: dict[str, dict[str, Any]] = {}
        self.status: list[bytes] = []
        self._lock = threading.Lock()
        self.subscribed = threading.Event()  # SUBACK received (cleared on a lost connection)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *a: c.subscribe(
            [
                (t, 1)
                for t in (
                    topics.telemetry_filter(),
                    topics.command_ack_filter(),
                    topics.availability_filter(),
                    topics.agent_status(AGENT),
                )
            ]
        )
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_disconnect = lambda *a: self.subscribed.clear()
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            if msg.topic.startswith(f"{topics.ROOT}/tele/"):
                self.batches.append(TelemetryBatch.decode(msg.payload))
            elif msg.topic.startswith(f"{topics.ROOT}/cmd-ack/"):
                self.acks.append(CommandAck.decode(msg.payload))
            elif msg.topic.endswith("/availability"):
                doc = json.loads(msg.payload)
                self.avail[doc["device_id"]] = doc
            else:
                self.status.append(msg.payload)

    def fields(self) -> dict[str, set[str]]:
        with self._lock:
            out: dict[str, set[str]] = {}
            for b in self.batches:
                for r in b.rows():
                    if r.value is not None:
                        out.setdefault(r.device_id, set()).add(r.field)
            return out

    def unique(self) -> list[TelemetryBatch]:
        """The batches received, each once (QoS 1 may deliver twice), in seq order."""
        with self._lock:
            return sorted({b.seq: b for b in self.batches}.values(), key=lambda b: b.seq)

    def states(self, command_id: str) -> list[CommandState]:
        with self._lock:
            return [a.state for a in self.acks if a.command_id == command_id]

    def send(self, cmd: Command) -> None:
        self.client.publish(topics.command(AGENT), cmd.encode(), qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def until(cond: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Poll a condition with a deadline (the events happen in other processes)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _run(
    broker: BrokerConfig,
    tmp_path,
    body: Callable[..., Any],
    agent_url: str | None = None,  # the agent's way to the broker (e.g. through a relay)
    **batch: Any,
) -> None:
    async def main() -> None:
        inventory = build_inventory("tiny")
        city = SimulatedCity(inventory, mqtt=broker, tracker_interval_s=0.5)
        endpoints = await city.start()
        devices = agent_devices(inventory, endpoints)
        for d in devices:
            d["interval_s"] = 0.5
            d["timeout_s"] = 2.0
        cfg = parse_config(
            {
                "var_dir": str(tmp_path),
                "broker": {"url": agent_url or broker.url},
                "agents": [
                    {
                        "id": AGENT,
                        "batch": {"max_rows": 5000, "max_delay_s": 0.2, **batch},
                        "devices": devices,
                    }
                ],
            }
        )
        watcher = Watcher(broker)
        agent = EdgeAgent(cfg, AGENT, seed=1)
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            # commands sent before the agent subscribed would be lost: wait for its first batch
            await until(
                lambda: watcher.batches and agent.metrics()["broker_connected"], 20, "agent online"
            )
            await body(agent=agent, city=city, watcher=watcher, devices=devices)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            watcher.close()
            await city.stop()

    asyncio.run(main())


def test_every_device_publishes_decoded_rows(mqtt_broker, tmp_path):
    async def body(agent, city, watcher, devices):
        ids = {d["id"] for d in devices}
        assert {d["protocol"] for d in devices} == {"opcua", "modbus", "mqtt_tracker"}
        await until(lambda: set(watcher.fields()) >= ids, 20, "rows from every device")
        fields = watcher.fields()
        for d in devices:
            if d["kind"] == "dust_monitor":
                assert {"pm25", "pm10", "noise"} <= fields[d["id"]]
            elif d["kind"] == "vehicle":
                assert {"lat", "lon", "speed"} <= fields[d["id"]]
            else:
                assert {"voltage_l1", "circuit1_on", "circuit1_current"} <= fields[d["id"]]
        await until(
            lambda: all(watcher.avail.get(i, {}).get("state") == "online" for i in ids),
            10,
            "availability",
        )
        seqs = [b.seq for b in watcher.batches]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        assert watcher.status and watcher.status[-1] == b"online"
        m = agent.metrics()
        assert (
            m["devices_online"] == len(ids)
            and m["polls_failed"] == 0
            and m["batches_published"] > 0
        )

    _run(mqtt_broker, tmp_path, body)


@pytest.mark.parametrize("protocol", ["opcua", "modbus"])
def test_switch_circuit_is_confirmed_by_read_back(mqtt_broker, tmp_path, protocol, caplog):
    async def body(agent, city, watcher, devices):
        dev = next(
            d for d in devices if d["protocol"] == protocol and d["kind"] == "lighting_cabinet"
        )
        await until(lambda: dev["id"] in watcher.fields(), 20, "first rows")
        want = not bool(city.state(dev["id"])["circuit2_on"])
        cmd = Command(
            device_id=dev["id"],
            action=CommandAction.SWITCH_CIRCUIT,
            params={"circuit": 2, "on": want},
            issued_by="eng",
            role="lighting_engineer",
            reason="test",
        )
        watcher.send(cmd)
        await until(
            lambda: (
                CommandState.CONFIRMED in watcher.states(cmd.command_id)
                or CommandState.FAILED in watcher.states(cmd.command_id)
            ),
            15,
            "a terminal ack",
        )
        assert watcher.states(cmd.command_id) == [
            CommandState.RECEIVED,
            CommandState.SENT,
            CommandState.ACKNOWLEDGED,
            CommandState.CONFIRMED,
        ]
        final = [a for a in watcher.acks if a.command_id == cmd.command_id][-1]
        assert final.readback == {"circuit2_on": 1.0 if want else 0.0}
        assert bool(city.state(dev["id"])["circuit2_on"]) == want
        # the same command again is not executed twice
        watcher.send(cmd)
        await until(lambda: len(watcher.states(cmd.command_id)) == 5, 10, "the repeated ack")
        assert agent.metrics()["commands_duplicates"] == 1
        assert agent.metrics()["commands_confirmed"] == 1

    with caplog.at_level("INFO", logger="rongguan.audit"):
        _run(mqtt_broker, tmp_path, body)
    assert any(
        "state=confirmed" in r.getMessage() and "by=eng" in r.getMessage() for r in caplog.records
    )


def test_bad_commands_are_rejected_or_expired(mqtt_broker, tmp_path):
    async def body(agent, city, watcher, devices):
        cab = next(d for d in devices if d["kind"] == "lighting_cabinet")["id"]
        dust = next(d for d in devices if d["kind"] == "dust_monitor")["id"]
        unknown = Command(
            device_id="LC-9999",
            action=CommandAction.SWITCH_CIRCUIT,
            params={"circuit": 1, "on": True},
        )
        bad = Command(
            device_id=cab, action=CommandAction.SWITCH_CIRCUIT, params={"circuit": 99, "on": True}
        )
        nocirc = Command(
            device_id=dust, action=CommandAction.SWITCH_CIRCUIT, params={"circuit": 1, "on": True}
        )
        old = Command(
            device_id=cab,
            action=CommandAction.SWITCH_CIRCUIT,
            params={"circuit": 1, "on": True},
            issued_ns=time.time_ns() - 60 * 10**9,
            ttl_s=5,
        )
        for c in (unknown, bad, nocirc, old):
            watcher.send(c)
        watcher.client.publish(topics.command(AGENT), b"\x00 not json", qos=1)
        watcher.client.publish(
            topics.command(AGENT), b'{"command_id": "x1", "device_id": "LC-0001"}', qos=1
        )
        await until(
            lambda: (
                all(watcher.states(c.command_id) for c in (unknown, bad, nocirc, old))
                and watcher.states("x1")
            ),
            10,
            "acks",
        )
        assert watcher.states(unknown.command_id) == [CommandState.REJECTED]
        assert watcher.states(bad.command_id) == [CommandState.REJECTED]
        assert watcher.states(nocirc.command_id) == [CommandState.REJECTED]
        assert watcher.states(old.command_id) == [CommandState.EXPIRED]
        assert watcher.states("x1") == [CommandState.REJECTED]
        details = {a.command_id: a.detail for a in watcher.acks}
        assert (
            "not owned" in details[unknown.command_id] and "outside 1..6" in details[bad.command_id]
        )
        await until(
            lambda: agent.metrics()["commands_bad_payloads"] == 2, 5, "bad payloads counted"
        )

    _run(mqtt_broker, tmp_path, body)


def test_broker_outage_buffers_on_disk_and_replays_in_order(mosquitto, mqtt_broker, tmp_path):
    from tests.edge_agent.relay import TcpRelay

    relay = TcpRelay(mosquitto.port).open()  # so the watcher is back before the agent

    async def body(agent, city, watcher, devices):
        await until(lambda: agent.metrics()["batches_published"] >= 2, 15, "first batches")
        relay.close()
        await asyncio.to_thread(mosquitto.stop)
        await until(
            lambda: agent.metrics()["batches_buffered"] >= 5, 20, "batches buffered while down"
        )
        depth_down = agent.metrics()["buffer_depth"]
        assert depth_down >= 5
        before = len(watcher.batches)
        await asyncio.to_thread(mosquitto.start)
        await until(watcher.subscribed.is_set, 30, "watcher resubscribed")
        relay.open()
        await until(
            lambda: (
                agent.metrics()["batches_replayed"] >= agent.metrics()["batches_buffered"] >= 5
                and agent.metrics()["buffer_depth"] <= 2
            ),
            30,
            "replay",
        )
        await until(
            lambda: len(watcher.batches) > before + depth_down, 15, "replayed batches delivered"
        )
        seqs = [b.seq for b in watcher.batches]
        assert seqs == sorted(seqs), "replayed out of order"
        # nothing lost: the sequence has no holes after the first batch the watcher saw
        assert set(range(seqs[0], seqs[-1] + 1)) == set(seqs)
        m = agent.metrics()
        assert m["batches_dropped"] == 0 and m["broker_disconnects"] >= 1

    try:
        _run(mqtt_broker, tmp_path, body, f"mqtt://127.0.0.1:{relay.port}", max_delay_s=0.1)
    finally:
        relay.close()


def test_device_outage_goes_offline_and_recovers_while_others_keep_polling(mqtt_broker, tmp_path):
    async def body(agent, city, watcher, devices):
        dev = next(d for d in devices if d["kind"] == "dust_monitor")["id"]
        other = next(d for d in devices if d["protocol"] == "opcua")["id"]
        await until(lambda: watcher.avail.get(dev, {}).get("state") == "online", 10, "online first")
        city.inject({"kind": "device_offline", "device": dev, "duration_s": 4.0})
        await until(
            lambda: watcher.avail.get(dev, {}).get("state") in ("degraded", "offline"),
            15,
            "outage seen",
        )
        polls_other = agent.metrics()["devices"][other]["polls_ok"]
        await until(lambda: watcher.avail.get(dev, {}).get("state") == "online", 30, "recovery")
        m = agent.metrics()["devices"]
        assert m[dev]["polls_failed"] >= 1
        assert m[other]["polls_ok"] > polls_other and m[other]["polls_failed"] == 0

    _run(mqtt_broker, tmp_path, body)
