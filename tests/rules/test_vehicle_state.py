"""Vehicle state across restarts (pairs by name, the older dense layout) and at city scale."""

from __future__ import annotations

import io

import numpy as np
from pydantic import TypeAdapter

from contracts.config import AnyRuleConfig, DeviceConfig
from contracts.geofence import GeofenceConfig
from contracts.rule_config import VEHICLE_FAMILIES
from hardware.inventory import build_inventory
from hardware.sim.deployment import geofences
from rules.defaults import load_default_rules
from rules.engine import RulesEngine
from tests.rules._helpers import S, frame
from tests.rules.test_vehicle_kitchen import CP_A, CP_B, CP_C, DEVS, GEO, T0, fix

RULES = TypeAdapter(list[AnyRuleConfig]).validate_python([
    {"family": "geofence", "id": "dwell", "zones": ["disposal_site"], "for_s": 20},
    {"family": "stop", "id": "stop", "for_s": 30, "allowed": ["depot"]},
    {"family": "plant_detour", "id": "kitchen", "for_s": 60, "fleets": ["kitchen_waste"]},
])  # fmt: skip
IN_DS = (30.656, 104.068)  # inside the disposal site "ds"


def _names(trs: list) -> list:
    return [(t.rule_id, t.subject, t.kind, (t.ts - T0) // S, t.geofence) for t in trs]


def _restored(eng: RulesEngine) -> RulesEngine:
    fresh = RulesEngine(RULES, devices=DEVS, geofences=GEO)
    fresh.restore(eng.snapshot())
    return fresh


def test_pending_dwell_stop_and_load_survive_a_restart() -> None:
    eng = RulesEngine(RULES, devices=DEVS, geofences=GEO)
    rows = fix("T1", T0, *IN_DS, 0)  # in the zone and stopped: both pending
    for k, p in enumerate((CP_A, CP_B, CP_C)):  # K1 collects everything: bound for a plant
        rows += fix("K1", T0 + k * 60 * S, *p, 0)
    rows += fix("K1", T0 + 240 * S, 30.664, 104.056, 30)  # off the corridor since 240
    assert eng.process(frame(rows)) == []
    fresh = _restored(eng)
    assert fresh.stats()["vehicle_pairs"] == eng.stats()["vehicle_pairs"]
    got = _names(fresh.process(frame(fix("T1", T0 + 31 * S, *IN_DS, 0))))
    # the stop names the nearest approved site: the depot
    assert sorted(got) == [
        ("dwell", "T1/ds", "raise", 31, "ds"),
        ("stop", "T1", "raise", 31, "dep"),
    ]
    got = _names(fresh.process(frame(fix("K1", T0 + 300 * S, 30.664, 104.05, 30))))
    assert got == [("kitchen", "K1", "raise", 300, "tp1")]
    # and the raised state survives too: leaving clears, nothing raises twice
    again = _restored(fresh)
    got = _names(again.process(frame(fix("T1", T0 + 400 * S, 30.67, 104.04, 30))))
    assert sorted(got) == [("dwell", "T1/ds", "clear", 400, "ds"), ("stop", "T1", "clear", 400, "")]


def test_a_snapshot_of_the_dense_layout_restores() -> None:
    """Snapshots written before pairs: [vehicle, geofence] and [vehicle, column] arrays."""
    eng = RulesEngine(RULES, devices=DEVS, geofences=GEO)
    geo = [g.id for g in GEO]
    cols = ["dwell\x1fds", "stop\x1f", "kitchen\x1f"]
    no = np.iinfo(np.int64).min
    inside = np.zeros((1, len(geo)), dtype=np.uint8)
    vis = np.full((1, len(geo)), no, dtype=np.int64)
    inside[0, geo.index("ds")], vis[0, geo.index("ds")] = 1, T0
    since = np.full((1, 3), no, dtype=np.int64)
    since[0, :2] = T0
    old = {
        "v_dev": np.array(["T1"]), "v_geo": np.array(geo), "v_col": np.array(cols),
        "v_rule": np.array(["dwell", "stop", "kitchen"]),
        "v_d_t": np.array([T0]), "v_d_lat": np.array([IN_DS[0]]), "v_d_lon": np.array([IN_DS[1]]),
        "v_p_t": np.array([no]), "v_p_lat": np.array([np.nan]), "v_p_lon": np.array([np.nan]),
        "v_d_spd": np.array([0.0]), "v_d_cov": np.array([np.nan]),
        "v_d_rej": np.array([0], dtype=np.int32), "v_inside": inside, "v_vis": vis,
        "v_since": since, "v_active": np.zeros((1, 3), dtype=np.uint8),
        "v_anc_lat": np.array([[np.nan, IN_DS[0], np.nan]]),
        "v_anc_lon": np.array([[np.nan, IN_DS[1], np.nan]]),
    }  # fmt: skip
    buf = io.BytesIO()
    with np.load(io.BytesIO(eng.snapshot())) as z:
        np.savez(buf, **{k: z[k] for k in z.files if not k.startswith("v_")}, **old)
    eng.restore(buf.getvalue())
    got = _names(eng.process(frame(fix("T1", T0 + 31 * S, *IN_DS, 0))))
    assert sorted(got) == [
        ("dwell", "T1/ds", "raise", 31, "ds"),
        ("stop", "T1", "raise", 31, "dep"),
    ]


def test_a_whole_citys_geofences_cost_per_pair_not_per_vehicle_and_geofence() -> None:
    inv = build_inventory("city")
    geo = [GeofenceConfig.model_validate(g) for g in geofences(inv)]
    devs = {v.id: DeviceConfig(id=v.id, kind="vehicle", protocol="jt808", profile="p",
                               endpoint="x", attrs={"fleet": v.fleet}) for v in inv.vehicles}  # fmt: skip
    rules = [r for r in load_default_rules() if r.family in VEHICLE_FAMILIES]
    eng = RulesEngine(rules, devices=devs, geofences=geo)
    rows = [r for v in inv.vehicles for r in fix(v.id, T0, v.depot_lat, v.depot_lon, 0)]
    eng.process(frame(rows))
    st = eng.vehicles.st
    # static pairs: each truck's routes and collection points (listed); dynamic ones: the
    # depot it stands in (and the banned zone round it); a dense [vehicle, geofence] layout
    # would hold 16,800 x 8,990 of them
    listed = sum(len(g.vehicles) for g in geo)
    assert eng.stats()["vehicle_vehicles"] == len(inv.vehicles) > 10_000 and len(geo) > 8_000
    assert listed <= eng.stats()["vehicle_pairs"] <= listed + 2 * len(inv.vehicles)
    held = sum(a.nbytes for a in vars(st).values() if isinstance(a, np.ndarray))
    assert held < 20_000_000, held
