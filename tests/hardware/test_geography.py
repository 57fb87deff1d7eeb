"""The simulated city's geography: devices in their districts, geofences valid, trucks obey them."""

from __future__ import annotations

import math
import random
from datetime import datetime

import pytest

from contracts.astro import CST
from contracts.config import parse_config
from hardware.geo import load_districts
from hardware.inventory import build_inventory
from hardware.sim.deployment import geofences
from hardware.sim.faults import Fault, FaultError
from hardware.sim.trucks import TruckModel

M = 111_320.0
T0 = 1_780_000_000.0  # an arbitrary epoch second


def _cst(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=CST).timestamp()


def _inside(lon: float, lat: float, ring: list[list[float]]) -> bool:
    hit = False
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1], strict=False):
        if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
            hit = not hit
    return hit


def _in_district(lat: float, lon: float, name: str) -> bool:
    (feat,) = [f for f in load_districts()["features"] if f["properties"]["name"] == name]
    return any(
        _inside(lon, lat, poly[0]) and not any(_inside(lon, lat, h) for h in poly[1:])
        for poly in feat["geometry"]["coordinates"]
    )


def _m(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    return (b[0] - a[0]) * M, (b[1] - a[1]) * M * math.cos(math.radians(a[0]))


def _to_line(p: tuple[float, float], line: list[tuple[float, float]]) -> float:
    best = math.inf
    for a, b in zip(line, line[1:], strict=False):
        bn, be = _m(a, b)
        pn, pe = _m(a, p)
        t = max(0.0, min(1.0, (pn * bn + pe * be) / max(1e-9, bn * bn + be * be)))
        best = min(best, math.hypot(pn - t * bn, pe - t * be))
    return best


def test_every_city_device_and_place_lies_in_its_stated_district() -> None:
    inv = build_inventory("city")
    things = [*inv.cabinets, *inv.dust_monitors, *inv.sites, *inv.collection_points]
    things += [*inv.disposal_sites, *inv.treatment_plants, *inv.depots]
    kitchen = [v for v in inv.vehicles if v.fleet == "kitchen_waste"]
    assert len(inv.cabinets) == 5000 and len(inv.collection_points) == 8 * len(kitchen)
    wrong = [t.id for t in things if not _in_district(t.lat, t.lon, t.district)]
    assert wrong == []
    central = {"锦江区", "青羊区", "金牛区", "武侯区", "成华区"}
    # 天府大道's southern end (高新区) lies in 双流区's part of the high-tech zone.
    assert {c.district for c in inv.cabinets} <= central | {"双流区"}
    # Permit numbers start with the district's division code; disposal sites are outside 三环.
    codes = {
        f["properties"]["name"]: f["properties"]["adcode"] for f in load_districts()["features"]
    }
    assert all(s.permit_no.startswith(codes[s.district]) for s in inv.sites)
    assert all(d.name.startswith(d.district) for d in inv.disposal_sites)


def test_geofences_are_valid_config_and_cover_every_assignment() -> None:
    inv = build_inventory("district")
    cfg = parse_config({"geofences": geofences(inv)})
    by_id = {g.id: g for g in cfg.geofences}
    assert {g.kind for g in cfg.geofences} == {
        "construction_site",
        "disposal_site",
        "treatment_plant",
        "collection_point",
        "depot",
        "banned_zone",
        "approved_route",
    }
    for v in inv.vehicles:
        if v.fleet == "construction_waste":
            assert v.id in by_id[v.route].vehicles
        if v.fleet == "kitchen_waste":
            assert all(by_id[c].vehicles == [v.id] for c in v.collection)
            assert by_id[v.plant].kind == "treatment_plant"
    for mon in inv.dust_monitors:  # every monitor stands inside its site's polygon
        site = by_id[mon.site_id]
        assert _inside(mon.lon, mon.lat, [list(p) for p in site.polygon or []])
    for r in inv.routes:  # approved routes stay outside the peak-hour 二环 zone
        ring2 = by_id["BZ-RING2-AM"]
        center = (ring2.center[1], ring2.center[0])
        assert all(math.hypot(*_m(center, p)) > ring2.radius_m for p in r.line)


def _drive(t: TruckModel, seconds: float, every: float = 5.0, start: float = T0):
    out = []
    for k in range(int(seconds / every)):
        now = start + k * every
        t.step(now)
        out.append((now, t.lat, t.lon, t.speed))
    return out


def test_trucks_drive_their_geofenced_trips() -> None:
    inv = build_inventory("district")
    fences = {g["id"]: g for g in geofences(inv)}
    cw = next(v for v in inv.vehicles if v.fleet == "construction_waste")
    t = TruckModel(cw, inv, random.Random(1))
    route = next(r for r in inv.routes if r.id == cw.route)
    track = _drive(t, 4 * 3600)
    assert max(_to_line((la, lo), list(route.line)) for _, la, lo, _ in track) < 40
    disposal = next(d for d in inv.disposal_sites if d.id == route.disposal)
    parked = [(la, lo) for _, la, lo, sp in track if sp == 0]
    assert any(math.hypot(*_m((disposal.lat, disposal.lon), p)) < 50 for p in parked)
    site = fences[route.site]
    assert any(_inside(lo, la, [list(p) for p in site["polygon"]]) for la, lo in parked)

    kw = next(v for v in inv.vehicles if v.fleet == "kitchen_waste")
    t = TruckModel(kw, inv, random.Random(2))
    track = _drive(t, 6 * 3600)
    for cp in (p for p in inv.collection_points if p.vehicle == kw.id):
        stops = [
            1
            for _, la, lo, sp in track
            if sp == 0 and math.hypot(*_m((cp.lat, cp.lon), (la, lo))) < 30
        ]
        assert stops, cp.id

    sw = next(v for v in inv.vehicles if v.fleet == "sanitation")
    t = TruckModel(sw, inv, random.Random(3))
    speeds = [sp for *_, sp in _drive(t, 1800)]
    assert 6 <= min(speeds) and max(speeds) <= 10 and 7 < sum(speeds) / len(speeds) < 9


def _faulted(kind: str, fleet: str, **params):
    inv = build_inventory("district")
    veh = next(v for v in inv.vehicles if v.fleet == fleet)
    t = TruckModel(veh, inv, random.Random(4))
    _drive(t, 60)
    f = Fault(kind, veh.id, params, T0 + 60, T0 + 60 + 1800)
    truth = t.plan(f, T0 + 60)
    t.faults.append(f)
    return inv, veh, t, truth


def test_illegal_dumping_parks_outside_every_approved_place() -> None:
    inv, veh, t, truth = _faulted("illegal_dumping", "construction_waste")
    route = next(r for r in inv.routes if r.id == veh.route)
    assert truth["geofence"] == route.disposal
    track = _drive(t, 600, start=T0 + 65)
    _, la, lo, sp = track[-1]
    assert sp == 0 and _to_line((la, lo), list(route.line)) > 300
    fences = geofences(inv)
    for g in fences:
        if g["kind"] in ("construction_site", "disposal_site", "depot") and "center" in g:
            c = (g["center"][1], g["center"][0])
            assert math.hypot(*_m(c, (la, lo))) > g["radius_m"] + g.get("buffer_m", 30)
    back = _drive(t, 1200, start=T0 + 60 + 1800)  # the fault ends: back on the corridor
    assert _to_line(back[-1][1:3], list(route.line)) < 40


def test_route_deviation_and_banned_hours_leave_the_corridor_for_the_zone() -> None:
    inv, veh, t, truth = _faulted("route_deviation", "construction_waste", offset_m=800.0)
    assert truth["geofence"] == veh.route
    route = next(r for r in inv.routes if r.id == veh.route)
    track = _drive(t, 300, start=T0 + 65)
    assert _to_line(track[-1][1:3], list(route.line)) > 500 and track[-1][3] > 0

    inv, veh, t, truth = _faulted("banned_hours", "construction_waste", zone="BZ-RING2-AM")
    zone = next(z for z in inv.banned_zones if z.id == "BZ-RING2-AM")
    assert truth["geofence"] == zone.id and truth["hours"] == ["07:00", "09:00"]
    track = _drive(t, 1700, start=T0 + 65)
    assert math.hypot(*_m(zone.center, track[-1][1:3])) < zone.radius_m - 200
    _, _, _, auto = _faulted("banned_hours", "construction_waste")  # any hour: some zone is banned
    assert auto["geofence"].startswith("BZ-")
    with pytest.raises(FaultError, match="no banned zone applies to kitchen_waste"):
        _faulted("banned_hours", "kitchen_waste")


def test_missed_collection_skips_the_named_point() -> None:
    inv = build_inventory("district")
    veh = next(v for v in inv.vehicles if v.fleet == "kitchen_waste")
    t = TruckModel(veh, inv, random.Random(4))
    t.seg, t.along = 0, 0.0  # leaving the depot: the round is all ahead
    at = _cst("2026-03-10T07:40")  # before the collection hours end (08:00-10:30)
    for start, until in ((at, at + 900), (_cst("2026-03-10T11:00"), None)):
        with pytest.raises(FaultError, match="until the hours end"):
            t.plan(Fault("missed_collection", veh.id, {}, start, until), start)
    f = Fault("missed_collection", veh.id, {}, at, at + 11000)
    truth = t.plan(f, at)
    assert truth["onset_s"] == _cst("2026-03-10T10:30") - at  # the hours' end: judged then
    t.faults.append(f)
    cp = next(p for p in inv.collection_points if p.id == truth["geofence"])
    assert cp.vehicle == veh.id and cp.id != veh.collection[0]  # not the one being approached
    plant = next(p for p in inv.treatment_plants if p.id == veh.plant)
    track = _drive(t, 6 * 3600, start=at)
    at_plant = next(
        k
        for k, (_, la, lo, sp) in enumerate(track)
        if sp == 0 and math.hypot(*_m((plant.lat, plant.lon), (la, lo))) < 50
    )
    round_one = track[:at_plant]
    assert all(math.hypot(*_m((cp.lat, cp.lon), (la, lo))) > 60 for _, la, lo, _ in round_one)
    for other in (p for p in inv.collection_points if p.vehicle == veh.id and p.id != cp.id):
        assert any(
            sp == 0 and math.hypot(*_m((other.lat, other.lon), (la, lo))) < 30
            for _, la, lo, sp in round_one
        ), other.id
    with pytest.raises(FaultError, match="no collection points"):
        _faulted("missed_collection", "sanitation")
