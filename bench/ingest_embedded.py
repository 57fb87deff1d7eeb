"""The embedded store on a district's day: write rate, then the dashboard's queries.

A district reporting every ``interval_s`` for a whole day: ``devices`` devices (lighting
cabinets, dust monitors and trucks in turn), five fields each, each device at its own
offset within the interval; ~2 M rows by default. Written as ingest writes them (one
frame per ``write_every_s`` of data), then timed, median of five runs each:

- ``latest``: the last value of every series (the dashboard's start-up seed);
- ``range``: one device's field over the day, raw, 1-min mean and 5-min max buckets;
- ``track``: one truck's fixes over the day (the fleet view's replay).

Also the write rate of the latest-only mode the store runs in beside InfluxDB.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import polars as pl

from bench.ingest_fleet import FIELDS
from ingest.frames import SCHEMA
from ingest.store.embedded import EmbeddedStore

__all__ = ["run", "district_day"]

_S = 1_000_000_000
_KINDS = list(FIELDS)
_DAY = 1_763_913_600 * _S  # a whole day, UTC midnight


def district_day(devices: int, interval_s: int, write_every_s: int) -> list[pl.DataFrame]:
    """The day's rows as frames of ``write_every_s`` seconds each, in time order."""
    kinds = [_KINDS[j % 3] for j in range(devices)]
    ids = [f"{('LC', 'DM', 'TRK')[j % 3]}-{j:05d}" for j in range(devices)]
    series = pl.DataFrame(
        {
            "device_id": [ids[j] for j in range(devices) for _ in range(5)],
            "kind": [kinds[j] for j in range(devices) for _ in range(5)],
            "field": [f for j in range(devices) for f in FIELDS[kinds[j]]],
            "base": [v for j in range(devices) for v in FIELDS[kinds[j]].values()],
            "offset": np.repeat(np.arange(devices) * (interval_s * _S // devices), 5),
        }
    )
    per_frame = write_every_s // interval_s
    frames = []
    for first in range(0, 86_400 // interval_s, per_frame):
        k = pl.int_range(first, first + per_frame, eager=True).alias("k")
        frame = series.join(k.to_frame(), how="cross").with_columns(
            ts=_DAY + pl.col("k") * interval_s * _S + pl.col("offset"),
            # a slow wave, so buckets differ; trucks drift along their heading
            value=pl.col("base") * (1 + 0.1 * (pl.col("k") * 0.01).sin())
            + pl.when(pl.col("field").is_in(["lat", "lon"])).then(pl.col("k") * 1e-5).otherwise(0),
        )
        frames.append(frame.select(list(SCHEMA)).cast(SCHEMA).sort("ts"))  # type: ignore[arg-type]
    return frames


def _median_ms(fn, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return round(statistics.median(times), 2)


def run(root: Path, devices: int = 150, interval_s: int = 30, write_every_s: int = 600) -> dict:
    """Write a district's day into a fresh store and time the queries on it."""
    frames = district_day(devices, interval_s, write_every_s)
    rows = sum(f.height for f in frames)
    store = EmbeddedStore(root / "district.db")
    t0 = time.perf_counter()
    for f in frames:
        store.write(f)
    write_s = time.perf_counter() - t0
    latest_only = EmbeddedStore(root / "latest.db", history=False)
    t0 = time.perf_counter()
    for f in frames:
        latest_only.write(f)
    latest_only.flush()
    latest_s = time.perf_counter() - t0
    latest_only.close()
    start, end = _DAY, _DAY + 86_400 * _S
    dev, truck = "DM-00001", "TRK-00002"
    out: dict = {
        "devices": devices,
        "interval_s": interval_s,
        "rows": rows,
        "rows_per_write": frames[0].height,
        "file_mb": round(sum(f.stat().st_size for f in root.glob("district.db*")) / 2**20, 1),
        "write_rows_per_s": round(rows / write_s),
        "write_us_per_row": round(write_s / rows * 1e6, 2),
        "latest_only_write_rows_per_s": round(rows / latest_s),
        "latest_only_write_us_per_row": round(latest_s / rows * 1e6, 3),
    }
    queries = {
        "latest_ms": lambda: store.latest(),
        "range_raw_day_ms": lambda: store.range(dev, "pm10", start, end),
        "range_1min_mean_day_ms": lambda: store.range(dev, "pm10", start, end, every_s=60),
        "range_5min_max_day_ms": lambda: store.range(
            dev, "pm10", start, end, every_s=300, agg="max"
        ),
        "track_day_ms": lambda: store.track(truck, start, end),
    }
    for name, fn in queries.items():
        out[name] = _median_ms(fn)
    out["latest_rows"] = store.latest().height
    out["range_raw_day_rows"] = store.range(dev, "pm10", start, end).height
    out["range_1min_buckets"] = store.range(dev, "pm10", start, end, every_s=60).height
    out["range_5min_buckets"] = store.range(dev, "pm10", start, end, every_s=300).height
    out["track_day_fixes"] = store.track(truck, start, end).height
    store.close()
    return out
