"""Geofences as arrays for the vehicle kernels: local metric coordinates, signed distances,
and a grid that names the few geofences near a fix.

Each geofence gets its own equirectangular frame (origin at its first point, x scaled by
the cosine of the origin's latitude): at city scale the error is well under a metre.
The signed distance is negative inside a zone; for a route it is the distance from the
line minus the corridor, so "inside" means "within the corridor" for every shape.

A circle's boundary buffer is capped at half its radius (:func:`effective_buffer`): with
the full buffer a small zone (a 30 m collection point with the default 30 m buffer) could
never be entered at all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from contracts.geofence import GEOFENCE_KINDS, GeofenceConfig

__all__ = [
    "GeoArrays",
    "compile_geofences",
    "effective_buffer",
    "signed_dist",
    "fix_dist",
    "cell_of",
    "hours_ns",
    "K_M",
    "DEG",
]

K_M = 111_320.0  # metres per degree of latitude (and of longitude at the equator)
DEG = math.pi / 180.0
SHAPE_POLYGON, SHAPE_CIRCLE, SHAPE_ROUTE = 0, 1, 2
_H = 3_600_000_000_000
_CELL_DEG = 0.01  # grid cell (~1.1 km north-south): a fix meets a handful of geofences
_MAX_CELLS_PER_AXIS = 2048


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
    c_lat: np.ndarray  # centre: a circle's centre, the mean of a ring's or a line's points
    c_lon: np.ndarray
    listed: np.ndarray  # uint8: the geofence names its vehicles (applies to those only)
    grid: np.ndarray  # float64 [lat_lo, lon_lo, cell_lat, cell_lon, rows, cols]
    cell_ptr: np.ndarray  # geofences whose box meets cell c: cell_geo[cell_ptr[c]:...[c+1]]
    cell_geo: np.ndarray  # int32, ascending within a cell
    max_cell: int  # most geofences in one cell


def hours_ns(hours: tuple[str, str] | None) -> tuple[int, int]:
    """Local "HH:MM" start and end as ns of the day; (-1, -1) for all day."""
    if hours is None:
        return -1, -1
    out = []
    for hm in hours:
        h, _, m = hm.partition(":")
        out.append(round((int(h) + int(m or 0) / 60) * _H))
    return out[0], out[1]


def effective_buffer(g: GeofenceConfig) -> float:
    """The boundary buffer in metres: ``buffer_m``, at most half a circle's radius."""
    if g.kind != "approved_route" and g.polygon is None and g.radius_m is not None:
        return min(g.buffer_m, 0.5 * g.radius_m)
    return g.buffer_m


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
    c_lat, c_lon = np.zeros(n), np.zeros(n)
    ptr = np.zeros(n + 1, dtype=np.int64)
    vx: list[float] = []
    vy: list[float] = []
    for i, g in enumerate(geofences):
        lo0, la0 = _origin(g)
        c0 = math.cos(la0 * DEG)
        lat0[i], lon0[i], cos0[i] = la0, lo0, c0
        kind[i] = GEOFENCE_KINDS.index(g.kind)
        buf[i] = effective_buffer(g)
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
        c_lat[i], c_lon[i] = sum(las) / len(las), sum(los) / len(los)
        bbox[i] = (min(las) - m / K_M, max(las) + m / K_M,
                   min(los) - m / (K_M * c0), max(los) + m / (K_M * c0))  # fmt: skip
        hs[i], he[i] = hours_ns(g.hours)
    lines = {i: (lat0[i], lon0[i], cos0[i], np.asarray(vx[ptr[i] : ptr[i + 1]]),
                 np.asarray(vy[ptr[i] : ptr[i + 1]]), g.buffer_m + corridor[i] + 10.0)
             for i, g in enumerate(geofences) if shape[i] == SHAPE_ROUTE}  # fmt: skip
    listed = np.array([bool(g.vehicles) for g in geofences], dtype=np.uint8)
    grid, cell_ptr, cell_geo = _grid(bbox, lines, listed)
    return GeoArrays(
        ids=[g.id for g in geofences], shape=shape, kind=kind, lat0=lat0, lon0=lon0, cos0=cos0,
        ptr=ptr, vx=np.asarray(vx, dtype=np.float64), vy=np.asarray(vy, dtype=np.float64),
        radius=radius, corridor=corridor, buffer=buf, bbox=bbox, h_start=hs, h_end=he,
        c_lat=c_lat, c_lon=c_lon, listed=listed, grid=grid, cell_ptr=cell_ptr, cell_geo=cell_geo,
        max_cell=int(np.diff(cell_ptr).max()) if len(cell_ptr) > 1 else 0,
    )  # fmt: skip


