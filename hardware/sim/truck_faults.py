"""Truck faults that break a geofence on purpose, and the detours that act them out.

Planning a fault picks the geofence it violates (so the ground truth can name it) and,
where the truck must leave its path, a :class:`Detour`: drive off to a spot, hold there
(park to dump, wander inside a banned zone, follow a parallel street), then drive back.
The truck heads out at a steady speed, so the ground truth can say when the violation
begins (``onset_s`` after the fault's start: at the dumping spot, in the zone, off the
corridor); detection latency counts from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from contracts.astro import CST
from hardware.sim.faults import Fault, FaultError

if TYPE_CHECKING:
    from hardware.sim.trucks import TruckModel

__all__ = ["Detour", "plan_fault", "COLLECTION_HOURS"]

_M = 111_320.0
_DUMP_OFFSETS_M = (500.0, 900.0, 1500.0)
_CLEAR_M = 700.0  # a dumping spot is at least this far from any of the truck's own places
#: the morning round's window at every collection point (local time): a kitchen-waste round
#: takes 80-110 simulated minutes in the district, so the window holds at least one visit
COLLECTION_HOURS = ("08:00", "10:30")
_OFF_KMH = 40.0  # how fast a truck heads off its path: fixed, so the onset is known
_CORRIDOR_M = 150.0  # half-width of an approved route's corridor (hardware.sim.deployment)
_BUFFER_M = 30.0  # a geofence's boundary allowance (contracts.geofence's default)
_SUSTAIN_S = 300  # a deviation begins when the truck is off its corridor for this long


def _en(a: tuple[float, float], b: tuple[float, float]) -> tuple[float, float]:
    """Metres (north, east) from a to b."""
    return (b[0] - a[0]) * _M, (b[1] - a[1]) * _M * math.cos(math.radians(a[0]))


@dataclass
class Detour:
    """An excursion off the truck's path: out to ``goal`` (metres north, east), hold, back."""

    kind: str
    goal: tuple[float, float]
    until: float | None  # simulated time the fault ends; None: never
    freeze: bool = True  # the truck leaves its route (False: a parallel street alongside)
    speed_kmh: float | None = _OFF_KMH  # the speed it heads out at (None: its own)
    off: tuple[float, float] = (0.0, 0.0)
    phase: str = "out"
    spin: float = 0.0
    done: bool = False
    _moving: tuple[float, float] = (0.0, 0.0)

    def advance(self, model: TruckModel, metres: float, now: float) -> tuple[float, float]:
        """Spend ``metres`` of driving; returns (metres left for the route, speed km/h)."""
        if self.phase != "back" and self.until is not None and now >= self.until:
            self.phase = "back"
        target = (0.0, 0.0) if self.phase == "back" else self.goal
        dn, de = target[0] - self.off[0], target[1] - self.off[1]
        dist = math.hypot(dn, de)
        if self.phase in ("out", "back") and dist > 0:
            k = min(1.0, metres / dist)
            self.off = (self.off[0] + dn * k, self.off[1] + de * k)
            self._moving = (dn, de)
            if k >= 1.0:
                self.phase, self.done = ("hold", False) if self.phase == "out" else ("", True)
            return (metres if not self.freeze else 0.0), model.speed
        if self.phase == "hold":
            if self.kind == "illegal_dumping":
                model.odometer_m -= metres  # parked: the odometer stands still
                return 0.0, 0.0
            if self.kind == "banned_hours":  # wander round a 200 m circle inside the zone
                self.spin += metres / 200.0
                self.off = (
                    self.goal[0] + 200.0 * math.sin(self.spin),
                    self.goal[1] + 200.0 * math.cos(self.spin),
                )
                self._moving = (math.cos(self.spin), -math.sin(self.spin))
                return 0.0, model.speed
        return metres, model.speed

    def position(self, lat: float, lon: float) -> tuple[float, float]:
        """Where the truck is, given where its path is."""
        return lat + self.off[0] / _M, lon + self.off[1] / (_M * math.cos(math.radians(lat)))

    def heading(self, path_heading: float) -> float:
        """Heading while off the path (the path's heading on a parallel street)."""
        if not self.freeze or self.phase == "hold" and self.kind == "illegal_dumping":
            return path_heading
        return math.degrees(math.atan2(self._moving[1], self._moving[0])) % 360


