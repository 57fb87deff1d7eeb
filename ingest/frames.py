"""Telemetry frames: the polars DataFrame every center component passes around.

Agent batches arrive in either wire version: v1 JSON (:mod:`contracts.telemetry`) or
v2 Arrow IPC (:mod:`contracts.telemetry_arrow`, what agents publish). The first bytes
tell which; both decode column by column, v2 without touching Python objects per row.

A v1 row whose member has the wrong JSON type (a string ``t`` or ``x``, a non-integer
dictionary index) is refused alone as ``wrong_type`` (:func:`decode_rows`), with the raw
members in the refused row; the rest of the message goes on. In v2 a type belongs to a
whole column, so a wrong one refuses the message, as does anything that is not a batch
at all (bad JSON or Arrow, missing members, unequal columns, an index outside its
dictionary): :class:`BatchError`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import cast

import numpy as np
import polars as pl
import pyarrow as pa

from contracts.telemetry import COLUMNS, BatchError, TelemetryBatch, parse_v1
from contracts.telemetry_arrow import WIRE_V2, decode_table, wire_version

__all__ = [
    "SCHEMA",
    "WRONG_SCHEMA",
    "WRONG_TYPE",
    "NAMES",
    "arrow_frames",
    "batch_to_frame",
    "coded",
    "decode_frame",
    "decode_rows",
    "empty_frame",
    "empty_wrong",
    "is_float_value",
    "raw_json",
    "strings",
]

#: Column dtypes of a telemetry frame, in :data:`contracts.telemetry.COLUMNS` order.
SCHEMA: dict[str, pl.DataType] = dict(
    zip(COLUMNS, (pl.Utf8(), pl.Utf8(), pl.Int64(), pl.Utf8(), pl.Float64()))
)
#: The name columns; :func:`coded` makes them categoricals, :func:`strings` strings.
NAMES = ("device_id", "kind", "field")
#: Refused-at-decode rows: what could be read, the reason, and the raw members as JSON.
WRONG_SCHEMA: dict[str, pl.DataType] = {**SCHEMA, "reason": pl.Utf8(), "raw": pl.Utf8()}
#: Reason for a row with a member of the wrong type.
WRONG_TYPE = "wrong_type"
_I64 = (-(2**63), 2**63 - 1)
_F64_MAX = sys.float_info.max  # a larger JSON integer has no float64


def empty_frame() -> pl.DataFrame:
    """A telemetry frame with no rows."""
    return pl.DataFrame(schema=SCHEMA)


def empty_wrong() -> pl.DataFrame:
    """A frame of refused-at-decode rows with no rows (one shared: frames are immutable,
    and building one per message cost a sixth of ingest's decoding)."""
    return _EMPTY_WRONG


_EMPTY_WRONG = pl.DataFrame(schema=WRONG_SCHEMA)


def coded(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with its name columns as categoricals (nothing to do if they are).

    Joins, uniques and duplicate checks on them then hash integer codes, not strings.
    Polars keeps every name it coded while any categorical is alive: nothing coded may
    be kept for long (see ``ingest.validate.inventory_frame``).
    """
    return frame.with_columns(pl.col(NAMES).cast(pl.Categorical))


def strings(frame: pl.DataFrame) -> pl.DataFrame:
    """The frame with its name columns as strings again (the inverse of :func:`coded`)."""
    return frame.with_columns(pl.col(NAMES).cast(pl.Utf8))


def batch_to_frame(batch: TelemetryBatch) -> pl.DataFrame:
    """The batch's columns as a telemetry frame (``None`` values become nulls)."""
    # strict=False lets Python ints that arrived in the float column widen to Float64.
    return pl.DataFrame(batch.columns(), schema=SCHEMA, strict=False)


def decode_frame(payload: bytes) -> pl.DataFrame:
    """An agent batch (wire v1 JSON or v2 Arrow, sniffed) straight into a frame.

    Same acceptance as ``TelemetryBatch.decode`` / ``telemetry_arrow.decode_table`` but
    without building per-row Python objects. Raises :class:`BatchError`, also for a
    single row of the wrong type (use :func:`decode_rows` to keep the others).
    """
    good, wrong = decode_rows(payload)
    if wrong.height:
        raise BatchError(f"bad column content: {wrong.get_column('raw')[0]}")
    return good


def decode_rows(payload: bytes, *, codes: bool = False) -> tuple[pl.DataFrame, pl.DataFrame]:
    """An agent batch as (good frame, rows of the wrong type); raises :class:`BatchError`.

    With ``codes`` the good frame's names are categoricals (:func:`coded`), taken from
    the batch's dictionaries: no string is hashed per row.
    """
    if wire_version(payload) == WIRE_V2:
        table, _meta = decode_table(payload, dictionaries=codes)
        return _from_arrow(table), empty_wrong()
    names_dtype = pl.Categorical if codes else pl.Utf8
    doc = parse_v1(payload)
    try:
        dev_ids = [str(dv[0]) for dv in doc["devices"]]
        kinds = [str(dv[1]) for dv in doc["devices"]]
        names = [str(v) for v in doc["fields"]]
    except (IndexError, TypeError, KeyError) as exc:
        raise BatchError(f"bad dictionary: {exc}") from None
    d, f, t, x = doc["d"], doc["f"], doc["t"], doc["x"]
    try:
        return _v1_columns(dev_ids, kinds, names, d, f, t, x, names_dtype), empty_wrong()
    except (IndexError, TypeError, ValueError, OverflowError, pl.exceptions.PolarsError):
        pass  # some row is wrong: find which (only a bad message pays for this loop)
    problems = [_row_problem(*row, len(dev_ids), len(names)) for row in zip(d, f, t, x)]
    keep = [i for i, p in enumerate(problems) if p is None]
    try:
        dk, fk, tk, xk = ([col[i] for i in keep] for col in (d, f, t, x))
        good = _v1_columns(dev_ids, kinds, names, dk, fk, tk, xk, names_dtype)
    except (IndexError, TypeError, ValueError, OverflowError, pl.exceptions.PolarsError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BatchError(f"bad column content: {first}") from None
    wrong = []
    for (di, fi, ti, xi), p in zip(zip(d, f, t, x), problems):
        if p is None:
            continue
        dev_ok = "d" not in p
        wrong.append(
            (
                dev_ids[di] if dev_ok else None,
                kinds[di] if dev_ok else None,
                None if "t" in p else ti,
                names[fi] if "f" not in p else None,
                None if "x" in p or xi is None else float(xi),
                WRONG_TYPE,
                raw_json(p),
            )
        )
    return good, pl.DataFrame(wrong, schema=WRONG_SCHEMA, orient="row")


def raw_json(v: object) -> str:
    """A refused member as JSON for the quarantine record (cut at 1,000 characters)."""
    return json.dumps(v, ensure_ascii=False, default=repr)[:1000]


def is_float_value(x: object) -> bool:
    """None or a JSON number that fits a float64 (a larger integer has none). NaN and
    infinities are floats: validation refuses them as ``non_finite``, not here."""
    return x is None or isinstance(x, float) or (isinstance(x, int) and abs(x) <= _F64_MAX)


def _row_problem(d: object, f: object, t: object, x: object, nd: int, nf: int) -> dict | None:
    """The members of one v1 row that have the wrong type (None: the row is fine).

    An integer index outside its dictionary is not a type problem but a corrupt batch.
    """
    p = {}
    for name, v, size in (("d", d, nd), ("f", f, nf)):
        if not isinstance(v, int):
            p[name] = v
        elif not 0 <= v < size:
            raise BatchError(f"{name}: dictionary index {v} outside 0..{size - 1}")
    if not isinstance(t, int) or not _I64[0] <= t <= _I64[1]:
        p["t"] = t
    if not is_float_value(x):
        p["x"] = x
    return p or None


def _v1_columns(
    dev_ids: list[str],
    kinds: list[str],
    names: list[str],
    d: list,
    f: list,
    t: list,
    x: list,
    names_dtype: type[pl.DataType],
) -> pl.DataFrame:
    di = _indices(d, len(dev_ids), "d")
    fi = _indices(f, len(names), "f")
    return pl.DataFrame(
        {
            "device_id": pl.Series(dev_ids, dtype=names_dtype).gather(di),
            "kind": pl.Series(kinds, dtype=names_dtype).gather(di),
            "ts": pl.Series(t, dtype=pl.Int64, strict=True),
            "field": pl.Series(names, dtype=names_dtype).gather(fi),
            "value": pl.Series(x, dtype=pl.Float64, strict=True),
        }
    )


def _from_arrow(table: pa.Table) -> pl.DataFrame:
    try:
        # A Table always becomes a DataFrame (a bare array would be a Series).
        return cast(pl.DataFrame, pl.from_arrow(table))
    except (pl.exceptions.PolarsError, ValueError, TypeError) as exc:
        raise BatchError(f"bad column content: {exc}") from None


def arrow_frames(
    tables: Sequence[pa.Table], keys: Sequence[int], key: str
) -> tuple[pl.DataFrame, list[tuple[int, BatchError]]]:
    """Decoded v2 batches (``decode_table``) as one :func:`coded` frame, each row keyed
    by its batch.

    One conversion for the lot: polars' Arrow import per message cost more than the
    rest of decoding. Batches decoded with their dictionaries become categoricals
    without a string being copied. ``key`` names a UInt32 column holding each row's
    entry of ``keys``. Batches polars cannot take come back as (key, error); the
    others stay.
    """
    lengths = [t.num_rows for t in tables]
    ids = pl.Series(key, np.repeat(np.asarray(keys, dtype=np.uint32), lengths))
    try:
        return coded(_from_arrow(pa.concat_tables(tables))).with_columns(ids), []
    except BatchError:
        pass  # find which batch: only a bad group pays for converting one by one
    frames, failed = [], []
    for k, table in zip(keys, tables):
        try:
            frame = _from_arrow(table)
        except BatchError as exc:
            failed.append((k, exc))
            continue
        frames.append(coded(frame).with_columns(pl.lit(k, dtype=pl.UInt32).alias(key)))
    frame = pl.concat(frames) if frames else coded(empty_frame()).with_columns(ids.clear())
    return frame, failed


def _indices(values: list, size: int, name: str) -> pl.Series:
    """A dictionary-index column from the wire, refusing non-integers and out-of-range."""
    s = pl.Series(values, dtype=pl.Int64, strict=True)
    if s.len() and (s.null_count() or s.min() < 0 or s.max() >= size):  # type: ignore[operator]
        raise ValueError(f"{name}: dictionary index outside 0..{size - 1}")
    return s
