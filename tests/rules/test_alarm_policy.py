"""The alarm book's policies: reopen, flapping, storm grouping, assign and start."""

from __future__ import annotations

import pytest

from contracts.alarms import AlarmEvent, AlarmState
from contracts.config import DeploymentConfig, DeviceConfig
from rules.alarmpolicy import AlarmPolicy
from rules.alarms import AlarmActionError, AlarmBook
from rules.defaults import load_default_rules
from rules.service import RulesService
from rules.transition import Transition
from tests.rules._helpers import LC, S, door, frame, pm10, theft


def _dm(i: int, site: str) -> DeviceConfig:
    return DeviceConfig(id=f"D{i}", kind="dust_monitor", protocol="modbus", profile="p",
                        endpoint="modbus://h:1", attrs={"permit_no": site})  # fmt: skip


DEVICES = {"D1": _dm(1, "P-1"), "D2": _dm(2, "P-1"), "D3": _dm(3, "P-2")}


def _pm(kind: str, ts: float, device: str = "D1", value: float = 250.0) -> Transition:
    return Transition("pm10", device, device, "pm10", kind, int(ts * S), value, 200.0)


def _circuit(c: int, ts: float, kind: str = "raise") -> Transition:
    f = f"circuit{c}_current"
    return Transition("theft", "L1", f"L1/{f}", f, kind, int(ts * S), 0.0, 0.3)


@pytest.fixture
def book(tmp_path):
    published: list[AlarmEvent] = []
    b = AlarmBook(
        tmp_path / "alarms.db", published.append, devices=DEVICES,
        policy=AlarmPolicy(flap_count=4, flap_window_s=600, flap_quiet_s=300, storm_window_s=60),
    )  # fmt: skip
    b.published = published  # type: ignore[attr-defined]
    yield b
    b.close()


def test_a_quick_re_raise_reopens_the_same_alarm(book) -> None:
    ev, new = book.on_transition(_pm("raise", 0), pm10())
    book.on_transition(_pm("clear", 30), pm10())
    again, new2 = book.on_transition(_pm("raise", 90), pm10())
    assert new and not new2 and again.alarm_id == ev.alarm_id
    assert again.state == AlarmState.OPEN and again.extra["reopened"] == 1
    assert book.counters["raised"] == 1 and book.counters["reopened"] == 1


def test_an_operator_resolution_is_not_reopened(book) -> None:
    ev, _ = book.on_transition(_pm("raise", 0), pm10())
    book.apply_action(ev.alarm_id, "resolve", "op", "fixed")
    book.on_transition(_pm("clear", 10), pm10())
    again, new = book.on_transition(_pm("raise", 20), pm10())
    assert new and again.alarm_id != ev.alarm_id


def test_flapping_is_held_raised_with_one_case_and_released_when_quiet(book) -> None:
    opened = []
    for k in range(6):  # 12 transitions within 2 minutes
        res = book.on_transition(_pm("raise", k * 20), pm10())
        opened.append(res[1])
        book.on_transition(_pm("clear", k * 20 + 10), pm10())
    assert opened == [True] + [False] * 5  # one alarm, hence one case
    (ev,) = book.active()
    assert ev.extra["flapping"] and ev.state == AlarmState.OPEN and not ev.condition_active
    last = 5 * 20 + 10
    assert book.tick(int((last + 299) * S)) == []  # not quiet long enough
    (released,) = book.tick(int((last + 300) * S))
    assert released.alarm_id == ev.alarm_id and released.state == AlarmState.RESOLVED
    assert released.extra["flapping"] is False and released.extra["flapped"] == 1
    assert book.active() == [] and book.counters["unflapped"] == 1


def test_a_flapping_alarm_whose_condition_holds_stays_open_when_released(book) -> None:
    for k in range(3):
        book.on_transition(_pm("raise", k * 20), pm10())
        book.on_transition(_pm("clear", k * 20 + 10), pm10())
    ev, _ = book.on_transition(_pm("raise", 100), pm10())
    assert ev.extra["flapping"]
    (released,) = book.tick(int(500 * S))
    assert released.state == AlarmState.OPEN and released.condition_active


def test_slow_cycles_do_not_count_as_flapping(book) -> None:
    for k in range(6):  # one cycle every 20 min: never 5 transitions in 10 min
        book.on_transition(_pm("raise", k * 1200), pm10())
        ev, _ = book.on_transition(_pm("clear", k * 1200 + 60), pm10())
        assert not ev.extra.get("flapping") and ev.state == AlarmState.RESOLVED


