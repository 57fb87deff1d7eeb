"""The alarm book: lifecycle, one alarm per (rule, subject), persistence, publishing."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from contracts.alarms import AlarmEvent, AlarmState
from contracts.config import AnyRuleConfig, DeviceConfig
from contracts.geofence import GeofenceConfig
from rules.alarms import AlarmActionError, AlarmBook
from rules.cases import case_record
from rules.transition import Transition
from tests.rules._helpers import S, pm10, theft

DEV = DeviceConfig(id="D1", kind="dust_monitor", protocol="modbus", profile="p", endpoint="modbus://h:1",
                   location={"lat": 30.66, "lon": 104.06}, attrs={"site": "S-1"})  # fmt: skip


def _tr(kind: str, ts: int, value: float, subject: str = "D1") -> Transition:
    return Transition(
        "pm10", "D1", subject, "pm10", kind, ts * S, value, 200.0 if kind == "raise" else 150.0
    )


@pytest.fixture
def book(tmp_path):
    published: list[AlarmEvent] = []
    stored: list[AlarmEvent] = []
    b = AlarmBook(tmp_path / "alarms.db", published.append, stored.append, devices={"D1": DEV})
    b.published, b.stored = published, stored  # type: ignore[attr-defined]
    yield b
    b.close()


def test_raise_opens_once_and_clear_resolves(book) -> None:
    ev, new = book.on_transition(_tr("raise", 1, 250), pm10())
    assert new and ev.state == AlarmState.OPEN and ev.condition_active
    assert (ev.lat, ev.lon, ev.extra["site"], ev.severity, ev.domain) == (
        30.66,
        104.06,
        "S-1",
        "major",
        "dust",
    )
    assert len(ev.alarm_id) == 12 and int(ev.alarm_id, 16) >= 0
    again, new2 = book.on_transition(_tr("raise", 2, 300), pm10())
    assert not new2 and again.alarm_id == ev.alarm_id and again.value == 300
    cleared, _ = book.on_transition(_tr("clear", 3, 100), pm10())
    assert (
        cleared.state == AlarmState.RESOLVED
        and not cleared.condition_active
        and cleared.cleared_ns == 3 * S
    )
    assert book.active() == []
    # a new raise long after resolution is a new alarm (a quick one reopens: test_policy)
    ev3, new3 = book.on_transition(_tr("raise", 4 + 601, 260), pm10())
    assert new3 and ev3.alarm_id != ev.alarm_id
    assert [e.state for e in book.published] == ["open", "open", "resolved", "open"]
    assert book.stored == book.published


def test_clear_keeps_acknowledged_state(book) -> None:
    ev, _ = book.on_transition(_tr("raise", 1, 250), pm10())
    book.apply_action(ev.alarm_id, "acknowledge", "op1", "on it")
    cleared, _ = book.on_transition(_tr("clear", 2, 100), pm10())
    assert (
        cleared.state == AlarmState.ACKNOWLEDGED
        and cleared.cleared_ns == 2 * S
        and not cleared.condition_active
    )
    # still the open alarm for this subject: a re-raise updates it
    ev2, new = book.on_transition(_tr("raise", 3, 260), pm10())
    assert (
        not new and ev2.alarm_id == ev.alarm_id and ev2.condition_active and ev2.cleared_ns is None
    )


def test_actions_follow_the_lifecycle_and_persist(book, tmp_path) -> None:
    ev, _ = book.on_transition(_tr("raise", 1, 250), pm10())
    book.apply_action(ev.alarm_id, "comment", "op1", "工地已通知")
    book.apply_action(ev.alarm_id, "shelve", "op1", "")
    assert book.get(ev.alarm_id).state == AlarmState.SHELVED
    book.apply_action(ev.alarm_id, "acknowledge", "op2", "")
    book.apply_action(ev.alarm_id, "resolve", "op2", "done")
    closed = book.apply_action(ev.alarm_id, "close", "op2", "")
    assert closed.state == AlarmState.CLOSED
    assert [c["text"] for c in closed.extra["comments"]] == ["工地已通知", "done"]
    with pytest.raises(AlarmActionError):
        book.apply_action(ev.alarm_id, "acknowledge", "op2", "")
    with pytest.raises(AlarmActionError):
        book.apply_action(ev.alarm_id, "explode", "op2", "")
    with pytest.raises(AlarmActionError):
        book.apply_action("nope", "close", "op2", "")
    assert [h[2] for h in book.history(ev.alarm_id)] == [
        "raise",
        "comment",
        "shelve",
        "acknowledge",
        "resolve",
        "close",
    ]
    # a clear for a closed alarm changes nothing
    assert book.on_transition(_tr("clear", 5, 100), pm10()) is None

    reopened = AlarmBook(tmp_path / "alarms.db", lambda e: None)
    assert reopened.get(ev.alarm_id) == closed
    reopened.close()


def test_open_alarms_survive_a_restart(book, tmp_path) -> None:
    ev, _ = book.on_transition(_tr("raise", 1, 250), pm10())
    reopened = AlarmBook(tmp_path / "alarms.db", lambda e: None)
    assert [a.alarm_id for a in reopened.active()] == [ev.alarm_id]
    same, new = reopened.on_transition(_tr("raise", 2, 260), pm10())
    assert not new and same.alarm_id == ev.alarm_id
    reopened.close()


def test_per_circuit_subjects_are_separate_alarms(book) -> None:
    rule = theft()
    a = Transition("theft", "L1", "L1/circuit1_current", "circuit1_current", "raise", S, 0.0, 0.3)
    b = Transition("theft", "L1", "L1/circuit2_current", "circuit2_current", "raise", S, 0.0, 0.3)
    (ea, na), (eb, nb) = book.on_transition(a, rule), book.on_transition(b, rule)
    assert na and nb and ea.alarm_id != eb.alarm_id and ea.domain == "lighting"
    assert ea.lat is None  # an unknown device has no location


def test_a_failing_publisher_does_not_lose_the_alarm(tmp_path) -> None:
    def boom(ev):
        raise RuntimeError("broker gone")

    b = AlarmBook(tmp_path / "a.db", boom)
    ev, _ = b.on_transition(_tr("raise", 1, 250), pm10())
    assert b.get(ev.alarm_id) is not None and b.counters["publish_errors"] == 1
    b.close()


def test_a_vehicle_alarm_names_its_geofence_and_where_it_was(tmp_path) -> None:
    truck = DeviceConfig(id="TRK-1", kind="vehicle", protocol="jt808", profile="p", endpoint="x",
                         location={"lat": 30.5, "lon": 104.0}, attrs={"fleet": "construction_waste"})  # fmt: skip
    site = GeofenceConfig(id="DS-01", kind="disposal_site", name="龙泉驿区消纳场",
                          center=(104.2, 30.6), radius_m=300)  # fmt: skip
    overstay, cover = TypeAdapter(list[AnyRuleConfig]).validate_python([
        {"family": "geofence", "id": "overstay", "zones": ["disposal_site"], "for_s": 3600},
        {"family": "cover_moving", "id": "cover", "for_s": 30},
    ])  # fmt: skip
    published: list[AlarmEvent] = []
    b = AlarmBook(tmp_path / "a.db", published.append, devices={"TRK-1": truck}, geofences=[site])
    tr = Transition("overstay", "TRK-1", "TRK-1/DS-01", "DS-01", "raise", S, 3600.0, 3600.0,
                    "DS-01", 30.6001, 104.2002)  # fmt: skip
    ev, new = b.on_transition(tr, overstay)
    assert new and (ev.lat, ev.lon) == (30.6001, 104.2002)  # where the truck was, not its depot
    want = {
        "geofence": "DS-01",
        "geofence_name": "龙泉驿区消纳场",
        "geofence_kind": "disposal_site",
    }
    assert want.items() <= ev.extra.items()
    assert want.items() <= b.get(ev.alarm_id).extra.items()  # persisted
    assert want.items() <= published[-1].extra.items()  # and on the dashboard's wire
    case = case_record(ev, overstay)  # type: ignore[arg-type]
    assert case.evidence["geofence"] == "DS-01" and "龙泉驿区消纳场" in case.description
    assert (case.lat, case.lon) == (30.6001, 104.2002)
    # no geofence, no position: no geofence keys, the device's location
    plain = Transition("cover", "TRK-1", "TRK-1", "", "raise", S, 30.0, 30.0)
    ev2, _ = b.on_transition(plain, cover)
    assert "geofence" not in ev2.extra and (ev2.lat, ev2.lon) == (30.5, 104.0)
    # an id the book has no config for is still named (the dashboard maps ids to names)
    other = Transition("overstay", "TRK-1", "TRK-1/DS-09", "DS-09", "raise", S, 1.0, 1.0, "DS-09")
    ev3, _ = b.on_transition(other, overstay)
    assert ev3.extra["geofence"] == "DS-09" and "geofence_name" not in ev3.extra
    b.close()
