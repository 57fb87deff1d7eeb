"""Behaviour of a GPS-tracked truck: trips that keep to the city's geofences, with GPS noise.

Construction-waste trucks shuttle along their approved route: load at the site, drive out
to the 绕城 ring and round to the disposal site (消纳场), unload, and return the same way.
Kitchen-waste trucks leave the depot, stop at each of their collection points, unload at
the treatment plant and go home. Sweepers loop a block near their depot at working speed.
Geofence faults leave those paths on purpose (see :mod:`hardware.sim.truck_faults`).
Every time argument is simulated epoch seconds (see :mod:`hardware.sim.clock`).
"""

from __future__ import annotations

import math
import random
from typing import Any

from hardware.inventory import Inventory, Vehicle
from hardware.sim.faults import Fault
from hardware.sim.truck_faults import Detour, plan_fault

__all__ = ["TruckModel", "build_route", "SPEEDS"]

_M_PER_DEG_LAT = 111_320.0
_GPS_SIGMA_M = 4.0
# fleet -> (lowest, highest) cruising speed, km/h; sweepers work at about 8 km/h
SPEEDS: dict[str, tuple[float, float]] = {
    "construction_waste": (20.0, 50.0),
    "kitchen_waste": (20.0, 50.0),
    "sanitation": (6.0, 10.0),
}


def _dist_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    dy = (b[0] - a[0]) * _M_PER_DEG_LAT
    dx = (b[1] - a[1]) * _M_PER_DEG_LAT * math.cos(math.radians(a[0]))
    return math.hypot(dx, dy)


def _bearing(a: tuple[float, float], b: tuple[float, float]) -> float:
    dy = b[0] - a[0]
    dx = (b[1] - a[1]) * math.cos(math.radians(a[0]))
    return math.degrees(math.atan2(dx, dy)) % 360


def _corner(rng: random.Random, a: tuple[float, float], b: tuple[float, float]):
    return (a[0], b[1]) if rng.random() < 0.5 else (b[0], a[1])


def build_route(
    veh: Vehicle, inv: Inventory, rng: random.Random
) -> tuple[list[tuple[float, float]], dict[int, float], dict[int, str]]:
    """Closed route waypoints, ``{index: dwell s}`` and ``{index: geofence id}`` of its stops."""
    depot = (veh.depot_lat, veh.depot_lon)
    route = next((r for r in inv.routes if r.id == veh.route), None) if veh.route else None
    if route is not None:
        line = list(route.line)
        points = line + line[-2:0:-1]  # there and back on the same corridor
        return (
            points,
            {0: 120.0, len(line) - 1: 90.0},
            {0: route.site, len(line) - 1: route.disposal},
        )
    if veh.fleet == "kitchen_waste" and veh.collection:
        cps = {p.id: p for p in inv.collection_points if p.vehicle == veh.id}
        plant = next((p for p in inv.treatment_plants if p.id == veh.plant), None)
        stops = [((cps[c].lat, cps[c].lon), 60.0, c) for c in veh.collection if c in cps]
        if plant is not None:
            stops.append(((plant.lat, plant.lon), 120.0, plant.id))
        points: list[tuple[float, float]] = [depot]
        dwell: dict[int, float] = {}
        ids: dict[int, str] = {}
        for p, d, gid in [*stops, (depot, 60.0, veh.depot)]:
            points += [_corner(rng, points[-1], p), p]
            dwell[len(points) - 1], ids[len(points) - 1] = d, gid
        n = len(points) - 1  # the last point is the depot again: index 0
        return (
            points[:-1],
            {k % n: v for k, v in dwell.items()},
            {k % n: v for k, v in ids.items() if v},
        )
    # Sweeper (or a truck without assignments): a block near the depot, corner to corner.
    c = (depot[0] + rng.uniform(-0.01, 0.01), depot[1] + rng.uniform(-0.01, 0.01))
    h, w = rng.uniform(0.003, 0.006), rng.uniform(0.004, 0.008)
    block = [(c[0] - h, c[1] - w), (c[0] - h, c[1] + w), (c[0] + h, c[1] + w), (c[0] + h, c[1] - w)]
    return block, {}, {}


