"""Storm groups shown once: the wall's ticker and KPI counts, and the alarm console's rows,
detail pane and group actions (no browser)."""

from __future__ import annotations

import json

import pytest

from contracts.alarms import AlarmState
from contracts.config import BrokerConfig
from dashboard.actions import Actions
from dashboard.alarmgroups import group_alarms, group_label, severity_counts
from dashboard.auth import Identity
from dashboard.kpi import compute_kpis
from dashboard.livestore import LiveStore, devices_from_config
from dashboard.views.alarm_detail import timeline
from dashboard.views.alarms import AlarmsView
from dashboard.views.wall import alarm_list_html, kpi_html
from tests.dashboard._helpers import NOW, alarm, config, storm


class _Sent(list):
    def __call__(self, topic: str, payload: bytes, **kw) -> None:
        self.append(json.loads(payload))


@pytest.fixture
def store(tmp_path) -> LiveStore:
    s = LiveStore(devices_from_config(config(BrokerConfig(), str(tmp_path / "var"))))
    for a in [
        *storm(6),
        alarm("A-1"),
        alarm(
            "D-1", domain="dust", device_id="DM-0001", severity="minor", raised_ns=NOW + 50 * 10**9
        ),
    ]:
        s.apply_alarm(a.alarm_id, a.encode())
    return s


def test_a_storm_is_one_group_headed_by_its_parent_at_its_worst_severity():
    alarms = [*storm(6), alarm("A-1"), alarm("W-1", severity="warning")]
    groups = group_alarms(alarms)
    assert [g.key for g in groups] == ["G-1", "A-1", "W-1"]  # critical, major, warning
    g = groups[0]
    assert g.head.alarm_id == "G-1" and g.size == 6
    assert [c.alarm_id for c in g.children] == [f"G-1.{i}" for i in range(2, 7)]
    assert severity_counts(groups) == {"critical": 1, "major": 1, "minor": 0, "warning": 1}
    assert group_label(g, "zh") == "配电箱 人民南路1号箱：6 个回路告警"
    assert group_label(g, "en") == "Cabinet 人民南路1号箱: 6 circuits"
    assert group_label(groups[1], "en") == ""  # a lone alarm needs no label


def test_children_stay_together_when_their_parent_is_gone():
    kids = storm(4)[1:]  # the parent resolved: only its children are still active
    (g,) = group_alarms(kids)
    assert g.key == "G-1" and g.head.alarm_id == "G-1.2" and g.size == 3


def test_a_site_group_names_the_site_and_its_devices():
    site = {"site_name": "天府新区工地"}
    a = alarm("S-1", domain="dust", device_id="DM-0001", field="pm10", extra=site)
    b = alarm("S-2", domain="dust", device_id="DM-0002", field="pm10",
              extra={**site, "parent": "S-1"})  # fmt: skip
    (g,) = group_alarms([a, b])
    assert group_label(g, "en") == "Site 天府新区工地: 2 alarms on 2 devices"


def test_wall_ticker_and_kpi_count_the_storm_once(store):
    k = compute_kpis(store.devices(), store.alarms(), NOW)
    assert k.alarms == {"critical": 1, "major": 1, "minor": 1, "warning": 0}
    assert k.alarms_total == 8
    tiles = kpi_html(k, "en", NOW)
    assert "8 alarms in 3 groups" in tiles
    ticker = alarm_list_html(store.alarms(active_only=True), "zh")
    assert ticker.count('class="rg-alarm"') == 3
    assert 'data-alarm="G-1" data-size="6"' in ticker and "6 个回路告警" in ticker
    assert "G-1.2" not in ticker  # children are inside the group, not on the wall


def _view(store, role: str = "operator", sent: _Sent | None = None) -> AlarmsView:
    v = AlarmsView(store, Actions(store, sent if sent is not None else _Sent()),
                   Identity(role, role), "zh")  # fmt: skip
    v.version = store.version
    v.full()
    return v


def test_console_shows_the_parent_with_its_children_count_and_expands_it(store):
    v = _view(store)
    assert v.sync.keys() == ["G-1", "A-1", "D-1"]
    assert list(v.table.value["group"]) == ["6 ▸", "", ""]
    assert "8" in v.summary.object and "3" in v.summary.object
    v.f_children.value = True
    assert v.sync.keys() == ["G-1", *[f"G-1.{i}" for i in range(2, 7)], "A-1", "D-1"]
    assert list(v.table.value["group"]) == ["6 ▾", *["↳"] * 5, "", ""]


def test_detail_shows_the_case_and_the_children_of_the_selected_group(store):
    v = _view(store)
    assert "rg-detail-empty" in v.detail.object
    v.table.selection = [0]
    detail = v.detail.object
    assert 'data-alarm="G-1"' in detail and "CD-2026-000200" in detail
    for i in range(1, 7):
        assert f"LC-0001/circuit{i}_current" in detail
    assert "6 个回路告警" in detail


def test_detail_follows_a_change_of_another_member_of_the_group(store):
    v = _view(store)
    v.table.selection = [0]
    row = 'data-alarm="G-1.4"><td>↳</td><td>LC-0001/circuit4_current</td><td>紧急</td><td>{}</td>'
    assert row.format("未处理") in v.detail.object
    kid = storm(6)[3].model_copy(update={"state": AlarmState.ACKNOWLEDGED})
    store.apply_alarm(kid.alarm_id, kid.encode())
    v.update()
    assert row.format("已确认") in v.detail.object


def test_group_actions_reach_every_member_comments_only_the_parent(store):
    sent = _Sent()
    v = _view(store, sent=sent)
    v.table.selection = [0]
    v.act("acknowledge")
    assert sorted(d["alarm_id"] for d in sent) == sorted(a.alarm_id for a in storm(6))
    assert "(6/6)" in v.message.object
    sent.clear()
    v.text.value = "已派人"
    v.act("comment")
    assert [d["alarm_id"] for d in sent] == ["G-1"]
    sent.clear()
    v.whole_group.value = False
    v.act("shelve")
    assert [d["alarm_id"] for d in sent] == ["G-1"]


def test_a_viewer_is_refused_for_every_member_and_nothing_is_sent(store):
    sent = _Sent()
    v = _view(store, role="viewer", sent=sent)
    v.table.selection = [0]
    v.act("acknowledge")
    assert sent == [] and "rg-bad" in v.message.object


def test_timeline_merges_stored_transitions_and_operators_notes():
    a = alarm("T-1", extra={"comments": [{"user": "op", "text": "已派人", "ts_ns": NOW + 5,
                                          "action": "comment"}]})  # fmt: skip
    records = [
        {"ts": NOW + 1, "state": "open", "condition_active": True, "case_no": None},
        {"ts": NOW + 2, "state": "open", "condition_active": True, "case_no": "CD-1",
         "case_status": "filed"},
        {"ts": NOW + 9, "state": "acknowledged", "condition_active": True, "case_no": "CD-1",
         "case_status": "filed"},
    ]  # fmt: skip
    got = timeline(a, records)
    assert got == [
        (NOW + 9, "st_acknowledged", ""),
        (NOW + 5, "comment", "op: 已派人"),
        (NOW + 2, "ev_case", "CD-1 filed"),
        (NOW, "ev_raised", ""),
    ]