def plan_fault(model: TruckModel, fault: Fault, now: float, stamp: float) -> dict[str, Any]:
    """Ground-truth fields for a truck fault (``geofence``...), setting up any detour.

    ``now`` is simulated time; ``stamp`` the time the truck's fixes carry."""
    veh, inv, kind = model.veh, model.inv, fault.kind
    here = (model.road_lat, model.road_lon)
    route = next((r for r in inv.routes if r.id == veh.route), None) if veh.route else None
    dest = route.disposal if route else (veh.plant or None)
    if kind == "long_stop":
        if _in_place(inv, (model.lat, model.lon)):
            raise FaultError(f"long_stop: {veh.id} is at an approved place (site, disposal "
                             "site, depot): a stop there is no violation")  # fmt: skip
        return {"geofence": dest, "lat": model.lat, "lon": model.lon, "onset_s": 0.0}
    if kind == "cover_open":  # the rule wants it moving: a parked truck drives off later
        return {"onset_s": max(0.0, model.parked_until - now)}
    if kind == "illegal_dumping":
        if veh.fleet == "kitchen_waste":
            _loaded(model)
        places = [model.route[i] for i in model.stop_ids]
        side = math.radians(model.heading + 90.0)
        for off in _DUMP_OFFSETS_M:
            goal = (off * math.cos(side), off * math.sin(side))
            spot = (
                here[0] + goal[0] / _M,
                here[1] + goal[1] / (_M * math.cos(math.radians(here[0]))),
            )
            if all(math.hypot(*_en(p, spot)) >= _CLEAR_M for p in places):
                break
        model.detour = Detour(kind, goal, fault.until)
        return {"geofence": dest, "route": veh.route or None, "lat": spot[0], "lon": spot[1],
                "onset_s": _eta(math.hypot(*goal))}  # fmt: skip
    if kind == "route_deviation":
        if route is None:
            raise FaultError(f"route_deviation: {veh.id} ({veh.fleet}) has no approved route")
        off = float(fault.params["offset_m"])
        dur = 3600.0 if fault.until is None else fault.until - now
        # the side of the street whose way stays off the corridor soonest (a fixed offset
        # runs along the route again after a turn)
        onset, goal = min(
            (_off_route_s(model, route.line, g, dur), g)
            for a in (90.0, -90.0)
            for g in [(off * math.cos(math.radians(model.heading + a)),
                       off * math.sin(math.radians(model.heading + a)))]
        )  # fmt: skip
        model.detour = Detour(kind, goal, fault.until, freeze=False)
        return {"geofence": route.id, "offset_m": off, "onset_s": onset}
    if kind == "banned_hours":
        return _banned(model, fault, stamp, here)
    if kind == "missed_collection":
        return _missed(model, fault, stamp)
    return {}


def _banned(model: TruckModel, fault: Fault, stamp: float, here: tuple[float, float]) -> dict:
    veh = model.veh
    zones = [z for z in model.inv.banned_zones if not z.fleets or veh.fleet in z.fleets]
    if not zones:
        raise FaultError(f"banned_hours: no banned zone applies to {veh.fleet} trucks ({veh.id})")
    # The rules judge the hours by the fixes' timestamps, so the zone must be banned then.
    local = datetime.fromtimestamp(stamp, CST).strftime("%H:%M")
    wanted = fault.params.get("zone")
    if wanted is not None:
        zone = next((z for z in zones if z.id == wanted), None)
        if zone is None:
            raise FaultError(f"banned_hours: no zone {wanted!r} for {veh.fleet} trucks")
    else:
        timed = [z for z in zones if z.hours and z.hours[0] <= local < z.hours[1]]
        # the nearest zone banned now: the truck drives straight there
        timed.sort(key=lambda z: _entry_m(z, here, _target(z, here)))
        zone = (timed or [z for z in zones if z.hours is None] or [None])[0]
        if zone is None:
            raise FaultError(f"banned_hours: no zone for {veh.fleet} is banned at {local}")
    target = _target(zone, here)
    model.detour = Detour("banned_hours", _en(here, target), fault.until)
    return {
        "geofence": zone.id,
        "hours": list(zone.hours) if zone.hours else None,
        "local_time": local,
        "onset_s": _eta(_entry_m(zone, here, target)),
    }


