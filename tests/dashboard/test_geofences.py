"""Geofences on the fleet and wall maps: shapes by kind, a switch that hides them, and the
violations list naming the geofence a vehicle alarm is about."""

from __future__ import annotations

import math

import pytest

from contracts.config import BrokerConfig
from contracts.geofence import GeofenceConfig
from dashboard.auth import Identity
from dashboard.history import day_bounds
from dashboard.kpi import KpiCache
from dashboard.livestore import LiveStore, devices_from_config
from dashboard.views.fleet import FleetView
from dashboard.views.geofences import (
    GEOFENCE_COLOURS,
    circle_ring,
    geofence_legend_html,
    geofence_shapes,
)
from dashboard.views.wall import WallView
from tests.dashboard._helpers import alarm, batch, config

GEOFENCES = [
    GeofenceConfig(id="CS-1", kind="construction_site", name="天府工地", center=(104.07, 30.60),
                   radius_m=500),
    GeofenceConfig(id="BZ-1", kind="banned_zone", name="春熙路禁行区",
                   polygon=[(104.07, 30.65), (104.09, 30.65), (104.08, 30.67)]),
    GeofenceConfig(id="RT-1", kind="approved_route", name="核准路线A",
                   line=[(104.07, 30.60), (104.10, 30.62), (104.15, 30.64)]),
]  # fmt: skip


def _metres(lon0: float, lat0: float, lon: float, lat: float) -> float:
    dy = (lat - lat0) * 111_320
    dx = (lon - lon0) * 111_320 * math.cos(math.radians(lat0))
    return math.hypot(dx, dy)


def test_a_circle_becomes_a_ring_of_its_radius_in_metres():
    xs, ys = circle_ring((104.07, 30.60), 500)
    assert len(xs) == len(ys) >= 32
    assert all(_metres(104.07, 30.60, x, y) == pytest.approx(500, rel=1e-3) for x, y in zip(xs, ys))


def test_shapes_split_zones_from_routes_and_colour_by_kind():
    zones, routes = geofence_shapes(GEOFENCES, "en")
    assert zones["id"] == ["CS-1", "BZ-1"] and routes["id"] == ["RT-1"]
    assert zones["colour"] == [
        GEOFENCE_COLOURS["construction_site"],
        GEOFENCE_COLOURS["banned_zone"],
    ]
    assert zones["kind"] == ["construction site", "banned zone"]
    assert zones["xs"][1] == [104.07, 104.09, 104.08] and routes["ys"][0] == [30.60, 30.62, 30.64]
    assert "approved route" in geofence_legend_html(GEOFENCES, "en")


@pytest.fixture
def cfg(tmp_path):
    return config(BrokerConfig(), str(tmp_path / "var"))


@pytest.fixture
def store(cfg) -> LiveStore:
    s = LiveStore(devices_from_config(cfg))
    s.apply_batch(batch())
    return s


def test_fleet_map_shows_geofences_under_the_trucks_and_a_switch_hides_them(cfg, store):
    store.apply_alarm("V-1", alarm("V-1", domain="vehicle", device_id="TRK-0001",
                                   extra={"geofence": "BZ-1"}).encode())  # fmt: skip
    store.apply_alarm("V-2", alarm("V-2", domain="vehicle", device_id="TRK-0001").encode())
    view = FleetView(store, Identity("s", "sanitation_supervisor"), "zh", None, None,
                     lambda d: day_bounds(d, cfg), GEOFENCES)  # fmt: skip
    view.full()
    names = [getattr(r.data_source, "name", "") for r in view.map.fig.renderers]
    zones, routes = names.index("rg-geofence-zones"), names.index("rg-geofence-routes")
    assert max(zones, routes) < names.index("rg-trucks")  # a zone never hides a truck
    assert view.geofences.zones.data["name"] == ["天府工地", "春熙路禁行区"]
    assert view.geofences.routes.data["name"] == ["核准路线A"]
    assert all(r.visible for r in view.geofences.renderers)
    view.geofences.toggle.value = False
    assert not any(r.visible for r in view.geofences.renderers)
    by_alarm = dict(zip(view.violations.value["alarm_id"], view.violations.value["geofence"]))
    assert by_alarm == {"V-1": "春熙路禁行区", "V-2": ""}
    # The fleet map's legend explains only its own layer.
    assert [i.label.value for i in view.map.fig.legend.items] == ["车辆"]


def test_wall_draws_geofences_only_when_configured(store):
    kpis = KpiCache(store)
    with_gf = WallView(store, kpis, None, "zh", "t", geofences=GEOFENCES)
    without = WallView(store, kpis, None, "zh", "t")
    assert with_gf.geofences is not None and len(with_gf.geofences.zones.data["id"]) == 2
    assert without.geofences is None
    names = [getattr(r.data_source, "name", "") for r in without.map.fig.renderers]
    assert "rg-geofence-zones" not in names
