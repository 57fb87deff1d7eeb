"""Permission checks live in the handlers that act; refused attempts are audited and send nothing."""

from __future__ import annotations

import logging

import pytest

from contracts import topics
from contracts.commands import Command
from contracts.config import BrokerConfig
from dashboard.actions import Actions
from dashboard.auth import GUEST, Identity, identity_of
from dashboard.feed import LiveFeed
from dashboard.livestore import LiveStore, devices_from_config
from tests.dashboard._helpers import Recorder, alarm, batch, config, wait_for


class _Sent(list):
    def __call__(self, topic: str, payload: bytes, **kw) -> None:
        self.append((topic, payload))


@pytest.fixture
def store(tmp_path) -> LiveStore:
    s = LiveStore(devices_from_config(config(BrokerConfig(), str(tmp_path))))
    s.apply_batch(batch())
    s.apply_alarm("A-1", alarm().encode())
    return s


@pytest.mark.parametrize(
    "role,ok",
    [
        ("lighting_engineer", True),
        ("admin", True),
        ("viewer", False),
        ("operator", False),
        ("sanitation_supervisor", False),
    ],
)
def test_switch_circuit_by_role(store, role, ok, caplog):
    sent = _Sent()
    with caplog.at_level(logging.INFO, logger="rongguan.audit"):
        res = Actions(store, sent).switch_circuit(
            Identity("u", role), "LC-0001", 1, False, "维修 repair"
        )
    assert res.ok is ok and len(sent) == (1 if ok else 0)
    assert any(
        r.name == "rongguan.audit" and ("SENT" if ok else "REFUSED") in r.getMessage()
        for r in caplog.records
    )
    if ok:
        assert sent[0][0] == topics.command("agent-7")
        cmd = Command.decode(sent[0][1])
        assert (cmd.params, cmd.issued_by, cmd.role, cmd.reason) == (
            {"circuit": 1, "on": False},
            "u",
            role,
            "维修 repair",
        )


def test_switch_needs_reason_and_known_cabinet(store):
    sent = _Sent()
    a = Actions(store, sent)
    eng = Identity("e", "lighting_engineer")
    assert a.switch_circuit(eng, "LC-0001", 1, True, "  ").message == "reason_required"
    assert a.switch_circuit(eng, "DM-0001", 1, True, "x").message == "unknown_device"
    assert a.switch_circuit(eng, "LC-0001", 0, True, "x").message == "bad_circuit"
    assert sent == []


@pytest.mark.parametrize(
    "role,ok",
    # Same table as the rules service: the engineer may act on lighting alarms (A-1 is one).
    [("operator", True), ("admin", True), ("viewer", False), ("lighting_engineer", True),
     ("sanitation_supervisor", False)],
)  # fmt: skip
def test_acknowledge_by_role(store, role, ok):
    sent = _Sent()
    res = Actions(store, sent).acknowledge_alarm(Identity("u", role), "A-1", "收到")
    assert res.ok is ok and len(sent) == (1 if ok else 0)
    if ok:
        assert sent[0][0] == topics.alarm_action()


def test_identity_from_server_user(tmp_path):
    cfg = config(BrokerConfig(), str(tmp_path))
    assert identity_of(cfg, None) == Identity(GUEST, "viewer")
    assert identity_of(cfg, "engineer") == Identity("engineer", "lighting_engineer")
    assert identity_of(cfg, "mallory") is None
    cfg.dashboard.guest_role = None
    assert identity_of(cfg, GUEST) is None


def test_engineer_command_reaches_the_agent_topic_on_a_real_broker(mqtt_broker, tmp_path):
    store = LiveStore(devices_from_config(config(mqtt_broker, str(tmp_path))))
    store.apply_batch(batch())
    feed = LiveFeed(mqtt_broker, store)
    feed.start()
    rec = Recorder(mqtt_broker, topics.command("agent-7"))
    try:
        assert feed.connected.wait(10)
        actions = Actions(store, feed.publish)
        assert not actions.switch_circuit(
            Identity(GUEST, "viewer"), "LC-0001", 2, True, "想试试"
        ).ok
        res = actions.switch_circuit(
            Identity("engineer", "lighting_engineer"), "LC-0001", 2, True, "巡检"
        )
        assert res.ok
        topic, payload = wait_for("command", lambda: rec.messages and rec.messages[0])
        cmd = Command.decode(payload)
        assert topic == topics.command("agent-7") and cmd.command_id == res.command_id
        assert len(rec.messages) == 1  # the viewer's attempt sent nothing
    finally:
        rec.close()
        feed.stop()
