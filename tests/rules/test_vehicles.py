"""Vehicle rules: the numba engine against the plain-Python oracle, and named scenarios."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from contracts.config import AnyRuleConfig, DeviceConfig
from contracts.geofence import GeofenceConfig
from rules.engine import RulesEngine
from rules.vreference import VehicleReference
from tests.rules._helpers import S, frame, keys, same_vehicle_transitions

V = "vehicle"
_R = [
    {"family": "geofence", "id": "site", "zones": ["construction_site"], "for_s": 0},
    {"family": "geofence", "id": "dwell", "zones": ["disposal_site", "depot"], "for_s": 20},
    {"family": "stop", "id": "stop", "for_s": 30, "fleets": ["construction_waste"]},
    {"family": "route", "id": "route", "for_s": 10},
    {"family": "banned_zone", "id": "ban", "for_s": 5},
    {"family": "cover_moving", "id": "cover", "for_s": 10},
    {"family": "fleet_speed", "id": "sweep", "max_speed_kmh": 15, "for_s": 5,
     "fleets": ["sanitation"]},
]  # fmt: skip
RULES = TypeAdapter(list[AnyRuleConfig]).validate_python(_R)
LON0, LAT0 = 104.06, 30.66
GEO = [
    GeofenceConfig(id="s1", kind="construction_site", center=(LON0, LAT0), radius_m=150,
                   buffer_m=20),
    GeofenceConfig(id="d1", kind="disposal_site", polygon=[(104.063, 30.66), (104.066, 30.66),
                   (104.066, 30.663), (104.063, 30.663)], buffer_m=30),
    GeofenceConfig(id="dep", kind="depot", center=(104.06, 30.664), radius_m=100,
                   fleets=["sanitation"]),
    GeofenceConfig(id="r1", kind="approved_route", line=[(LON0, LAT0), (104.07, 30.66)],
                   corridor_m=80, vehicles=["T1"]),
    GeofenceConfig(id="b1", kind="banned_zone", polygon=[(104.055, 30.655), (104.058, 30.655),
                   (104.058, 30.658)], hours=("19:00", "07:00"), fleets=["construction_waste"]),
]  # fmt: skip
DEVS = {
    d: DeviceConfig(id=d, kind=V, protocol="jt808", profile="p", endpoint="x",
                    attrs={"fleet": f})
    for d, f in (("T1", "construction_waste"), ("T2", "construction_waste"), ("W1", "sanitation"))
}  # fmt: skip
T0 = int(datetime(2024, 6, 1, 10, 59, 0, tzinfo=UTC).timestamp()) * S  # 18:59 local


def fix(dev: str, t: int, lat: float, lon: float, spd: float, cov: float = 0.0) -> list:
    """The rows of one fix."""
    return [(dev, V, t, "lat", lat), (dev, V, t, "lon", lon), (dev, V, t, "speed", spd),
            (dev, V, t, "cover_open", cov)]  # fmt: skip


# positions near the geofences and their boundaries (within ~ 1 km), plus far jumps
POS = st.one_of(
    st.tuples(st.floats(30.652, 30.666), st.floats(104.052, 104.072)),
    st.sampled_from([(30.66, 104.06), (30.6615, 104.0645), (30.664, 104.06), (30.6565, 104.057),
                     (30.6607, 104.065), (0.0, 0.0), (31.5, 105.0)]),
)  # fmt: skip
FIX = st.tuples(
    st.sampled_from(list(DEVS) + ["X9"]),
    st.integers(-40, 60),  # seconds after the previous fix of the stream (negative: late)
    POS,
    st.sampled_from([0.0, 1.0, 4.0, 10.0, 20.0, 60.0, math.nan]),
    st.sampled_from([0.0, 1.0, math.nan]),
    st.sampled_from(["all", "no_speed", "no_lon", "split"]),
)


@st.composite
def batches(draw):
    fixes = draw(st.lists(FIX, max_size=40))
    t = T0 + draw(st.integers(0, 3600)) * S
    rows: list = []
    for dev, dt, (lat, lon), spd, cov, shape in fixes:
        t += dt * S
        rs = fix(dev, t, lat, lon, spd, cov)
        if shape == "no_speed":
            rs = [r for r in rs if r[3] != "speed"]
        elif shape == "no_lon":
            rs = [r for r in rs if r[3] != "lon"]
        rows.extend(rs)
    cuts = sorted(draw(st.lists(st.integers(0, len(rows)), max_size=4)))
    return [rows[a:b] for a, b in zip([0, *cuts], [*cuts, len(rows)])]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
def test_vehicle_engine_matches_reference(bs):
    same_vehicle_transitions(RULES, DEVS, GEO, bs)


def _drive(eng, rows):
    return [(t.rule_id, t.subject, t.kind, (t.ts - T0) // S) for t in eng.process(frame(rows))]


def test_scenario_site_dump_cover_and_banned_zone():
    eng = RulesEngine(RULES, devices=DEVS, geofences=GEO)
    rows = fix("T1", T0, LAT0, LON0, 0)  # in the site (and on its route)
    rows += fix("T1", T0 + 60 * S, 30.6565, 104.057, 30, 1)  # banned zone, cover open, 19:00
    rows += fix("T1", T0 + 120 * S, 30.6565, 104.0571, 1)  # stopped in the banned zone
    rows += fix("T1", T0 + 170 * S, 30.6565, 104.0571, 0)
    got = _drive(eng, rows)
    assert ("site", "T1/s1", "raise", 0) in got and ("site", "T1/s1", "clear", 60) in got
    assert ("ban", "T1/b1", "raise", 120) in got  # entered at 18:59 + 60 s = 19:00, 5 s later
    assert ("route", "T1/r1", "raise", 120) in got
    assert ("cover", "T1", "raise", 120) not in got  # cover open only while moving: 1 fix
    # stopped from 120 outside any allowed site: raised by the first fix 30 s later
    assert ("stop", "T1", "raise", 170) in got


def test_jump_dropped_and_late_point_ignored():
    eng = RulesEngine(RULES, devices=DEVS, geofences=GEO)
    rows = fix("T2", T0, 30.7, 104.1, 20)
    rows += fix("T2", T0 + 10 * S, LAT0, LON0, 20)  # 5 km in 10 s: a jump, dropped
    rows += fix("T2", T0 + 20 * S, 30.7001, 104.1, 20)
    assert _drive(eng, rows) == []
    assert eng.stats()["vehicle_jumps"] == 1
    # a blind-area point from before, inside the site: counted, never raises
    assert _drive(eng, fix("T2", T0 + 5 * S, LAT0, LON0, 0)) == []
    assert eng.stats()["vehicle_late_fixes"] == 1


def test_buffer_hysteresis_needs_the_shrunk_zone():
    eng = RulesEngine(RULES, devices=DEVS, geofences=GEO)
    edge = LAT0 + 140 / 111_320  # 10 m inside the 150 m circle: within the 20 m buffer
    deep = LAT0 + 100 / 111_320
    out = LAT0 + 160 / 111_320  # 10 m outside: still within the buffer
    got = _drive(eng, fix("T2", T0, edge, LON0, 5) + fix("T2", T0 + 10 * S, deep, LON0, 5)
                 + fix("T2", T0 + 20 * S, out, LON0, 5))  # fmt: skip
    assert got == [("site", "T2/s1", "raise", 10)]
    far = LAT0 + 200 / 111_320
    assert _drive(eng, fix("T2", T0 + 30 * S, far, LON0, 5)) == [("site", "T2/s1", "clear", 30)]


def test_sweeper_and_fleet_filters():
    eng = RulesEngine(RULES, devices=DEVS, geofences=GEO)
    rows = [r for k in range(4) for r in fix("W1", T0 + k * 5 * S, 30.664, 104.06, 25)]
    rows += [r for k in range(4) for r in fix("T2", T0 + k * 5 * S, 30.7, 104.1, 25)]
    got = _drive(eng, rows)
    assert ("sweep", "W1", "raise", 5) in got
    assert not [g for g in got if g[1] == "T2"]  # not a sweeper; depot only for sanitation
    assert ("dwell", "W1/dep", "raise", 15) not in got and (
        "dwell",
        "W1/dep",
        "raise",
        20,
    ) not in got


def test_snapshot_keeps_a_pending_stop():
    eng = RulesEngine(RULES, devices=DEVS, geofences=GEO)
    eng.process(frame(fix("T2", T0, 30.7, 104.1, 0)))
    fresh = RulesEngine(RULES, devices=DEVS, geofences=GEO)
    fresh.restore(eng.snapshot())
    got = [
        (t.rule_id, t.kind) for t in fresh.process(frame(fix("T2", T0 + 31 * S, 30.7, 104.1, 0)))
    ]
    assert got == [("stop", "raise")]


def test_collection_miss_on_tick_and_clear_on_visit():
    rules = TypeAdapter(list[AnyRuleConfig]).validate_python(
        [{"family": "collection_miss", "id": "miss"}]
    )
    cp = GeofenceConfig(id="cp", kind="collection_point", center=(LON0, LAT0), radius_m=50,
                        hours=("18:00", "19:00"), vehicles=["K1"])  # fmt: skip
    late = RulesEngine(rules, geofences=[cp])  # first heard at 18:59: 18:00-18:59 unseen
    late.process(frame(fix("K1", T0, 30.7, 104.1, 20)))
    assert late.tick(T0 + 90 * S) == []  # says nothing of hours it did not watch
    eng = RulesEngine(rules, geofences=[cp])
    eng.process(frame(fix("K1", T0 - 3600 * S, 30.7, 104.1, 20)))  # 17:59, elsewhere
    eng.process(frame(fix("K1", T0, 30.7, 104.1, 20)))  # 18:59, elsewhere
    assert eng.tick(T0 + 30 * S) == []  # hours not over
    (tr,) = eng.tick(T0 + 90 * S)  # 19:00:30
    assert (tr.rule_id, tr.subject, tr.kind) == ("miss", "K1/cp", "raise")
    assert eng.tick(T0 + 100 * S) == []  # once a day
    (cl,) = eng.process(frame(fix("K1", T0 + 200 * S, LAT0, LON0, 0))) or eng.tick(T0 + 201 * S)
    assert cl.kind == "clear"


def test_vehicle_transitions_name_their_geofence_and_place():
    eng = RulesEngine(RULES, devices=DEVS, geofences=GEO)
    rows = fix("T1", T0 + 60 * S, 30.6565, 104.0571, 0)  # 19:00, in the banned zone's hours
    rows += fix("T1", T0 + 100 * S, 30.6565, 104.0571, 0)
    got = {(t.rule_id, t.kind): t for t in eng.process(frame(rows))}
    stop = got[("stop", "raise")]  # the nearest approved site: the construction site s1
    assert (stop.geofence, stop.lat, stop.lon) == ("s1", 30.6565, 104.0571)
    ban = got[("ban", "raise")]  # a geofence column names its own geofence
    assert (ban.geofence, ban.field, ban.subject) == ("b1", "b1", "T1/b1")
    (clear,) = eng.process(frame(fix("T1", T0 + 120 * S, 30.6566, 104.0571, 20)))
    assert (clear.rule_id, clear.kind, clear.geofence) == ("stop", "clear", "")


def test_banned_hours_across_a_dst_change_and_in_one_row_batches():
    from zoneinfo import ZoneInfo

    zone = GeofenceConfig(id="bz", kind="banned_zone", center=(LON0, LAT0), radius_m=500,
                          hours=("03:00", "04:00"))  # fmt: skip
    rules = [r for r in RULES if r.id == "ban"]
    tz = ZoneInfo("Europe/Berlin")  # 2024-03-31 02:00 CET is 03:00 CEST (01:00 UTC)
    t0 = int(datetime(2024, 3, 31, 0, 59, 0, tzinfo=UTC).timestamp()) * S
    rows = [r for k in range(7) for r in fix("T1", t0 + k * 20 * S, LAT0, LON0, 10)]
    for batches in ([rows], [[r] for r in rows]):  # one batch across the change; row by row
        eng = RulesEngine(rules, devices=DEVS, geofences=[zone], tz=tz)
        ref = VehicleReference(rules, [zone], DEVS, tz=tz)  # type: ignore[arg-type]
        got = [t for b in batches for t in eng.process(frame(b))]
        want = [t for b in batches for t in ref.process_rows(b)]
        assert keys(got) == keys(want) and [(t.kind, (t.ts - t0) // S) for t in got] == [
            ("raise", 80)  # in hours from 01:00 UTC (60 s), raised 5 s later by the next fix
        ]
