"""Validation of telemetry frames against the schema, the inventory and physics, vectorised.

Each row gets at most one reason, the first that applies, in this order:

    missing_key     device_id, kind, field or ts is null or empty
    unknown_device  device_id not in the inventory (skipped when no inventory is given)
    kind_mismatch   the row's kind differs from the inventory's kind for the device
    non_finite      value is null, NaN or ±inf
    out_of_range    value outside the (kind, field) plausibility limits (ingest.limits)
    ts_future       ts more than ``max_future_s`` after ``now_ns``
    ts_past         ts more than ``max_past_s`` before ``now_ns``
    duplicate       same (device_id, field, ts) as an earlier good row of the same frame

Late rows inside ``max_past_s`` are good: store-and-forward replays and blind-area GPS
points are accepted in event time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from ingest.frames import SCHEMA
from ingest.limits import field_key, limits_frame

__all__ = ["REASONS", "validate", "inventory_frame"]

REASONS = (
    "missing_key",
    "unknown_device",
    "kind_mismatch",
    "non_finite",
    "out_of_range",
    "ts_future",
    "ts_past",
    "duplicate",
)

_NS = 1_000_000_000
_DEFAULT_LIMITS = limits_frame()


def inventory_frame(devices: Mapping[str, str]) -> pl.DataFrame:
    """The inventory (device_id -> kind) as a join table; build once, validate many times."""
    return pl.DataFrame(
        {"device_id": list(devices), "_kind": [str(k) for k in devices.values()]},
        schema={"device_id": pl.Utf8, "_kind": pl.Utf8},
    )


def validate(
    frame: pl.DataFrame,
    devices: Mapping[str, str] | pl.DataFrame | None,
    now_ns: int,
    *,
    max_future_s: float = 300,
    max_past_s: float = 7 * 86400,
    limits: pl.DataFrame | None = _DEFAULT_LIMITS,
    keep: Sequence[str] = (),
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a telemetry frame into good rows and bad rows (with a ``reason`` column).

    ``devices`` maps device_id to kind (a dict, or :func:`inventory_frame` of one);
    ``None`` accepts every device and kind. ``limits`` is a
    :func:`ingest.limits.limits_frame` (``None``: no range checks). Both outputs keep
    the input's row order. ``keep`` names extra columns carried through to both
    outputs; they also scope duplicates (e.g. a message index: a duplicate is a repeat
    inside one message, while a replay in a later message is a harmless rewrite).
    """
    dev, kind, ts, fld, val = (pl.col(c) for c in SCHEMA)
    df = frame.select(*SCHEMA, *keep)
    missing = (
        dev.is_null()
        | kind.is_null()
        | fld.is_null()
        | ts.is_null()
        | (dev.str.len_bytes() == 0)
        | (fld.str.len_bytes() == 0)
    )
    chain: Any = pl.when(missing).then(pl.lit("missing_key"))  # Then, then ChainedThen
    if devices is not None:
        inv = devices if isinstance(devices, pl.DataFrame) else inventory_frame(devices)
        df = df.join(inv, on="device_id", how="left", maintain_order="left")
        chain = chain.when(pl.col("_kind").is_null()).then(pl.lit("unknown_device"))
        chain = chain.when(pl.col("_kind") != kind).then(pl.lit("kind_mismatch"))
    chain = chain.when(val.is_null() | ~val.is_finite()).then(pl.lit("non_finite"))
    if limits is not None and limits.height:
        # Look the limits up once per distinct (kind, field), not per row: the field
        # key is a regex, and a city sends a few dozen field names.
        pairs = df.select("kind", "field").unique()
        pairs = pairs.with_columns(field_key(fld).alias("_fk")).join(
            limits.rename({"field": "_fk"}), on=["kind", "_fk"], how="inner"
        )
        df = df.join(pairs.drop("_fk"), on=["kind", "field"], how="left", maintain_order="left")
        chain = chain.when((val < pl.col("_lo")) | (val > pl.col("_hi"))).then(
            pl.lit("out_of_range")
        )
    reason = (
        chain.when(ts > now_ns + int(max_future_s * _NS))
        .then(pl.lit("ts_future"))
        .when(ts < now_ns - int(max_past_s * _NS))
        .then(pl.lit("ts_past"))
        .otherwise(pl.lit(None, dtype=pl.Utf8))
    )
    is_good = pl.col("reason").is_null()
    # Only good rows compete for "first": a bad row never shadows a good one.
    first = pl.struct("device_id", "field", "ts", *keep, is_good).is_first_distinct()
    marked = (
        df.with_columns(reason.alias("reason"))
        .with_columns(
            pl.when(is_good & ~first).then(pl.lit("duplicate")).otherwise("reason").alias("reason")
        )
        .select(*SCHEMA, *keep, "reason")
    )
    ok = pl.col("reason").is_null()
    return marked.filter(ok).drop("reason"), marked.filter(~ok)
