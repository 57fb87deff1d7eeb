"""Which Chengdu district a point lies in: point-in-polygon over the shipped boundaries.

Each district's rings are cut into latitude bands once, so a lookup tests only the few
edges that cross the point's band; thousands of devices are placed in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from hardware.geo import load_districts

__all__ = ["district_at", "adcode_of", "district_names", "inside_ring"]

_BANDS = 256


@dataclass(frozen=True)
class _District:
    name: str
    adcode: str
    bbox: tuple[float, float, float, float]  # lon0, lat0, lon1, lat1
    # per band: edges (x1, y1, x2, y2) of outer rings and holes crossing that band
    bands: tuple[tuple[tuple[float, float, float, float], ...], ...]


def _build(feature: dict) -> _District:
    edges: list[tuple[float, float, float, float]] = []
    for poly in feature["geometry"]["coordinates"]:
        for ring in poly:  # holes flip parity just like outer rings
            pts = [tuple(p[:2]) for p in ring]
            if pts[0] == pts[-1]:
                pts = pts[:-1]
            for (x1, y1), (x2, y2) in zip(pts, pts[1:] + pts[:1], strict=True):
                if y1 != y2:
                    edges.append((x1, y1, x2, y2))
    lons = [e[0] for e in edges] + [e[2] for e in edges]
    lats = [e[1] for e in edges] + [e[3] for e in edges]
    bbox = (min(lons), min(lats), max(lons), max(lats))
    h = (bbox[3] - bbox[1]) / _BANDS
    bands: list[list[tuple[float, float, float, float]]] = [[] for _ in range(_BANDS)]
    for e in edges:
        lo, hi = sorted((e[1], e[3]))
        for b in range(int((lo - bbox[1]) / h), min(_BANDS - 1, int((hi - bbox[1]) / h)) + 1):
            bands[b].append(e)
    props = feature["properties"]
    return _District(props["name"], props["adcode"], bbox, tuple(tuple(b) for b in bands))


@cache
def _districts() -> tuple[_District, ...]:
    return tuple(_build(f) for f in load_districts()["features"])


def _inside(d: _District, lon: float, lat: float) -> bool:
    x0, y0, x1, y1 = d.bbox
    if not (x0 <= lon <= x1 and y0 <= lat < y1):
        return False
    band = min(_BANDS - 1, int((lat - y0) / ((y1 - y0) / _BANDS)))
    hit = False
    for ex1, ey1, ex2, ey2 in d.bands[band]:
        if (ey1 > lat) != (ey2 > lat) and lon < ex1 + (lat - ey1) * (ex2 - ex1) / (ey2 - ey1):
            hit = not hit
    return hit


def district_at(lat: float, lon: float) -> str | None:
    """Name of the district containing ``(lat, lon)`` (WGS-84), or None outside Chengdu."""
    for d in _districts():
        if _inside(d, lon, lat):
            return d.name
    return None


def adcode_of(name: str) -> str:
    """The six-digit administrative division code of a district; KeyError when unknown."""
    for d in _districts():
        if d.name == name:
            return d.adcode
    raise KeyError(f"no Chengdu district {name!r}")


def district_names() -> list[str]:
    """All district names, in the file's order."""
    return [d.name for d in _districts()]


def inside_ring(lat: float, lon: float, ring: list[tuple[float, float]]) -> bool:
    """Whether ``(lat, lon)`` lies inside a simple polygon given as ``[lon, lat]`` pairs."""
    hit = False
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1], strict=True):
        if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
            hit = not hit
    return hit
