"""The shipped Chengdu districts: all 20, in WGS-84, where the landmarks are."""

from __future__ import annotations

import pytest

from hardware.geo import load_districts
from hardware.geo.derive_districts import gcj02_to_wgs84, wgs84_to_gcj02


def _inside(lon: float, lat: float, ring: list[list[float]]) -> bool:
    hit = False
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1]):
        if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
            hit = not hit
    return hit


def _district_of(lon: float, lat: float) -> str | None:
    for f in load_districts()["features"]:
        for poly in f["geometry"]["coordinates"]:
            if _inside(lon, lat, poly[0]) and not any(_inside(lon, lat, h) for h in poly[1:]):
                return f["properties"]["name"]
    return None


def test_twenty_districts_with_adcodes():
    feats = load_districts()["features"]
    assert len(feats) == 20
    assert {f["properties"]["adcode"][:4] for f in feats} == {"5101"}
    assert "锦江区" in {f["properties"]["name"] for f in feats}


@pytest.mark.parametrize(
    ("name", "lat", "lon", "district"),
    [
        ("成都东站", 30.6296, 104.1416, "成华区"),
        ("双流国际机场", 30.5785, 103.9471, "双流区"),
        ("都江堰市区", 30.9990, 103.6197, "都江堰市"),
        ("春熙路", 30.6570, 104.0810, "锦江区"),
    ],
)
def test_landmarks_fall_in_their_district(name: str, lat: float, lon: float, district: str):
    assert _district_of(lon, lat) == district, name


def test_gcj02_round_trip_and_known_offset():
    # The GCJ-02 offset around Chengdu is a few hundred metres; the inverse undoes it.
    glon, glat = wgs84_to_gcj02(104.06, 30.66)
    assert 0.001 < abs(glon - 104.06) + abs(glat - 30.66) < 0.01
    lon, lat = gcj02_to_wgs84(glon, glat)
    assert abs(lon - 104.06) < 1e-7 and abs(lat - 30.66) < 1e-7
