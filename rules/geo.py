"""Geofences as arrays for the vehicle kernels: local metric coordinates, signed distances.

Each geofence gets its own equirectangular frame (origin at its first point, x scaled by
the cosine of the origin's latitude): at city scale the error is well under a metre.
The signed distance is negative inside a zone; for a route it is the distance from the
line minus the corridor, so "inside" means "within the corridor" for every shape.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from contracts.geofence import GEOFENCE_KINDS, GeofenceConfig

__all__ = ["GeoArrays", "compile_geofences", "signed_dist", "fix_dist", "hours_ns", "K_M", "DEG"]

K_M = 111_320.0  # metres per degree of latitude (and of longitude at the equator)
DEG = math.pi / 180.0
SHAPE_POLYGON, SHAPE_CIRCLE, SHAPE_ROUTE = 0, 1, 2
_H = 3_600_000_000_000


@dataclass(frozen=True)
class GeoArrays:
    """Per-geofence parameters; vertices of geofence g are ``vx/vy[ptr[g]:ptr[g+1]]``."""

    ids: list[str]
    shape: np.ndarray  # int8
    kind: np.ndarray  # int8: index in GEOFENCE_KINDS
    lat0: np.ndarray
    lon0: np.ndarray
    cos0: np.ndarray
    ptr: np.ndarray  # int64
    vx: np.ndarray
    vy: np.ndarray
    radius: np.ndarray
    corridor: np.ndarray
    buffer: np.ndarray
    bbox: np.ndarray  # [n, 4]: lat_lo, lat_hi, lon_lo, lon_hi, grown past the buffer
    h_start: np.ndarray  # int64 local ns of day; -1: all day
    h_end: np.ndarray


def hours_ns(hours: tuple[str, str] | None) -> tuple[int, int]:
    """Local "HH:MM" start and end as ns of the day; (-1, -1) for all day."""
    if hours is None:
        return -1, -1
    out = []
    for hm in hours:
        h, _, m = hm.partition(":")
        out.append(round((int(h) + int(m or 0) / 60) * _H))
    return out[0], out[1]


def _origin(g: GeofenceConfig) -> tuple[float, float]:
    if g.line:
        return g.line[0]
    if g.polygon:
        return g.polygon[0]
    assert g.center is not None
    return g.center


def _ring(g: GeofenceConfig) -> list[tuple[float, float]]:
    pts = list(g.line or g.polygon or [])
    if g.polygon and len(pts) > 3 and pts[0] == pts[-1]:
        pts = pts[:-1]  # closed ring: the closing edge is implied
    return pts


def compile_geofences(geofences: list[GeofenceConfig]) -> GeoArrays:
    """Turn geofence configs into kernel arrays."""
    n = len(geofences)
    shape = np.zeros(n, dtype=np.int8)
    kind = np.zeros(n, dtype=np.int8)
    lat0, lon0, cos0 = np.zeros(n), np.zeros(n), np.zeros(n)
    radius, corridor, buf = np.zeros(n), np.zeros(n), np.zeros(n)
    bbox = np.zeros((n, 4))
    hs, he = np.full(n, -1, dtype=np.int64), np.full(n, -1, dtype=np.int64)
    ptr = np.zeros(n + 1, dtype=np.int64)
    vx: list[float] = []
    vy: list[float] = []
    for i, g in enumerate(geofences):
        lo0, la0 = _origin(g)
        c0 = math.cos(la0 * DEG)
        lat0[i], lon0[i], cos0[i] = la0, lo0, c0
        kind[i] = GEOFENCE_KINDS.index(g.kind)
        buf[i] = g.buffer_m
        pts = _ring(g)
        if g.kind == "approved_route":
            shape[i], corridor[i] = SHAPE_ROUTE, g.corridor_m
        elif g.polygon is None:
            shape[i], radius[i] = SHAPE_CIRCLE, float(g.radius_m or 0.0)
            pts = [g.center] if g.center else []
        for lo, la in pts:
            vx.append((lo - lo0) * K_M * c0)
            vy.append((la - la0) * K_M)
        ptr[i + 1] = len(vx)
        # grow the box past buffer (and corridor / radius): a fix outside it is outside
        m = g.buffer_m + corridor[i] + radius[i] + 10.0
        las = [p[1] for p in pts]
        los = [p[0] for p in pts]
        bbox[i] = (min(las) - m / K_M, max(las) + m / K_M,
                   min(los) - m / (K_M * c0), max(los) + m / (K_M * c0))  # fmt: skip
        hs[i], he[i] = hours_ns(g.hours)
    return GeoArrays(
        ids=[g.id for g in geofences], shape=shape, kind=kind, lat0=lat0, lon0=lon0, cos0=cos0,
        ptr=ptr, vx=np.asarray(vx, dtype=np.float64), vy=np.asarray(vy, dtype=np.float64),
        radius=radius, corridor=corridor, buffer=buf, bbox=bbox, h_start=hs, h_end=he,
    )  # fmt: skip


@njit(cache=True, nogil=True)
def fix_dist(lat1, lon1, lat2, lon2):  # pragma: no cover - compiled
    """Metres between two nearby fixes (equirectangular at the first one's latitude)."""
    dx = (lon2 - lon1) * K_M * math.cos(lat1 * DEG)
    dy = (lat2 - lat1) * K_M
    return math.sqrt(dx * dx + dy * dy)


@njit(cache=True, nogil=True)
def _seg2(x, y, x1, y1, x2, y2):  # pragma: no cover - compiled
    dx = x2 - x1
    dy = y2 - y1
    ll = dx * dx + dy * dy
    u = 0.0
    if ll > 0.0:
        u = ((x - x1) * dx + (y - y1) * dy) / ll
        if u < 0.0:
            u = 0.0
        elif u > 1.0:
            u = 1.0
    px = x1 + u * dx - x
    py = y1 + u * dy - y
    return px * px + py * py


@njit(cache=True, nogil=True)
def signed_dist(g, lat, lon, shape, lat0, lon0, cos0, ptr, vx, vy, radius, corridor):  # fmt: skip  # pragma: no cover
    """Signed metres from geofence g's boundary (negative inside / within the corridor)."""
    x = (lon - lon0[g]) * K_M * cos0[g]
    y = (lat - lat0[g]) * K_M
    a = ptr[g]
    b = ptr[g + 1]
    if shape[g] == 1:
        dx = x - vx[a]
        dy = y - vy[a]
        return math.sqrt(dx * dx + dy * dy) - radius[g]
    best = np.inf
    if shape[g] == 2:
        for j in range(a, b - 1):
            d2 = _seg2(x, y, vx[j], vy[j], vx[j + 1], vy[j + 1])
            if d2 < best:
                best = d2
        return math.sqrt(best) - corridor[g]
    inside = False
    for j in range(a, b):
        k = j + 1 if j + 1 < b else a
        xi, yi, xk, yk = vx[j], vy[j], vx[k], vy[k]
        d2 = _seg2(x, y, xi, yi, xk, yk)
        if d2 < best:
            best = d2
        if (yi > y) != (yk > y) and x < (xk - xi) * (y - yi) / (yk - yi) + xi:
            inside = not inside
    d = math.sqrt(best)
    return -d if inside else d
