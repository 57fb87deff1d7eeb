"""The rules service with ``cases.sink: http``: alarms become cases in a real local HTTP case
system that fails on purpose (tests/rules/test_cases.py's), exactly once each, and every
alarm carries its case number, in the book and on MQTT."""

from __future__ import annotations

import asyncio
import time

from contracts import topics
from contracts.alarms import AlarmEvent
from contracts.config import DeploymentConfig
from contracts.mqtt import make_client
from rules.defaults import load_default_rules
from rules.service import RulesService
from tests.rules._helpers import LC, S, frame
from tests.rules.test_cases import case_system  # noqa: F401 (the fixture)
from tests.rules.test_service import _Watcher

CABINETS = [f"LC-CS-{i}" for i in range(1, 5)]  # ids no other test on the broker uses


def _cfg(tmp_path, broker, url: str) -> DeploymentConfig:
    door = [r for r in load_default_rules() if r.id == "lighting.door_open"]
    devices = [
        {"id": dev, "kind": LC, "protocol": "opcua", "profile": "p", "endpoint": "opc.tcp://h:1",
         "location": {"lat": 30.6 + i / 100, "lon": 104.0}}
        for i, dev in enumerate(CABINETS)
    ]  # fmt: skip
    return DeploymentConfig(
        var_dir=str(tmp_path), broker=broker, rules=door,
        agents=[{"id": "a1", "devices": devices}],
        # the case system stalls once past this timeout: the retry must not file twice
        cases={"sink": "http", "url": url, "timeout_s": 0.5, "retry_max_s": 0.5},
    )  # fmt: skip


def _numbered(payload: bytes) -> bool:
    """An alarm of this test's cabinets that carries its case number."""
    if not payload:
        return False
    ev = AlarmEvent.decode(payload)
    return ev.device_id in CABINETS and ev.case_no is not None


def _clear_retained(broker, alarm_ids: list[str]) -> None:
    """Leave the shared broker as found: no retained alarms for the next test to see."""
    client = make_client(broker, "test-clear")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for alarm_id in alarm_ids:
            client.publish(topics.alarm(alarm_id), b"", qos=1, retain=True).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_service_files_one_case_per_alarm_in_an_http_case_system(
    tmp_path,
    mqtt_broker,
    case_system,  # noqa: F811
) -> None:
    url, state = case_system
    cfg = _cfg(tmp_path, mqtt_broker, url)
    svc = RulesService(cfg, snapshot_every_s=0.2)
    watcher = _Watcher(mqtt_broker)
    t0 = time.time_ns() // S * S
    opened = frame([(dev, LC, t0, "door_open", 1.0) for dev in CABINETS])

    async def scenario() -> dict[str, str]:
        stop = asyncio.Event()
        task = asyncio.create_task(svc.run(stop))
        try:
            svc.on_batch(opened)
            svc.on_batch(opened)  # the same rows again (a redelivered batch): no new alarm
            numbered: dict[str, str] = {}
            while len(numbered) < len(CABINETS):  # the retained alarms, with their case
                _, payload, _ = await watcher.next(
                    lambda m: _numbered(m[1]),
                    timeout_s=60,
                )
                ev = AlarmEvent.decode(payload)
                numbered[ev.alarm_id] = ev.case_no
        finally:
            stop.set()
            await task
        return numbered

    try:
        published = asyncio.run(scenario())
    finally:
        watcher.stop()
        _clear_retained(mqtt_broker, [a.alarm_id for a in svc.book.active()])

    alarms = svc.book.active()
    assert sorted(a.device_id for a in alarms) == CABINETS
    # one case per alarm, none twice, though requests failed, and one stalled after filing
    assert state["bad"] == 0 and state["stalled"] and state["requests"] > len(CABINETS)
    assert sorted(state["cases"]) == sorted(a.alarm_id for a in alarms)
    for a in alarms:  # the case number is recorded on the alarm, and was published with it
        assert a.case_no == state["cases"][a.alarm_id] == published[a.alarm_id]
        assert a.case_status == "accepted"
    cases = svc.metrics()["cases"]
    assert cases["pending"] == 0 and cases["delivered"] == len(CABINETS)
    assert cases["delivery_errors"] >= 4  # three 500s and one timeout, all retried

    requests = state["requests"]
    again = RulesService(cfg)  # a restart re-files nothing: every alarm has its case
    try:
        assert again.outbox.stats()["pending"] == 0 and state["requests"] == requests
    finally:
        again.outbox.close()
        again.book.close()