def test_one_cabinets_circuits_are_grouped_under_the_first(book) -> None:
    rule = theft()
    parent, p_new = book.on_transition(_circuit(1, 0), rule)
    child, c_new = book.on_transition(_circuit(2, 5), rule)
    third, _ = book.on_transition(_circuit(3, 50), rule)
    late, _ = book.on_transition(_circuit(4, 500), rule)  # long after: its own alarm
    assert p_new and c_new  # newly opened, but a child files no case
    assert child.extra["parent"] == parent.alarm_id == third.extra["parent"]
    assert "parent" not in late.extra
    assert book.get(parent.alarm_id).extra["children"] == [child.alarm_id, third.alarm_id]
    # a door alarm of the same cabinet within the window joins the group too
    d = Transition("door", "L1", "L1", "door_open", "raise", 55 * S, 1.0, 0.5)
    dev, _ = book.on_transition(d, door())
    assert dev.extra["parent"] == parent.alarm_id


def test_one_sites_monitors_are_grouped_and_share_the_parents_case(book) -> None:
    from contracts.alarms import CaseReceipt

    p, _ = book.on_transition(_pm("raise", 0, "D1"), pm10())
    c, _ = book.on_transition(_pm("raise", 20, "D2"), pm10())
    other, _ = book.on_transition(_pm("raise", 20, "D3"), pm10())  # another site
    assert c.extra["parent"] == p.alarm_id and "parent" not in other.extra
    book.set_case(p.alarm_id, CaseReceipt(case_no="CD-1"))
    assert book.get(c.alarm_id).case_no == "CD-1"
    assert {e.alarm_id for e in book.without_case()} == {other.alarm_id}


def test_assign_and_start(book) -> None:
    ev, _ = book.on_transition(_pm("raise", 0), pm10())
    a = book.apply_action(ev.alarm_id, "assign", "op1", "assign:张三")
    assert a.assignee == "张三" and a.extra["assigned_by"] == "op1" and a.state == AlarmState.OPEN
    with pytest.raises(AlarmActionError):
        book.apply_action(ev.alarm_id, "assign", "op1", "  ")
    book.apply_action(ev.alarm_id, "acknowledge", "op1")
    s = book.apply_action(ev.alarm_id, "start", "张三", "到场处置")
    assert s.state == AlarmState.IN_PROGRESS and s.assignee == "张三"
    with pytest.raises(AlarmActionError):
        book.apply_action(ev.alarm_id, "start", "张三")  # already in progress
    cleared, _ = book.on_transition(_pm("clear", 30), pm10())
    assert cleared.state == AlarmState.IN_PROGRESS  # work in progress is not auto-resolved
    assert [h[2] for h in book.history(ev.alarm_id)][:4] == [
        "raise", "assign", "acknowledge", "start",
    ]  # fmt: skip
    assert book.published[-1].state == AlarmState.IN_PROGRESS


def test_the_service_files_one_case_per_group(tmp_path) -> None:
    cfg = DeploymentConfig(
        var_dir=str(tmp_path), rules=load_default_rules(),
        agents=[{"id": "a1", "devices": [{"id": "LC-1", "kind": LC, "protocol": "opcua",
                 "profile": "p", "endpoint": "opc.tcp://h:1"}]}],
    )  # fmt: skip
    svc = RulesService(cfg, store=object())
    rows = []
    for t in range(0, 10):
        rows += [("LC-1", LC, t * S, f"voltage_l{ph}", 220.0) for ph in (1, 2, 3)]  # supply on
        for c in (1, 2, 3):
            rows += [("LC-1", LC, t * S, f"circuit{c}_on", 1.0)]
            rows += [("LC-1", LC, t * S, f"circuit{c}_current", 0.0 if t >= 2 else 5.0)]
    svc.on_batch(frame(rows))
    theft_alarms = [a for a in svc.book.active() if a.rule_id == "lighting.cable_theft"]
    assert len(theft_alarms) == 3
    assert sum("parent" not in a.extra for a in theft_alarms) == 1
    assert svc.metrics()["cases_enqueued"] == 1 and svc.outbox.stats()["pending"] == 1
    # after a restart no child is re-enqueued
    svc.book.close()
    svc.outbox.close()
    again = RulesService(cfg, store=object())
    assert again.outbox.stats()["pending"] == 1
