"""Line-protocol encoding: Rongguan's polars encoder vs influxdb-client's ``Point`` path.

Both encode the same telemetry rows (a city-like mix of kinds, devices and fields) in the
same run; the figure is microseconds per row, and the ratio is Point / polars.
"""

from __future__ import annotations

import time

import numpy as np
import polars as pl
from influxdb_client import Point, WritePrecision

from ingest.frames import SCHEMA
from ingest.store.lineproto import encode_lines

__all__ = ["run", "sample_frame"]

_KINDS = {
    "lighting_cabinet": [
        "voltage_l1",
        "current_l1",
        "active_power",
        "circuit1_current",
        "circuit1_on",
    ],
    "dust_monitor": ["pm25", "pm10", "tsp", "noise", "wind_speed"],
    "vehicle": ["lat", "lon", "speed", "heading", "cover_open"],
}


def sample_frame(rows: int, seed: int = 7) -> pl.DataFrame:
    """A deterministic telemetry frame of ``rows`` rows."""
    rng = np.random.default_rng(seed)
    kinds = list(_KINDS)
    k = rng.integers(0, len(kinds), rows)
    dev = rng.integers(0, 5000, rows)
    f = rng.integers(0, 5, rows)
    prefix = np.array(["LC", "DM", "TRK"])[k]
    return pl.DataFrame(
        {
            "device_id": [f"{p}-{d:05d}" for p, d in zip(prefix, dev)],
            "kind": np.array(kinds)[k],
            "ts": 1_763_942_400_000_000_000 + np.arange(rows, dtype=np.int64) * 1_000_000,
            "field": [_KINDS[kinds[a]][b] for a, b in zip(k, f)],
            "value": rng.normal(100.0, 30.0, rows),
        },
        schema=SCHEMA,
    )


def _point_lines(frame: pl.DataFrame) -> list[str]:
    return [
        Point(kind)
        .tag("device_id", dev)
        .field(field, value)
        .time(ts, WritePrecision.NS)
        .to_line_protocol()
        for dev, kind, ts, field, value in frame.iter_rows()
    ]


def run(rows: int = 200_000) -> dict:
    """Encode the same rows both ways; µs per row and the speed-up."""
    frame = sample_frame(rows)
    encode_lines(frame.head(1000))  # warm up polars' string kernels
    best_polars = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        ours = encode_lines(frame)
        best_polars = min(best_polars, time.perf_counter() - t0)
    # Point is ~16 µs/row: one pass over a slice is plenty and keeps the bench short.
    n_point = min(rows, 50_000)
    t0 = time.perf_counter()
    theirs = _point_lines(frame.head(n_point))
    t_point = time.perf_counter() - t0
    if ours.head(n_point).to_list() != theirs:
        raise AssertionError("polars and Point line protocol differ")
    polars_us = best_polars / rows * 1e6
    point_us = t_point / n_point * 1e6
    return {
        "rows": rows,
        "point_rows": n_point,
        "polars_us_per_row": round(polars_us, 3),
        "point_us_per_row": round(point_us, 3),
        "speedup_vs_point": round(point_us / polars_us, 1),
        "identical_output": True,
    }
