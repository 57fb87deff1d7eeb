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

The name columns are compared as categorical codes (``frames.coded``): the joins with
the inventory and the limits and the duplicate check hash integers, not strings. The
outputs have them as strings again (the good rows may keep the codes until they are
encoded: nothing coded may outlive a group, see :func:`inventory_frame`).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl

from ingest.frames import SCHEMA, coded, strings
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
    """The inventory (device_id -> kind) as a join table; build once, validate many times.

    Strings, not codes: polars keeps one mapping of every name it has ever coded for as
    long as any categorical is alive, so a long-lived categorical inventory would keep
    every junk device id ever refused (+680 MB after 6M of them). :func:`validate` codes
    it for each call (~0.01 µs/row), and between calls nothing coded is left.
    """
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
    coded_good: bool = False,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Split a telemetry frame into good rows and bad rows (with a ``reason`` column).

    ``devices`` maps device_id to kind (a dict, or :func:`inventory_frame` of one);
    ``None`` accepts every device and kind. ``limits`` is a
    :func:`ingest.limits.limits_frame` (``None``: no range checks). Both outputs keep
    the input's row order. ``keep`` names extra columns carried through to both
    outputs; they also scope duplicates (e.g. a message index: a duplicate is a repeat
    inside one message, while a replay in a later message is a harmless rewrite).
    With ``coded_good`` the good rows keep their names as categorical codes
    (``frames.strings`` turns them back; ``lineproto.with_lines`` takes either).
    """
    dev, kind, ts, fld, val = (pl.col(c) for c in SCHEMA)
    df = coded(frame.select(*SCHEMA, *keep))
    missing = (
        dev.is_null() | kind.is_null() | fld.is_null() | ts.is_null() | (dev == "") | (fld == "")
    )
    chain: Any = pl.when(missing).then(pl.lit("missing_key"))  # Then, then ChainedThen
    if devices is not None:
        inv = devices if isinstance(devices, pl.DataFrame) else inventory_frame(devices)
        inv = inv.cast({"device_id": pl.Categorical, "_kind": pl.Categorical})
        df = df.join(inv, on="device_id", how="left", maintain_order="left")
        chain = chain.when(pl.col("_kind").is_null()).then(pl.lit("unknown_device"))
        chain = chain.when(pl.col("_kind") != kind).then(pl.lit("kind_mismatch"))
    chain = chain.when(val.is_null() | ~val.is_finite()).then(pl.lit("non_finite"))
    if limits is not None and limits.height:
        # Look the limits up once per distinct (kind, field), not per row: the field
        # key is a regex, and a city sends a few dozen field names. The pair is one
        # integer of the two codes (a join on two categoricals costs twice as much).
        pair = kind.to_physical().cast(pl.UInt64) * (1 << 32) + fld.to_physical().cast(pl.UInt64)
        df = df.with_columns(pair.alias("_pair"))
        pairs = (
            df.filter(pl.col("_pair").is_first_distinct())
            .select(
                "_pair", kind.cast(pl.Utf8).alias("_k"), field_key(fld.cast(pl.Utf8)).alias("_fk")
            )
            .join(limits.rename({"kind": "_k", "field": "_fk"}), on=["_k", "_fk"], how="inner")
        )
        df = df.join(pairs.drop("_k", "_fk"), on="_pair", how="left", maintain_order="left")
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
    marked = df.with_columns(reason.alias("reason"))
    key = ("device_id", "field", "ts", *keep)
    if _may_repeat(marked, key):
        is_good = pl.col("reason").is_null()
        # Only good rows compete for "first": a bad row never shadows a good one.
        first = pl.struct(*key, is_good).is_first_distinct()
        marked = marked.with_columns(
            pl.when(is_good & ~first).then(pl.lit("duplicate")).otherwise("reason").alias("reason")
        )
    marked = marked.select(*SCHEMA, *keep, "reason")
    ok = pl.col("reason").is_null()
    good = marked.filter(ok).drop("reason")
    return good if coded_good else strings(good), strings(marked.filter(~ok))


def _may_repeat(frame: pl.DataFrame, key: Sequence[str]) -> bool:
    """False when no two rows share ``key``: then there is no duplicate to look for.

    Equal keys hash alike, so distinct hashes prove it at half the cost of the exact
    check, which only a frame with a repeated hash (a duplicate, rarely a collision) pays.
    """
    hashed = functools.reduce(
        operator.xor,
        (pl.col(c).to_physical().hash(seed) for seed, c in enumerate(key)),
    )
    return frame.select(hashed.n_unique()).item() < frame.height