def _grid(bbox: np.ndarray, lines: dict, listed: np.ndarray) -> tuple[np.ndarray, ...]:
    """Cells over the geofences' boxes; each cell lists the geofences whose box meets it (a
    route: whose line passes within its margin), so a fix in a cell is outside the box, or
    beyond the corridor and buffer, of every other one: outside it either way. Geofences
    that list their vehicles are left out: the kernel measures those per vehicle."""
    if len(bbox) == 0:
        return np.zeros(6), np.zeros(1, dtype=np.int64), np.zeros(0, dtype=np.int32)
    lat_lo, lon_lo = float(bbox[:, 0].min()), float(bbox[:, 2].min())
    span_lat, span_lon = float(bbox[:, 1].max()) - lat_lo, float(bbox[:, 3].max()) - lon_lo
    d_lat = max(_CELL_DEG, span_lat / _MAX_CELLS_PER_AXIS)
    d_lon = max(_CELL_DEG, span_lon / _MAX_CELLS_PER_AXIS)
    rows, cols = int(span_lat / d_lat) + 1, int(span_lon / d_lon) + 1
    r0 = ((bbox[:, 0] - lat_lo) / d_lat).astype(np.int64)
    r1 = np.minimum(((bbox[:, 1] - lat_lo) / d_lat).astype(np.int64), rows - 1)
    c0 = ((bbox[:, 2] - lon_lo) / d_lon).astype(np.int64)
    c1 = np.minimum(((bbox[:, 3] - lon_lo) / d_lon).astype(np.int64), cols - 1)
    cells, geos = [], []
    for g in np.flatnonzero(listed == 0).tolist():
        rr, cc = np.meshgrid(np.arange(r0[g], r1[g] + 1), np.arange(c0[g], c1[g] + 1))
        rr, cc = rr.ravel(), cc.ravel()
        if g in lines:  # a route's box may span the city: keep the cells near its line
            keep = _near_line(lat_lo + (rr + 0.5) * d_lat, lon_lo + (cc + 0.5) * d_lon,
                              d_lat, d_lon, *lines[g])  # fmt: skip
            rr, cc = rr[keep], cc[keep]
        cells.append(rr * cols + cc)
        geos.append(np.full(rr.size, g, dtype=np.int32))
    cell = np.concatenate([np.zeros(0, dtype=np.int64), *cells])
    order = np.argsort(cell, kind="stable")  # stable: geofences ascending within a cell
    ptr = np.zeros(rows * cols + 1, dtype=np.int64)
    np.cumsum(np.bincount(cell, minlength=rows * cols), out=ptr[1:])
    grid = np.array([lat_lo, lon_lo, d_lat, d_lon, rows, cols], dtype=np.float64)
    return grid, ptr, np.concatenate([np.zeros(0, dtype=np.int32), *geos])[order]


def _near_line(lat, lon, d_lat, d_lon, lat0, lon0, cos0, vx, vy, margin):  # type: ignore[no-untyped-def]
    """Cells (by centre) that may hold a point within ``margin`` of the polyline, measured
    in the route's own frame as the kernel does: centre distance less half the diagonal."""
    x, y = (lon - lon0) * K_M * cos0, (lat - lat0) * K_M
    best = np.full(len(x), np.inf)
    for j in range(len(vx) - 1):
        dx, dy = vx[j + 1] - vx[j], vy[j + 1] - vy[j]
        ll = dx * dx + dy * dy
        u = np.clip(((x - vx[j]) * dx + (y - vy[j]) * dy) / ll, 0, 1) if ll > 0 else 0.0
        best = np.minimum(best, np.hypot(vx[j] + u * dx - x, vy[j] + u * dy - y))
    return best - 0.5 * math.hypot(d_lon * K_M * cos0, d_lat * K_M) <= margin


@njit(cache=True, nogil=True)
def cell_of(lat, lon, grid):  # pragma: no cover - compiled
    """The grid cell of a position, -1 outside the grid."""
    if grid[4] == 0:
        return -1  # no geofences
    r = math.floor((lat - grid[0]) / grid[2])
    c = math.floor((lon - grid[1]) / grid[3])
    if r < 0 or c < 0 or r >= grid[4] or c >= grid[5]:
        return -1
    return np.int64(r * grid[5] + c)


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
