"""Kitchen-waste trucks bound for the treatment plant (plant_detour): the numba engine against
the Python oracle, named trips, and the simulator's kitchen rounds with and without faults."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from contracts.config import AnyRuleConfig, DeviceConfig
from contracts.geofence import GeofenceConfig
from contracts.rule_config import VEHICLE_FAMILIES
from hardware.inventory import build_inventory
from hardware.sim.deployment import geofences
from hardware.sim.faults import Fault
from hardware.sim.trucks import TruckModel
from rules import geo as rules_geo
from rules.alarms import AlarmBook
from rules.cases import case_record
from rules.defaults import load_default_rules
from rules.engine import RulesEngine
from tests.rules._helpers import S, frame, same_vehicle_transitions

V = "vehicle"
KW = "kitchen_waste"
_R = [
    {"family": "plant_detour", "id": "detour", "for_s": 20, "detour_ratio": 1.2,
     "corridor_m": 50, "fleets": [KW]},
    {"family": "plant_detour", "id": "detour0", "for_s": 0.001, "detour_ratio": 1.05,
     "corridor_m": 0, "stop_speed_kmh": 1, "allowed": ["treatment_plant"]},
    {"family": "stop", "id": "stop", "for_s": 30},
    {"family": "geofence", "id": "at_cp", "zones": ["collection_point"], "for_s": 0},
    {"family": "geofence", "id": "at_plant", "zones": ["treatment_plant"], "for_s": 10},
]  # fmt: skip
RULES = TypeAdapter(list[AnyRuleConfig]).validate_python(_R)
CP_A, CP_B, CP_C = (30.660, 104.060), (30.660, 104.064), (30.664, 104.062)
PLANT_1, DEPOT = (30.660, 104.075), (30.668, 104.068)
GEO = [
    GeofenceConfig(id="cpa", kind="collection_point", center=CP_A[::-1], radius_m=40,
                   vehicles=["K1"]),
    GeofenceConfig(id="cpb", kind="collection_point", center=CP_B[::-1], radius_m=40,
                   vehicles=["K1"]),
    GeofenceConfig(id="cpc", kind="collection_point", center=CP_C[::-1], radius_m=40, fleets=[KW]),
    GeofenceConfig(id="tp1", kind="treatment_plant", name="第一处理厂", center=PLANT_1[::-1],
                   radius_m=200, fleets=[KW]),
    GeofenceConfig(id="tp2", kind="treatment_plant", polygon=[(104.048, 30.648), (104.052, 30.648),
                   (104.052, 30.652), (104.048, 30.652)], vehicles=["K2"]),
    GeofenceConfig(id="dep", kind="depot", center=DEPOT[::-1], radius_m=100),
    GeofenceConfig(id="ds", kind="disposal_site", polygon=[(104.066, 30.655), (104.07, 30.655),
                   (104.07, 30.658)], buffer_m=10),
]  # fmt: skip
DEVS = {
    d: DeviceConfig(id=d, kind=V, protocol="jt808", profile="p", endpoint="x", attrs={"fleet": f})
    for d, f in (("K1", KW), ("K2", KW), ("T1", "construction_waste"))
}
T0 = int(datetime(2024, 6, 1, 2, 0, 0, tzinfo=UTC).timestamp()) * S


def fix(dev: str, t: int, lat: float, lon: float, spd: float) -> list:
    """The rows of one fix."""
    return [(dev, V, t, "lat", lat), (dev, V, t, "lon", lon), (dev, V, t, "speed", spd)]


POS = st.one_of(
    st.tuples(st.floats(30.646, 30.672), st.floats(104.044, 104.08)),
    st.sampled_from([CP_A, CP_B, CP_C, PLANT_1, DEPOT, (30.65, 104.05), (30.6605, 104.0602),
                     (30.664, 104.05), (30.662, 104.07), (30.656, 104.068), (0.0, 0.0),
                     (31.5, 105.0)]),
)  # fmt: skip
FIX = st.tuples(
    st.sampled_from([*DEVS, "X9"]),
    st.integers(-30, 90),  # seconds after the stream's previous fix (negative: late)
    POS,
    st.sampled_from([0.0, 2.0, 10.0, 30.0, math.nan]),
    st.booleans(),  # speed row missing
)


@st.composite
def batches(draw):
    t = T0 + draw(st.integers(0, 3600)) * S
    rows: list = []
    for dev, dt, (lat, lon), spd, no_speed in draw(st.lists(FIX, max_size=50)):
        t += dt * S
        rows += [r for r in fix(dev, t, lat, lon, spd) if not (no_speed and r[3] == "speed")]
    cuts = sorted(draw(st.lists(st.integers(0, len(rows)), max_size=4)))
    return [rows[a:b] for a, b in zip([0, *cuts], [*cuts, len(rows)])]


# trips between the places (and points on and off the way to a plant), so that trucks load,
# get bound for a plant, stop, stray and unload; speeds keep clear of the jump filter
ANCHORS = [CP_A, CP_B, CP_C, PLANT_1, (30.65, 104.05), DEPOT, (30.664, 104.05), (30.662, 104.07),
           (30.656, 104.068), (30.652, 104.062), (30.667, 104.058), (30.66, 104.068)]  # fmt: skip


@st.composite
def trips(draw):
    t0 = T0 + draw(st.integers(0, 3600)) * S
    rows: list = []
    for dev in draw(st.lists(st.sampled_from(["K1", "K2", "T1"]), min_size=1, max_size=3)):
        t = t0 + draw(st.integers(0, 30)) * S
        here = draw(st.sampled_from(ANCHORS))
        for _ in range(draw(st.integers(1, 10))):
            goal = draw(st.sampled_from(ANCHORS))
            steps = draw(st.integers(1, 4))
            spd = draw(st.sampled_from([0.0, 2.0, 20.0, 40.0, math.nan]))
            metres = 111_320 * math.hypot(goal[0] - here[0], (goal[1] - here[1]) * 0.86)
            for j in range(1, steps + 1):
                t += (int(metres / steps / draw(st.sampled_from([6, 12, 20]))) + 5) * S
                f = j / steps
                pos = (here[0] + f * (goal[0] - here[0]), here[1] + f * (goal[1] - here[1]))
                rows += fix(dev, t, *pos, spd)
            for _ in range(draw(st.integers(0, 3))):  # dwell
                t += draw(st.integers(5, 40)) * S
                rows += fix(dev, t, *goal, draw(st.sampled_from([0.0, 1.0, 5.0])))
            here = goal
    for _ in range(draw(st.integers(0, 3))):  # a few rows out of order (late, split fixes)
        i, j = draw(st.integers(0, len(rows))), draw(st.integers(0, len(rows)))
        rows[i:j] = rows[i:j][::-1] if j - i < 6 else rows[i:j]
    cuts = sorted(draw(st.lists(st.integers(0, len(rows)), max_size=4)))
    return [rows[a:b] for a, b in zip([0, *cuts], [*cuts, len(rows)])]


def _same_as_reference(bs: list) -> None:
    same_vehicle_transitions(RULES, DEVS, GEO, bs)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_kitchen_engine_matches_reference(bs):
    _same_as_reference(bs)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(trips())
def test_kitchen_trips_match_reference(bs):
    _same_as_reference(bs)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])  # fmt: skip
@given(st.one_of(batches(), trips()))
def test_small_grid_cells_change_nothing(monkeypatch, bs):
    # ~110 m cells: fixes keep crossing cells, zones span several; same transitions
    monkeypatch.setattr(rules_geo, "_CELL_DEG", 0.001)
    _same_as_reference(bs)


def _trip(eng: RulesEngine, dev: str, legs: list[tuple[int, tuple[float, float], float]]) -> list:
    rows = [r for s, (lat, lon), spd in legs for r in fix(dev, T0 + s * S, lat, lon, spd)]
    return [(t.rule_id, t.kind, (t.ts - T0) // S, t.geofence) for t in eng.process(frame(rows))
            if t.rule_id == "kitchen"]  # fmt: skip


def _kitchen_engine() -> RulesEngine:
    rules = TypeAdapter(list[AnyRuleConfig]).validate_python(
        [{"family": "plant_detour", "id": "kitchen", "for_s": 60, "fleets": [KW]}]
    )
    return RulesEngine(rules, devices=DEVS, geofences=GEO)


def test_off_the_corridor_after_the_last_collection_raises_naming_the_plant():
    eng = _kitchen_engine()
    legs = [(0, CP_A, 0), (60, CP_B, 0), (120, (30.662, 104.063), 25)]
    legs += [(180, CP_C, 0), (240, (30.664, 104.056), 30), (270, (30.664, 104.05), 30)]
    legs += [(300, (30.664, 104.047), 30), (330, (30.664, 104.044), 30)]
    # every point collected at 180; heading west, away from tp1: 60 s outside the corridor
    assert _trip(eng, "K1", legs) == [("kitchen", "raise", 300, "tp1")]
    # unloading at the plant ends it
    assert _trip(eng, "K1", [(600, PLANT_1, 5)]) == [("kitchen", "clear", 600, "")]
    assert _trip(eng, "K1", [(700, (30.664, 104.044), 30), (800, (30.664, 104.05), 0)]) == []


def test_an_l_shaped_street_route_to_the_plant_is_no_detour_but_a_long_stop_is():
    eng = _kitchen_engine()
    # K2's only point is cpc; tp2 is its listed plant; down then along the streets to it
    legs = [(0, CP_C, 0), (60, (30.657, 104.062), 30), (120, (30.650, 104.062), 30)]
    legs += [(180, (30.650, 104.057), 30), (240, (30.650, 104.053), 30), (300, (30.65, 104.05), 0)]
    assert _trip(eng, "K2", legs) == []
    # next round: stopped on the way for the rule's minute (not bound yet: no corridor needed)
    legs = [(400, CP_C, 0), (460, (30.657, 104.062), 0), (500, (30.657, 104.062), 1)]
    legs += [(520, (30.6571, 104.0621), 0), (600, (30.65, 104.062), 30)]
    # the plant nearest to its last collection point (tp1 applies to every kitchen truck)
    assert _trip(eng, "K2", legs) == [
        ("kitchen", "raise", 520, "tp1"),
        ("kitchen", "clear", 600, ""),
    ]


def test_a_truck_that_has_not_collected_is_not_judged():
    eng = _kitchen_engine()
    legs = [(0, DEPOT, 0), (60, (30.664, 104.05), 0), (200, (30.664, 104.05), 0)]
    assert _trip(eng, "K1", legs) == []
    assert _trip(eng, "T1", [(300, CP_C, 0), (360, (30.664, 104.05), 0), (500, (30.664, 104.05), 0)]) == []  # fmt: skip


# the simulator's district: three kitchen-waste trucks on their rounds, fixes every 10 s
SIM_T0 = 1_780_000_000


class _Sim:
    def __init__(self) -> None:
        self.inv = build_inventory("district")
        self.geo = [GeofenceConfig.model_validate(g) for g in geofences(self.inv)]
        self.kw = [v for v in self.inv.vehicles if v.fleet == KW]
        self.devs = {v.id: DeviceConfig(id=v.id, kind=V, protocol="jt808", profile="p",
                                        endpoint="x", attrs={"fleet": v.fleet})
                     for v in self.inv.vehicles}  # fmt: skip
        rules = [r for r in load_default_rules() if r.family in VEHICLE_FAMILIES]
        self.eng = RulesEngine(rules, devices=self.devs, geofences=self.geo)
        self.models = {v.id: TruckModel(v, self.inv, random.Random(i)) for i, v in enumerate(self.kw)}  # fmt: skip
        self.s = 0

    def run(self, seconds: int, on_step=None) -> list:  # type: ignore[no-untyped-def]
        out = []
        for _ in range(seconds // 60):
            rows = []
            for s in range(self.s, self.s + 60, 10):
                now = SIM_T0 + s
                for vid, m in self.models.items():
                    m.step(now)
                    if on_step:
                        on_step(vid, m, now)
                    f = m.state(now)
                    rows += [(vid, V, now * S, k, float(f[k])) for k in ("lat", "lon", "speed")]
            self.s += 60
            out += self.eng.process(frame(rows))
        return out


@pytest.fixture(scope="module")
def sim() -> _Sim:
    s = _Sim()
    s.normal = s.run(8 * 3600)  # type: ignore[attr-defined]
    return s


def test_the_simulators_kitchen_rounds_raise_nothing(sim) -> None:
    assert [t for t in sim.normal if t.rule_id.startswith("vehicle.")] == []
    st = sim.eng.vehicles.st
    # every truck collected and unloaded (a 30 m point with the default 30 m buffer is enterable)
    assert (st.c_t > 0).all() and (st.u_t > 0).all()


def test_dumping_after_the_last_collection_is_caught_and_named(sim, tmp_path) -> None:
    veh = sim.kw[0]
    m = sim.models[veh.id]
    last_cp = max(i for i, gid in m.stop_ids.items() if gid.startswith("CP-"))
    fault: dict = {}

    def inject(vid, model, now):  # type: ignore[no-untyped-def]
        # on the way from the last collection point to the plant, a minute after leaving it
        if vid == veh.id and not fault and model.seg == last_cp and now > model.parked_until + 60:
            f = Fault("illegal_dumping", vid, {}, now, now + 900.0)
            fault.update(model.plan(f, now), start=now)
            model.faults.append(f)

    trs = sim.run(4 * 3600, inject)
    assert fault and fault["geofence"] == veh.plant
    raised = [t for t in trs if t.rule_id == "vehicle.kitchen_detour" and t.kind == "raise"]
    assert len(raised) == 1 and raised[0].device_id == veh.id
    tr = raised[0]
    # standing at the dumping spot for the rule's 10 minutes (or off the corridor on the way)
    assert fault["start"] * S < tr.ts <= (fault["start"] + 900) * S
    assert tr.geofence == veh.plant and tr.lat is not None
    assert math.hypot(tr.lat - fault["lat"], (tr.lon - fault["lon"]) * 0.86) < 0.001
    rule = next(r for r in sim.eng.vehicles.rules if r.id == tr.rule_id)
    book = AlarmBook(tmp_path / "alarms.db", lambda ev: None, geofences=sim.geo)
    ev, new = book.on_transition(tr, rule)  # type: ignore[arg-type]
    plant = next(g for g in sim.geo if g.id == veh.plant)
    assert new and ev.extra["geofence"] == plant.id and ev.extra["geofence_name"] == plant.name
    assert (ev.lat, ev.lon) == (tr.lat, tr.lon)  # where it stood, not its depot
    case = case_record(ev, rule)  # type: ignore[arg-type]
    assert case.evidence["geofence"] == plant.id and plant.name in case.description
    book.close()
