"""The rules service against a real Mosquitto: alarms published retained, actions taken."""

from __future__ import annotations

import asyncio
import json
import queue
import time

from contracts import topics
from contracts.alarms import AlarmEvent
from contracts.config import DeploymentConfig
from contracts.mqtt import make_client
from rules.defaults import load_default_rules
from rules.service import RulesService
from tests.rules._helpers import LC, S, frame


def _cfg(tmp_path, broker) -> DeploymentConfig:
    return DeploymentConfig(
        var_dir=str(tmp_path), broker=broker, rules=load_default_rules(),
        agents=[{"id": "a1", "devices": [{"id": "LC-1", "kind": LC, "protocol": "opcua", "profile": "p",
                 "endpoint": "opc.tcp://h:1", "location": {"lat": 30.6, "lon": 104.0}}]}],
    )  # fmt: skip


class _Watcher:
    """A subscriber to every alarm topic, collecting (topic, payload) in a queue."""

    def __init__(self, broker):
        self.q: queue.Queue = queue.Queue()
        self.client = make_client(broker, "test-watch")
        self.client.on_connect = lambda c, u, f, rc, p=None: c.subscribe(
            topics.alarm_filter(), qos=1
        )
        self.client.on_message = lambda c, u, m: self.q.put((m.topic, m.payload, m.retain))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    async def next(self, pred, timeout_s: float = 15.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                item = await asyncio.to_thread(self.q.get, True, 0.2)
            except queue.Empty:
                continue
            if pred(item):
                return item
        raise AssertionError("no matching alarm message in time")

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_service_publishes_alarms_and_takes_actions(tmp_path, mqtt_broker) -> None:
    cfg = _cfg(tmp_path, mqtt_broker)
    svc = RulesService(cfg, snapshot_every_s=0.2)
    watcher = _Watcher(mqtt_broker)

    # stamped an hour ahead of the wall clock: the service's own clock (it ticks every
    # second) must not confirm the pending theft before the restart this test is about
    t0 = time.time_ns() // S * S + 3600 * S
    powered = [("LC-1", LC, t0, f"voltage_l{p}", 220.0) for p in (1, 2, 3)]

    async def scenario() -> str:
        stop = asyncio.Event()
        task = asyncio.create_task(svc.run(stop))
        svc.on_batch(frame([*powered, ("LC-1", LC, t0, "door_open", 1.0),
                            ("LC-1", LC, t0, "circuit1_on", 1.0),
                            ("LC-1", LC, t0, "circuit1_current", 0.0)]))  # fmt: skip
        _, payload, _ = await watcher.next(
            lambda m: m[1] and AlarmEvent.decode(m[1]).case_no is not None
        )
        ev = AlarmEvent.decode(payload)
        assert (ev.rule_id, ev.device_id, ev.lat, ev.case_status) == (
            "lighting.door_open",
            "LC-1",
            30.6,
            "filed",
        )
        assert ev.case_no.startswith("CD")

        pub = make_client(mqtt_broker, "test-op")
        pub.connect(mqtt_broker.host, mqtt_broker.port)
        pub.loop_start()
        send = lambda doc: pub.publish(
            topics.alarm_action(), json.dumps(doc), qos=1
        ).wait_for_publish(5)  # noqa: E731
        send(
            {
                "alarm_id": ev.alarm_id,
                "action": "close",
                "user": "guest",
                "role": "viewer",
                "text": "",
            }
        )
        send(
            {
                "alarm_id": ev.alarm_id,
                "action": "close",
                "user": "op",
                "role": "operator",
                "text": "ok",
            }
        )
        topic, payload, _ = await watcher.next(
            lambda m: m[0] == topics.alarm(ev.alarm_id) and m[1] == b""
        )
        pub.disconnect()
        pub.loop_stop()
        assert svc.metrics()["actions_rejected"] == 1 and svc.metrics()["actions"] == 1
        # the cable-theft condition is pending (for_s 6): it must survive a restart
        svc.on_batch(frame([("LC-1", LC, t0 + 3 * S, "circuit1_current", 0.0)]))
        stop.set()
        await task
        return ev.alarm_id

    try:
        alarm_id = asyncio.run(scenario())
    finally:
        watcher.stop()
    assert svc.book.get(alarm_id).state == "closed"
    assert (tmp_path / "rules-state.bin").exists() and svc.metrics()["snapshots"] >= 1

    again = RulesService(cfg)
    # pending: cable theft (for_s 6); a collapsed current is not a lamp failure
    assert again.engine.stats()["pending"] == 1
    again.on_batch(frame([("LC-1", LC, t0 + 7 * S, "circuit1_current", 0.0)]))
    theft = [a for a in again.book.active() if a.rule_id == "lighting.cable_theft"]
    assert [(a.subject, a.severity) for a in theft] == [("LC-1/circuit1_current", "critical")]
    m = again.metrics()
    assert m["batch_errors"] == 0 and m["cases_enqueued"] == 1 and m["publish_deferred"] >= 1


def test_a_bad_batch_is_counted_not_raised(tmp_path, mqtt_broker) -> None:
    svc = RulesService(_cfg(tmp_path, mqtt_broker))
    import polars as pl

    svc.on_batch(pl.DataFrame({"device_id": ["x"]}))  # missing columns
    assert svc.metrics()["batch_errors"] == 1