def _target(zone: Any, here: tuple[float, float]) -> tuple[float, float]:
    """Where in the zone the truck heads: halfway in towards a circle's centre, or a
    polygon's centroid."""
    if zone.center is not None and zone.radius_m is not None:
        n, e = _en(zone.center, here)
        r = math.hypot(n, e) or 1.0
        inner = min(0.5 * zone.radius_m, r)
        lat = zone.center[0] + n / r * inner / _M
        return lat, zone.center[1] + e / r * inner / (_M * math.cos(math.radians(lat)))
    ring = zone.polygon or ()
    return sum(p[1] for p in ring) / len(ring), sum(p[0] for p in ring) / len(ring)


def _inside(zone: Any, p: tuple[float, float]) -> bool:
    if zone.center is not None and zone.radius_m is not None:
        return math.hypot(*_en(zone.center, p)) <= zone.radius_m
    ring, x, y, inside = list(zone.polygon or ()), p[1], p[0], False  # (lon, lat) vertices
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1]):
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _entry_m(zone: Any, here: tuple[float, float], target: tuple[float, float]) -> float:
    """Metres along the straight way from ``here`` to ``target`` until inside the zone."""
    dist = math.hypot(*_en(here, target))
    steps = max(1, int(dist // 10.0))
    for i in range(steps + 1):
        f = i / steps
        if _inside(
            zone, (here[0] + f * (target[0] - here[0]), here[1] + f * (target[1] - here[1]))
        ):
            return f * dist
    return dist


def _missed(model: TruckModel, fault: Fault, stamp: float) -> dict:
    """Skip one collection point for as long as the fault lasts, which must reach past the
    end of the point's hours (:data:`COLLECTION_HOURS`) today: that end is the onset."""
    veh, n = model.veh, len(model.route)
    cps = sorted(i for i, gid in model.stop_ids.items() if gid.startswith("CP-"))
    if veh.fleet != "kitchen_waste" or not cps:
        raise FaultError(f"missed_collection: {veh.id} ({veh.fleet}) has no collection points")
    day = datetime.fromtimestamp(stamp, CST)
    start, end = (
        day.replace(hour=int(hm[:2]), minute=int(hm[3:]), second=0, microsecond=0).timestamp()
        for hm in COLLECTION_HOURS
    )
    if not stamp < end or (fault.until is not None and fault.until - fault.start < end - stamp):
        raise FaultError(
            f"missed_collection: {veh.id} must skip its point until the hours end "
            f"({COLLECTION_HOURS[1]}): the fault is over before, or starts after"
        )
    # The first point not visited in today's hours whose approach has not begun.
    ahead = sorted(cps, key=lambda i: (i - model.seg) % n)
    todo = [
        i for i in ahead if model.visited.get(i, -math.inf) < start and (i - model.seg) % n >= 3
    ]
    if not todo:
        raise FaultError(f"missed_collection: {veh.id} has visited its points in today's hours")
    i = todo[0]
    skip = {(i - 1) % n, i}
    a, cp, b = model.route[(i - 2) % n], model.route[i], model.route[(i + 1) % n]
    if _seg_dist(cp, a, b) < 200.0:  # the shortcut would still brush past: cut one more corner
        skip.add((i + 1) % n)
    until = math.inf if fault.until is None else fault.until
    model.skip.update(dict.fromkeys(skip, until))
    return {"geofence": model.stop_ids[i], "onset_s": end - stamp}


def _loaded(model: TruckModel) -> None:
    """FaultError unless a kitchen-waste truck has collected since it last unloaded."""
    n = len(model.route)
    last = next((model.stop_ids[(model.seg - k) % n] for k in range(n)
                 if (model.seg - k) % n in model.stop_ids), "")  # fmt: skip
    if not last.startswith("CP-"):
        raise FaultError(f"illegal_dumping: {model.veh.id} carries no kitchen waste (last stop "
                         f"{last or 'none'}): it can dump only between a collection and the plant")  # fmt: skip


def _off_route_s(model: TruckModel, line: Any, goal: tuple[float, float], dur: float) -> float:
    """Seconds until a truck on a parallel street (``goal``: its offset, metres north and
    east) is off the route's corridor, outside every place it may leave it in, and stays
    so until the fault ends or for ``_SUSTAIN_S`` (``dur``: never)."""
    inv, v, n = model.inv, _OFF_KMH / 3.6, len(model.route)
    seg, along, k = model.seg, model.along, v / max(1e-9, math.hypot(*goal))
    since: int | None = None
    for t in range(int(dur) + 1):
        a, b = model.route[seg], model.route[(seg + 1) % n]
        f = along / max(1e-6, _dist(a, b))
        lat, lon = a[0] + f * (b[0] - a[0]), a[1] + f * (b[1] - a[1])
        g = min(1.0, k * t)
        p = (lat + g * goal[0] / _M, lon + g * goal[1] / (_M * math.cos(math.radians(lat))))
        off = min(_seg_dist(p, c, d) for c, d in zip(line, line[1:]))
        if off > _CORRIDOR_M + _BUFFER_M and not _in_place(inv, p):
            since = t if since is None else since
            if t - since >= _SUSTAIN_S:
                return float(since)
        else:
            since = None
        along += v
        while along >= _dist(model.route[seg], model.route[(seg + 1) % n]):
            along -= _dist(model.route[seg], model.route[(seg + 1) % n])
            seg = (seg + 1) % n
    return dur if since is None else float(since)


def _in_place(inv: Any, p: tuple[float, float]) -> bool:
    """Whether ``p`` is at a place a construction-waste truck may stop or leave its route in
    (a site, a disposal site, a depot), boundary allowance included."""
    circles = [((f.lat, f.lon), f.radius_m) for f in (*inv.disposal_sites, *inv.depots)]
    if any(math.hypot(*_en(c, p)) <= r + _BUFFER_M for c, r in circles):
        return True
    rings = [[(q[1], q[0]) for q in s.polygon] for s in inv.sites]  # (lat, lon) vertices
    return any(_in_ring(r, p) or min(_seg_dist(p, c, d) for c, d in zip(r, r[1:] + r[:1]))
               <= _BUFFER_M for r in rings)  # fmt: skip


def _dist(a: tuple[float, float], b: tuple[float, float]) -> float:
    return math.hypot(*_en(a, b))


def _in_ring(ring: list[tuple[float, float]], p: tuple[float, float]) -> bool:
    """Whether ``p`` (lat, lon) is inside the polygon of (lat, lon) vertices."""
    inside = False
    for (y1, x1), (y2, x2) in zip(ring, ring[1:] + ring[:1]):
        if (y1 > p[0]) != (y2 > p[0]) and p[1] < x1 + (p[0] - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def _eta(metres: float) -> float:
    """Seconds to drive ``metres`` off the path at the detour's speed."""
    return round(metres / (_OFF_KMH / 3.6), 1)


def _seg_dist(p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
    bn, be = _en(a, b)
    pn, pe = _en(a, p)
    t = max(0.0, min(1.0, (pn * bn + pe * be) / max(1e-9, bn * bn + be * be)))
    return math.hypot(pn - t * bn, pe - t * be)