class TruckModel:
    """Ground-truth position and motion of one truck, advanced by :meth:`step`."""

    def __init__(self, veh: Vehicle, inv: Inventory, rng: random.Random):
        self.veh = veh
        self.inv = inv
        self.rng = rng
        self.route, self.dwell, self.stop_ids = build_route(veh, inv, rng)
        self.seg = rng.randrange(len(self.route))
        if self.seg in self.dwell:  # start on the road, not parked
            self.seg = (self.seg + 1) % len(self.route)
        self.along = 0.0  # metres into the current segment
        self.v_lo, self.v_hi = SPEEDS.get(veh.fleet, (20.0, 50.0))
        self.speed = rng.uniform(self.v_lo, self.v_hi)
        self.target = rng.uniform(self.v_lo, self.v_hi)
        self.parked_until = 0.0
        self.faults: list[Fault] = []
        self.skip: dict[int, float] = {}  # waypoint -> until when to drive past it (missed)
        self.visited: dict[int, float] = {}  # stop waypoint -> when the truck last parked there
        self.detour: Detour | None = None
        self._last: float | None = None
        # A truck in service has kilometres on it (own stream: the motion draws stay as they were).
        self.odometer_m = random.Random(veh.id).uniform(5e6, 9e7)
        self.road_lat, self.road_lon = self.lat, self.lon = self.route[self.seg]
        self.heading = _bearing(self.route[self.seg], self.route[(self.seg + 1) % len(self.route)])

    def _fault(self, kind: str, now: float) -> Fault | None:
        return next((f for f in self.faults if f.kind == kind and f.active(now)), None)

    def plan(self, fault: Fault, now: float, stamp: float | None = None) -> dict[str, Any]:
        """Prepare a fault about to be applied; returns ground-truth fields (geofence id...).

        ``stamp`` is the time the fixes will carry (default ``now``): banned hours are
        judged by it."""
        return plan_fault(self, fault, now, now if stamp is None else stamp)

    def _next(self, seg: int) -> int:
        nxt = self._peek(seg)
        now = self._last or 0.0
        for i in [i for i, until in self.skip.items() if until <= now]:
            del self.skip[i]  # the fault is over: the next round stops there again
        return nxt

    def step(self, now: float) -> None:
        """Drive to where the truck is at ``now``."""
        # A long gap (a truck stepped only when it reports) drives at most ten minutes.
        dt = 0.0 if self._last is None else min(600.0, max(0.0, now - self._last))
        self._last = now
        self.faults = [f for f in self.faults if f.until is None or now < f.until]
        rng = self.rng
        over = self._fault("overspeed", now)
        stopped = self._fault("long_stop", now)
        if stopped or (now < self.parked_until and over is None):
            self.speed = 0.0
        elif over is not None:
            self.speed = float(over.params["speed"]) + rng.gauss(0, 1.0)
        else:
            if rng.random() < 0.05:
                self.target = rng.uniform(self.v_lo, self.v_hi)
            step = (self.target - self.speed) * 0.3 + rng.gauss(0, 0.1 * (self.v_hi - self.v_lo))
            self.speed += max(-4.0, min(4.0, step))
            self.speed = min(self.v_hi, max(self.v_lo, self.speed))
        street = self.detour is not None and not self.detour.freeze and self.detour.phase != ""
        if (
            self.detour is not None
            and self.detour.speed_kmh
            and (self.detour.phase == "out" or street)
        ):
            # heading off (or along a parallel street) at a steady speed, without stopping:
            # the ground truth can say when the violation begins
            self.speed = self.detour.speed_kmh
        remaining = self.speed / 3.6 * dt
        self.odometer_m += remaining
        if self.detour is not None:
            # Off the road network's route: the detour takes the distance driven.
            remaining, self.speed = self.detour.advance(self, remaining, now)
            if self.detour.done:
                self.detour = None
        n = len(self.route)
        while remaining > 0:
            a, b = self.route[self.seg], self.route[self._peek()]
            seg_len = _dist_m(a, b)
            if self.along + remaining < seg_len:
                self.along += remaining
                break
            remaining -= seg_len - self.along
            self.seg, self.along = self._next(self.seg), 0.0
            if self.seg in self.dwell and over is None and not street:
                self.parked_until = now + self.dwell[self.seg]
                self.visited[self.seg] = now
                break
        a, b = self.route[self.seg], self.route[self._peek() % n]
        frac = self.along / max(1e-6, _dist_m(a, b))
        self.heading = _bearing(a, b)
        self.road_lat, self.road_lon = a[0] + frac * (b[0] - a[0]), a[1] + frac * (b[1] - a[1])
        lat, lon = self.road_lat, self.road_lon
        if self.detour is not None:
            lat, lon = self.detour.position(lat, lon)
            self.heading = self.detour.heading(self.heading)
        cos = math.cos(math.radians(lat))
        self.lat = lat + rng.gauss(0, _GPS_SIGMA_M) / _M_PER_DEG_LAT
        self.lon = lon + rng.gauss(0, _GPS_SIGMA_M) / (_M_PER_DEG_LAT * cos)

    def _peek(self, seg: int | None = None) -> int:
        """The waypoint after ``seg`` (default: the current), past the ones skipped now."""
        n, now = len(self.route), self._last or 0.0
        nxt = ((self.seg if seg is None else seg) + 1) % n
        for _ in range(n):
            if self.skip.get(nxt, -math.inf) <= now:
                break
            nxt = (nxt + 1) % n
        return nxt

    def state(self, now: float) -> dict[str, float | bool]:
        """Current fix keyed by the profile's point keys (a GPS jump shows only in the fix)."""
        lat, lon = self.lat, self.lon
        jump = self._fault("gps_jump", now)
        if jump is not None:
            lat += float(jump.params["distance_m"]) / _M_PER_DEG_LAT
        return {
            "lat": lat,
            "lon": lon,
            "odometer": self.odometer_m / 1000.0,  # km
            "speed": self.speed,
            "heading": self.heading,
            "cover_open": self._fault("cover_open", now) is not None,
        }
