"""The alarm console's history tab over a real embedded store holding a storm the real
alarm book recorded: one row per group, children on demand, the detail read by alarm id
(no browser)."""

from __future__ import annotations

import json

import pytest

from contracts.config import BrokerConfig, StoreConfig
from dashboard.actions import Actions
from dashboard.auth import Identity
from dashboard.history import History
from dashboard.livestore import LiveStore, devices_from_config
from dashboard.views.alarms import AlarmsView
from ingest.store.embedded import EmbeddedStore
from tests.alarmstorm import Storm, record_storm
from tests.dashboard._helpers import NOW, alarm, config


class _Sent(list):
    def __call__(self, topic: str, payload: bytes, **kw) -> None:
        self.append(json.loads(payload))


@pytest.fixture
def cfg(tmp_path):
    return config(BrokerConfig(), str(tmp_path / "var"))


@pytest.fixture
def storm(cfg, tmp_path) -> Storm:
    es = EmbeddedStore(cfg.path(cfg.store.path))
    try:
        devices = {d.id: d for _, d in cfg.devices().values()}
        return record_storm(tmp_path, es, NOW - 3600 * 10**9, devices=devices)
    finally:
        es.close()


@pytest.fixture
def view(cfg, storm):
    live = LiveStore(devices_from_config(cfg))
    live.apply_alarm("A-1", alarm("A-1").encode())  # one active alarm, not in the history
    history = History(cfg)
    v = AlarmsView(live, Actions(live, _Sent()), Identity("op", "operator"), "en", history)
    v.version = live.version
    v.full()
    yield v
    history.close()


def _hist(v: AlarmsView, col: str) -> list:
    return list(v.hist_table.value[col])


def test_a_recorded_storm_is_one_history_row_with_its_count(view, storm):
    assert _hist(view, "alarm_id") == [storm.parent, storm.lone]  # the storm changed last
    assert _hist(view, "group") == ["6 ▸", ""]
    assert _hist(view, "state") == ["resolved", "open"]
    assert "7 alarms in 2 groups" in view.hist_note.object


def test_the_history_expands_like_the_live_list(view, storm):
    view.f_children.value = True
    assert _hist(view, "alarm_id") == [storm.parent, *storm.children, storm.lone]
    assert _hist(view, "group") == ["6 ▾", *["↳"] * 5, ""]
    assert view.sync.keys() == ["A-1"]  # the live list is unchanged by the history
    view.f_children.value = False
    assert len(view.hist_table.value) == 2


def test_filters_apply_to_history_groups(view, storm):
    view.f_domain.value = "dust"
    assert len(view.hist_table.value) == 0 and "0 alarms in 0 groups" in view.hist_note.object
    view.f_domain.value = ""
    view.f_severity.value = "critical"  # the storm only: the door alarm is major
    assert _hist(view, "alarm_id") == [storm.parent]


def test_a_history_row_shows_its_group_and_its_stored_transitions(view, storm):
    view.hist_table.selection = [0]
    detail = view.detail.object
    assert f'data-alarm="{storm.parent}"' in detail and "rg-members" in detail
    for child in storm.children:
        assert f'data-alarm="{child}"' in detail
    assert "Cabinet 人民南路1号箱: 6 circuits" in detail  # the stored device name
    # the timeline comes from the store, read by the alarm's id
    for what in ("acknowledged", "resolved", "condition cleared", "已派人 dispatched"):
        assert what in detail, what
    # picking an active alarm takes the detail over and lets the history row go
    view.table.selection = [0]
    assert 'data-alarm="A-1"' in view.detail.object and view.hist_table.selection == []
    view.hist_table.selection = [1]
    assert f'data-alarm="{storm.lone}"' in view.detail.object and view.table.selection == []


def test_the_pick_follows_its_alarm_when_the_history_is_reread(view, storm):
    view.hist_table.selection = [1]  # the door alarm
    view.f_children.value = True  # rows move: the storm's children come in above it
    assert view.hist_table.selection == [6]
    assert f'data-alarm="{storm.lone}"' in view.detail.object


def test_actions_go_to_the_history_row_shown_when_it_is_still_live(cfg, storm, view):
    sent = _Sent()
    view.actions = Actions(view.store, sent)
    door = [e for e in storm.events if e.alarm_id == storm.lone][-1]
    view.store.apply_alarm(door.alarm_id, door.encode())  # the door alarm is still open
    view.hist_table.selection = [1]
    view.text.value = "已通知"
    view.act("comment")
    assert [(d["alarm_id"], d["action"]) for d in sent] == [(storm.lone, "comment")]
    view.hist_table.selection = [0]  # the storm is resolved: no longer live, nothing sent
    view.act("acknowledge")
    assert len(sent) == 1 and "Unknown alarm" in view.message.object


@pytest.mark.servers
def test_the_console_folds_and_details_a_storm_read_from_influxdb(cfg, tmp_path, influx):
    from ingest.store.influx import InfluxStore

    writer = InfluxStore(influx, retries=2)
    try:
        devices = {d.id: d for _, d in cfg.devices().values()}
        storm = record_storm(tmp_path, writer, NOW - 3600 * 10**9, devices=devices)
    finally:
        writer.close()
    icfg = cfg.model_copy(update={"store": StoreConfig(influx=influx)})
    live = LiveStore(devices_from_config(cfg))
    history = History(icfg, read_from="influx")  # the embedded file holds nothing
    try:
        v = AlarmsView(live, Actions(live, _Sent()), Identity("op", "operator"), "en", history)
        v.full()
        assert _hist(v, "alarm_id") == [storm.parent, storm.lone]
        assert _hist(v, "group") == ["6 ▸", ""]
        v.hist_table.selection = [0]
        assert "Cabinet 人民南路1号箱: 6 circuits" in v.detail.object
        assert "已派人 dispatched" in v.detail.object and "condition cleared" in v.detail.object
        assert history.errors == 0
    finally:
        history.close()
