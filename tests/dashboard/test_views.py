"""Views without a browser: city time zone, map extent, KPI tiles by road class and
staleness, alarm actions and their permissions, alarm history and track playback from a
real (embedded) history store."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import polars as pl
import pytest

from contracts import topics
from contracts.config import BrokerConfig
from contracts.telemetry import COLUMNS
from dashboard.actions import Actions
from dashboard.auth import ALARM_DOMAINS, Identity
from dashboard.history import History, day_bounds
from dashboard.kpi import compute_kpis
from dashboard.livestore import LiveStore, devices_from_config
from dashboard.views._live import display_tz, fmt_time, set_display_tz
from dashboard.views.alarms import AlarmsView
from dashboard.views.citymap import CHENGDU_EXTENT, CityMap, devices_extent
from dashboard.views.fleet import FleetView
from dashboard.views.wall import kpi_html, layers_html
from ingest.store.embedded import EmbeddedStore
from tests.dashboard._helpers import NOW, alarm, batch, config

UTC_MIDNIGHT = int(datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC")).timestamp() * 1e9)


class _Sent(list):
    def __call__(self, topic: str, payload: bytes, **kw) -> None:
        self.append((topic, json.loads(payload)))


@pytest.fixture
def cfg(tmp_path):
    return config(BrokerConfig(), str(tmp_path / "var"))


@pytest.fixture
def store(cfg) -> LiveStore:
    s = LiveStore(devices_from_config(cfg))
    s.apply_batch(batch())
    s.apply_alarm("A-1", alarm().encode())
    s.apply_alarm("V-1", alarm("V-1", domain="vehicle", device_id="TRK-0001").encode())
    return s


def test_times_are_shown_in_the_city_zone_not_the_servers():
    old = display_tz()
    try:
        set_display_tz(ZoneInfo("Asia/Shanghai"))
        assert fmt_time(UTC_MIDNIGHT) == "01-01 08:00:00"
        set_display_tz(ZoneInfo("Europe/London"))
        assert fmt_time(UTC_MIDNIGHT, "%H:%M") == "00:00"
    finally:
        set_display_tz(old)
    assert fmt_time(None) == ""


def test_day_bounds_are_the_city_day(cfg):
    start, end = day_bounds(datetime(2026, 1, 1), cfg)
    assert end - start == 86_400 * 10**9
    assert start == UTC_MIDNIGHT - 8 * 3600 * 10**9  # Chengdu midnight is 16:00 UTC


def test_map_zooms_to_the_devices_not_the_municipality(store):
    devs = store.devices()
    x0, y0, x1, y1 = devices_extent(devs)
    lons = [d.position()[1] for d in devs if d.position()]
    assert x0 < min(lons) and x1 > max(lons)  # padded
    assert (x1 - x0) < (CHENGDU_EXTENT[2] - CHENGDU_EXTENT[0]) / 5
    m = CityMap(None)
    m.reset(devs, set(), NOW)
    assert (m.fig.x_range.start, m.fig.x_range.end) == pytest.approx((x0, x1))
    assert devices_extent([]) is None


def test_lamp_on_rate_by_road_class_and_staleness_badges(store):
    devs = store.devices()
    for d in devs:
        if d.device_id == "LC-0001":
            d.attrs["road_class"] = "main"  # circuit1 lit, circuit2 on but dark: 50 %
    k = compute_kpis(devs, store.alarms(), NOW)
    assert k.lamp_by_road == {"main": 0.5, "secondary": None}
    fresh = kpi_html(k, "en", NOW)
    assert "main roads" in fresh and "50.0%" in fresh and "rg-stale" not in fresh
    later = NOW + 3600 * 10**9
    old = kpi_html(k, "en", later)
    assert old.count('class="rg-stale"') >= 4  # online tiles, lamp tiles, dust, trucks
    assert "rg-stale" in layers_html(k, "zh", later) and "rg-stale" not in layers_html(k, "zh", NOW)


def test_alarm_domains_match_the_rules_service():
    from rules.service import ACTION_ROLES

    assert ALARM_DOMAINS == ACTION_ROLES


@pytest.mark.parametrize("action", ["acknowledge", "comment", "shelve", "resolve", "assign"])
def test_alarm_actions_publish_json_for_the_rules_service(store, action):
    sent = _Sent()
    res = Actions(store, sent).alarm_action(Identity("op", "operator"), "A-1", action, "张三")
    assert res.ok, res
    ((topic, doc),) = sent
    assert topic == topics.alarm_action()
    assert doc["alarm_id"] == "A-1" and doc["user"] == "op" and doc["role"] == "operator"
    # An assignment travels as "assign" with the assignee after ASSIGN_PREFIX.
    assert (doc["action"], doc["text"]) == (
        ("assign", "assign:张三") if action == "assign" else (action, "张三")
    )


def test_alarm_actions_are_refused_by_role_and_domain(store):
    sent = _Sent()
    a = Actions(store, sent)
    assert a.alarm_action(Identity("guest", "viewer"), "A-1", "resolve").message == "refused_role"
    sup = Identity("s", "sanitation_supervisor")
    assert a.alarm_action(sup, "A-1", "shelve").message == "refused_role"  # lighting alarm
    assert a.alarm_action(sup, "V-1", "shelve").ok  # vehicle alarm
    assert a.alarm_action(sup, "V-1", "comment", "  ").message == "text_required"
    assert a.alarm_action(sup, "nope", "shelve").message == "unknown_alarm"
    assert a.alarm_action(sup, "V-1", "delete").message == "refused_role"
    assert len(sent) == 1


def test_alarm_console_filters_and_reads_history_from_the_store(cfg, store):
    es = EmbeddedStore(cfg.path(cfg.store.path))
    old = alarm("H-1", raised_ns=NOW - 10**9, updated_ns=NOW - 10**9, state="closed")
    es.write_alarm(old)
    es.close()
    view = AlarmsView(
        store, Actions(store, _Sent()), Identity("op", "operator"), "zh", History(cfg)
    )
    view.full()
    assert set(view.sync.keys()) == {"A-1", "V-1"}
    assert list(view.hist_table.value["case_no"]) == ["CD-2026-000123"]
    view.f_domain.value = "vehicle"
    assert view.sync.keys() == ["V-1"] and len(view.hist_table.value) == 0
    view.f_domain.value = ""
    view.f_severity.value = "critical"
    assert view.sync.keys() == []


def test_fleet_plays_back_a_days_track_from_the_store(cfg, store):
    day = datetime.now(ZoneInfo("Asia/Shanghai")).replace(hour=10, minute=0, second=0)
    t0 = int(day.timestamp() * 1e9)
    rows = []
    for i in range(5):
        for f, v in (("lat", 30.6 + i * 0.01), ("lon", 104.0 + i * 0.01), ("speed", 20.0),
                     ("heading", 45.0)):  # fmt: skip
            rows.append(("TRK-0001", "vehicle", t0 + i * 60 * 10**9, f, v))
    es = EmbeddedStore(cfg.path(cfg.store.path))
    es.write(pl.DataFrame(rows, schema=COLUMNS, orient="row"))
    es.close()
    view = FleetView(store, Identity("s", "sanitation_supervisor"), "en", None, History(cfg),
                     lambda d: day_bounds(d, cfg))  # fmt: skip
    view.full()
    assert view.sync.keys() == ["TRK-0001"] and view.vehicle.value == "TRK-0001"
    assert list(view.violations.value["alarm_id"]) == ["V-1"]
    view.day.value = day.date()
    view.load_track()
    assert len(view.track_src.data["x"]) == 5 and view.slider.end == 4
    view.slider.value = 3
    assert view.cursor_src.data["y"] == [pytest.approx(30.63)]
    assert "10:03:00" in view.track_info.object
    view.f_state.value = "offline"
    assert view.sync.keys() == []
