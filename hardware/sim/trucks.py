"""Behaviour of a GPS-tracked truck: trips along a street-like route with stops and GPS noise.

Routes run depot → work place(s) → destination → depot, with a corner between each pair
of waypoints so the truck drives a street grid rather than as the crow flies:
construction-waste trucks go site → disposal site (消纳场), kitchen-waste trucks visit
collection points then the treatment plant, sanitation trucks loop along a road.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

from hardware.inventory import Inventory, Vehicle
from hardware.sim.faults import Fault

__all__ = ["TruckModel", "build_route"]

_M_PER_DEG_LAT = 111_320.0
_GPS_SIGMA_M = 4.0


def _dist_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    dy = (b[0] - a[0]) * _M_PER_DEG_LAT
    dx = (b[1] - a[1]) * _M_PER_DEG_LAT * math.cos(math.radians(a[0]))
    return math.hypot(dx, dy)


def _bearing(a: tuple[float, float], b: tuple[float, float]) -> float:
    dy = b[0] - a[0]
    dx = (b[1] - a[1]) * math.cos(math.radians(a[0]))
    return math.degrees(math.atan2(dx, dy)) % 360


def build_route(
    veh: Vehicle, inv: Inventory, rng: random.Random
) -> tuple[list[tuple[float, float]], dict[int, float]]:
    """Closed route waypoints and ``{waypoint index: dwell seconds}`` for one vehicle."""
    depot = (veh.depot_lat, veh.depot_lon)
    stops: list[tuple[tuple[float, float], float]] = []
    if veh.fleet == "construction_waste" and inv.dust_monitors:
        site = rng.choice(inv.dust_monitors)
        dump = rng.choice(inv.disposal_sites)
        stops = [((site.lat, site.lon), 120.0), ((dump.lat, dump.lon), 90.0)]
    elif veh.fleet == "kitchen_waste":
        for _ in range(3):  # restaurants' collection points near the depot
            p = (depot[0] + rng.uniform(-0.02, 0.02), depot[1] + rng.uniform(-0.02, 0.02))
            stops.append((p, 60.0))
        plant = rng.choice(inv.treatment_plants)
        stops.append(((plant.lat, plant.lon), 120.0))
    else:
        for _ in range(3):  # a sweeping loop around the depot's neighbourhood
            stops.append(
                (
                    (depot[0] + rng.uniform(-0.015, 0.015), depot[1] + rng.uniform(-0.015, 0.015)),
                    0.0,
                )
            )
    points: list[tuple[float, float]] = [depot]
    dwell: dict[int, float] = {}
    for p, d in [*stops, (depot, 60.0)]:
        last = points[-1]
        points.append((last[0], p[1]) if rng.random() < 0.5 else (p[0], last[1]))  # street corner
        points.append(p)
        if d:
            dwell[len(points) - 1] = d
    points[-1] = depot
    return points[:-1], {k % (len(points) - 1): v for k, v in dwell.items()}


class TruckModel:
    """Ground-truth position and motion of one truck, advanced by :meth:`step`."""

    def __init__(self, veh: Vehicle, inv: Inventory, rng: random.Random):
        self.veh = veh
        self.rng = rng
        self.route, self.dwell = build_route(veh, inv, rng)
        self.seg = rng.randrange(len(self.route))
        if self.seg in self.dwell:  # start on the road, not parked
            self.seg = (self.seg + 1) % len(self.route)
        self.along = 0.0  # metres into the current segment
        self.speed = rng.uniform(25.0, 45.0)
        self.target = rng.uniform(25.0, 45.0)
        self.parked_until = 0.0
        self.faults: list[Fault] = []
        self._last: float | None = None
        # A truck in service has kilometres on it (own stream: the motion draws stay as they were).
        self.odometer_m = random.Random(veh.id).uniform(5e6, 9e7)
        self.clock: Callable[[float], float] = lambda t: t  # wall -> simulated epoch seconds
        self.lat, self.lon = self.route[self.seg]
        self.heading = _bearing(self.route[self.seg], self.route[(self.seg + 1) % len(self.route)])

    def _fault(self, kind: str, now: float) -> Fault | None:
        return next((f for f in self.faults if f.kind == kind and f.active(now)), None)

    def step(self, now: float) -> None:
        """Drive to where the truck is at ``now``."""
        t = self.clock(now)  # motion follows simulated time; faults are wall-clock windows
        dt = 0.0 if self._last is None else min(600.0, max(0.0, t - self._last))
        self._last = t
        self.faults = [f for f in self.faults if f.until is None or now < f.until]
        rng = self.rng
        over = self._fault("overspeed", now)
        # Skipping stops: speeding, driving on through banned hours, or missing a collection.
        skip = over or self._fault("banned_hours", now) or self._fault("missed_collection", now)
        stopped = self._fault("long_stop", now) or self._fault("illegal_dumping", now)
        if stopped or (t < self.parked_until and not skip):
            self.speed = 0.0
        elif over is not None:
            self.speed = float(over.params["speed"]) + rng.gauss(0, 1.0)
        else:
            if rng.random() < 0.05:
                self.target = rng.uniform(20.0, 50.0)
            self.speed += max(-4.0, min(4.0, (self.target - self.speed) * 0.3 + rng.gauss(0, 1.0)))
            self.speed = min(50.0, max(20.0, self.speed))
        remaining = self.speed / 3.6 * dt
        self.odometer_m += remaining
        n = len(self.route)
        while remaining > 0:
            a, b = self.route[self.seg], self.route[(self.seg + 1) % n]
            seg_len = _dist_m(a, b)
            if self.along + remaining < seg_len:
                self.along += remaining
                break
            remaining -= seg_len - self.along
            self.seg, self.along = (self.seg + 1) % n, 0.0
            if self.seg in self.dwell and not skip:
                self.parked_until = t + self.dwell[self.seg]
                break
        a, b = self.route[self.seg], self.route[(self.seg + 1) % n]
        frac = self.along / max(1e-6, _dist_m(a, b))
        self.heading = _bearing(a, b)
        lat, lon = a[0] + frac * (b[0] - a[0]), a[1] + frac * (b[1] - a[1])
        dev = self._fault("route_deviation", now)
        if dev is not None:  # a parallel street off the approved route, east of it
            lon += float(dev.params["offset_m"]) / (_M_PER_DEG_LAT * math.cos(math.radians(lat)))
        self.lat = lat + rng.gauss(0, _GPS_SIGMA_M) / _M_PER_DEG_LAT
        self.lon = lon + rng.gauss(0, _GPS_SIGMA_M) / (_M_PER_DEG_LAT * math.cos(math.radians(lat)))

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
