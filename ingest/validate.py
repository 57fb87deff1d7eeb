"""Validation of telemetry frames against the schema and the inventory, vectorised.

Each row gets at most one reason, the first that applies, in this order:

    missing_key     device_id, kind, field or ts is null or empty
    unknown_device  device_id not in the inventory (skipped when no inventory is given)
    kind_mismatch   the row's kind differs from the inventory's kind for the device
    non_finite      value is null, NaN or ±inf
    ts_future       ts more than ``max_future_s`` after ``now_ns``
    ts_past         ts more than ``max_past_s`` before ``now_ns``
    duplicate       same (device_id, field, ts) as an earlier good row of the same frame

Late rows inside ``max_past_s`` are good: store-and-forward replays and blind-area GPS
points are accepted in event time.
"""

from __future__ import annotations

import polars as pl

from ingest.frames import SCHEMA

__all__ = ["REASONS", "validate"]

REASONS = (
    "missing_key",
    "unknown_device",
    "kind_mismatch",
    "non_finite",
    "ts_future",
    "ts_past",
    "duplicate",
)

_NS = 1_000_000_000


def validate(
    frame: pl.DataFrame,
    devices: dict[str, str] | None,
    now_ns: int,
    *,
    max_future_s: float = 300,
    max_past_s: float = 7 * 86400,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a telemetry frame into good rows and bad rows (with a ``reason`` column).

    ``devices`` maps device_id to kind; ``None`` accepts every device and kind.
    Both outputs keep the input's row order.
    """
    dev, kind, ts, fld, val = (pl.col(c) for c in SCHEMA)
    missing = (
        dev.is_null()
        | kind.is_null()
        | fld.is_null()
        | ts.is_null()
        | (dev.str.len_bytes() == 0)
        | (fld.str.len_bytes() == 0)
    )
    chain = pl.when(missing).then(pl.lit("missing_key"))
    if devices is not None:
        expected = dev.replace_strict(
            list(devices), list(devices.values()), default=None, return_dtype=pl.Utf8
        )
        chain = chain.when(expected.is_null()).then(pl.lit("unknown_device"))
        chain = chain.when(expected != kind).then(pl.lit("kind_mismatch"))
    reason = (
        chain.when(val.is_null() | ~val.is_finite())
        .then(pl.lit("non_finite"))
        .when(ts > now_ns + int(max_future_s * _NS))
        .then(pl.lit("ts_future"))
        .when(ts < now_ns - int(max_past_s * _NS))
        .then(pl.lit("ts_past"))
        .otherwise(pl.lit(None, dtype=pl.Utf8))
    )
    keys = ["device_id", "field", "ts"]
    marked = (
        frame.select(list(SCHEMA))  # fixed column order; extra columns are not ours to keep
        .with_row_index("_i")
        .with_columns(reason.alias("reason"))
        .with_columns(
            # Only good rows compete for "first": a bad row never shadows a good one.
            pl.when(
                pl.col("reason").is_null()
                & (pl.col("_i") != pl.col("_i").min().over([*keys, pl.col("reason").is_null()]))
            )
            .then(pl.lit("duplicate"))
            .otherwise(pl.col("reason"))
            .alias("reason")
        )
    )
    ok = pl.col("reason").is_null()
    good = marked.filter(ok).drop("_i", "reason")
    bad = marked.filter(~ok).drop("_i")
    return good, bad
