"""Places of the simulated city: construction sites, facilities, collection points, zones, routes.

Coordinates are WGS-84 ``(lat, lon)`` like the rest of the inventory; polygons are rings
of ``(lon, lat)`` pairs (GeoJSON order) because that is how geofences carry them. Every
district is computed by point-in-polygon against the shipped boundaries.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace
from typing import Any

from hardware.chengdu import (
    CENTER,
    CONTRACTORS,
    DEPOT_SPOTS,
    DISPOSAL_SPOTS,
    OUTER_RING_M,
    PEDESTRIAN_ZONE,
    RESTAURANTS,
    RINGS,
    ROADS,
    TREATMENT_SPOTS,
    Road,
    all_streets,
    offset_point,
)
from hardware.geo.locate import adcode_of, district_at

__all__ = [
    "Facility",
    "Site",
    "CollectionPoint",
    "BannedZone",
    "Route",
    "M_PER_DEG",
    "facilities",
    "make_site",
    "banned_zones",
    "approved_route",
    "collection_points",
    "located",
    "assign",
]

M_PER_DEG = 111_320.0
_COS = math.cos(math.radians(CENTER[0]))
_SITE_KINDS = ("综合体", "安置房", "地铁站", "商业广场", "学校", "产业园")


@dataclass(frozen=True)
class Facility:
    """A disposal site (消纳场), treatment plant or depot: a named circle."""

    id: str
    kind: str  # "disposal_site" | "treatment_plant" | "depot"
    name: str
    district: str
    lat: float
    lon: float
    radius_m: float


@dataclass(frozen=True)
class Site:
    """A construction site (工地) with its permit, as a polygon around the works."""

    id: str
    name: str
    permit_no: str
    district: str
    lat: float
    lon: float
    polygon: tuple[tuple[float, float], ...]  # (lon, lat) ring


@dataclass(frozen=True)
class CollectionPoint:
    """A restaurant's registered kitchen-waste collection point, served by one truck."""

    id: str
    name: str
    district: str
    lat: float
    lon: float
    vehicle: str


@dataclass(frozen=True)
class BannedZone:
    """Where trucks of some fleets may not drive during some hours (None: at any hour)."""

    id: str
    name: str
    fleets: tuple[str, ...]
    hours: tuple[str, str] | None
    center: tuple[float, float] | None = None  # (lat, lon) with radius_m
    radius_m: float | None = None
    polygon: tuple[tuple[float, float], ...] | None = None  # (lon, lat) ring


@dataclass(frozen=True)
class Route:
    """The corridor construction-waste trucks of one site must keep to: site → disposal site."""

    id: str
    site: str
    disposal: str
    line: tuple[tuple[float, float], ...]  # (lat, lon) polyline, site first
    vehicles: tuple[str, ...]


def located(lat: float, lon: float) -> str:
    """District at a point; ValueError when the point is outside Chengdu."""
    district = district_at(lat, lon)
    if district is None:
        raise ValueError(f"({lat}, {lon}) is outside every Chengdu district")
    return district


def _polar(lat: float, lon: float) -> tuple[float, float]:
    dy, dx = (lat - CENTER[0]) * M_PER_DEG, (lon - CENTER[1]) * M_PER_DEG * _COS
    return math.hypot(dx, dy), math.atan2(dy, dx)


def facilities(kind: str, count: int) -> list[Facility]:
    """The first ``count`` facilities of a kind, named after the district they fall in."""
    spots, prefix, suffix, radius = {
        "disposal_site": (DISPOSAL_SPOTS, "DS", "建筑垃圾消纳场", 300.0),
        "treatment_plant": (TREATMENT_SPOTS, "TP", "餐厨垃圾处理厂", 250.0),
        "depot": (DEPOT_SPOTS, "DP", "环卫停车场", 120.0),
    }[kind]
    out = []
    for i, (lat, lon, locality) in enumerate(spots[:count]):
        district = located(lat, lon)
        name = f"{district}{locality}{suffix}"
        out.append(Facility(f"{prefix}-{i + 1:02d}", kind, name, district, lat, lon, radius))
    return out


def make_site(rng: random.Random, n: int) -> tuple[Site, float, float]:
    """A construction site outside 二环 (trucks are banned inside), and its monitor's spot."""
    while True:  # the simplified boundaries leave slivers between districts: draw again
        r = rng.uniform(RINGS["二环路"] + 1200.0, OUTER_RING_M + 1500.0)
        lat, lon = offset_point(r, rng.uniform(0, 2 * math.pi))
        district = district_at(lat, lon)
        if district is not None:
            break
    w, h = rng.uniform(120, 320) / 2, rng.uniform(100, 260) / 2  # half sizes, metres
    dlat, dlon = h / M_PER_DEG, w / (M_PER_DEG * _COS)
    ring = tuple(
        (round(lon + sx * dlon, 6), round(lat + sy * dlat, 6))
        for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))
    )
    date = f"2026{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    permit = f"{adcode_of(district)}{date}{n:04d}"
    name = f"{rng.choice(CONTRACTORS)}{district}{n}号地块{rng.choice(_SITE_KINDS)}项目"
    # The monitor stands inside the hoarding near the gate, not in the middle of the works.
    mlat, mlon = lat, lon
    for _ in range(20):
        mlat = round(lat + rng.uniform(-0.7, 0.7) * dlat, 6)
        mlon = round(lon + rng.uniform(-0.7, 0.7) * dlon, 6)
        if district_at(mlat, mlon) is not None:
            break
    else:
        mlat, mlon = lat, lon
    return Site(f"CS-{n:04d}", name, permit, district, lat, lon, ring), mlat, mlon


def banned_zones() -> list[BannedZone]:
    """Central zones closed to construction-waste trucks: 一环 by day, 二环 at peaks, 春熙路 always."""
    cw = ("construction_waste",)
    return [
        BannedZone(
            "BZ-RING1-DAY",
            "一环路以内渣土车日间禁行",
            cw,
            ("07:00", "22:00"),
            CENTER,
            RINGS["一环路"],
        ),
        BannedZone(
            "BZ-RING2-AM", "二环路以内早高峰禁行", cw, ("07:00", "09:00"), CENTER, RINGS["二环路"]
        ),
        BannedZone(
            "BZ-RING2-PM", "二环路以内晚高峰禁行", cw, ("17:00", "19:30"), CENTER, RINGS["二环路"]
        ),
        BannedZone(
            "BZ-CHUNXI", "春熙路—太古里步行商业区全天禁行", cw, None, polygon=PEDESTRIAN_ZONE
        ),
    ]


def approved_route(site: Site, disposals: list[Facility], vehicles: tuple[str, ...]) -> Route:
    """Out from the site, round on the 绕城 ring and in to the nearest disposal site by bearing."""
    r0, a0 = _polar(site.lat, site.lon)
    best = min(disposals, key=lambda d: abs(_wrap(_polar(d.lat, d.lon)[1] - a0)))
    r1, a1 = _polar(best.lat, best.lon)
    ring = max(r0, OUTER_RING_M)
    line = [(site.lat, site.lon)]
    if ring > r0 + 50:
        line.append(offset_point(ring, a0))
    turn = _wrap(a1 - a0)
    steps = max(1, int(abs(turn) / math.radians(10)))
    line += [offset_point(ring, a0 + turn * k / steps) for k in range(1, steps + 1)]
    line.append((best.lat, best.lon))
    clean = [p for i, p in enumerate(line) if i == 0 or p != line[i - 1]]
    return Route(f"RT-{site.id[3:]}", site.id, best.id, tuple(clean), vehicles)


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def collection_points(
    rng: random.Random, streets: list[Road], vehicle: str, first: int, count: int
) -> list[CollectionPoint]:
    """A truck's round: restaurants along two neighbouring parallel streets of the grid."""
    g = rng.randrange(len(streets) - 1)
    t0 = rng.uniform(0.2, 0.8)
    out = []
    for k in range(count):
        road = streets[g + k % 2]
        lat = lon = 0.0
        while district_at(lat, lon) is None:  # redrawn only off a sliver between districts
            t = min(1.0, max(0.0, t0 + rng.uniform(-0.12, 0.12)))
            lat = round(
                road.start[0] + t * (road.end[0] - road.start[0]) + rng.uniform(-1, 1) * 2e-4, 6
            )
            lon = round(
                road.start[1] + t * (road.end[1] - road.start[1]) + rng.uniform(-1, 1) * 2e-4, 6
            )
        name = f"{road.name}{rng.randint(1, 399)}号{rng.choice(RESTAURANTS)}"
        n = first + k
        out.append(CollectionPoint(f"CP-{n:05d}", name, located(lat, lon), lat, lon, vehicle))
    return out


def assign(
    rng: random.Random,
    vehicles: list[Any],
    sites: list[Site],
    disposals: list[Facility],
    plants: list[Facility],
    per_truck: int,
) -> tuple[list[Any], list[Route], list[CollectionPoint]]:
    """Give every construction-waste truck a site and route, every kitchen-waste truck a round."""
    by_site: dict[str, list[str]] = {}
    # East-west streets of the grid: neighbours in this list run parallel 600 m apart.
    grid = [r for r in all_streets()[len(ROADS) + 36 :] if r.start[0] == r.end[0]]
    points: list[CollectionPoint] = []
    out = []
    for v in vehicles:
        if v.fleet == "construction_waste" and sites:
            site = rng.choice(sites)
            by_site.setdefault(site.id, []).append(v.id)
            v = replace(v, route=f"RT-{site.id[3:]}")
        elif v.fleet == "kitchen_waste" and plants:
            mine = collection_points(rng, grid, v.id, len(points) + 1, per_truck)
            points += mine
            plant = min(
                plants, key=lambda p: (p.lat - mine[0].lat) ** 2 + (p.lon - mine[0].lon) ** 2
            )
            v = replace(v, collection=tuple(p.id for p in mine), plant=plant.id)
        out.append(v)
    routes = [approved_route(s, disposals, tuple(by_site[s.id])) for s in sites if s.id in by_site]
    return out, routes, points
