"""Telemetry frames: the polars DataFrame every center component passes around.

Agent batches arrive in either wire version: v1 JSON (:mod:`contracts.telemetry`) or
v2 Arrow IPC (:mod:`contracts.telemetry_arrow`, what agents publish). The first bytes
tell which; both decode column by column, v2 without touching Python objects per row.
"""

from __future__ import annotations

from typing import cast

import polars as pl

from contracts.telemetry import COLUMNS, BatchError, TelemetryBatch, parse_v1
from contracts.telemetry_arrow import WIRE_V2, decode_table, wire_version

__all__ = ["SCHEMA", "batch_to_frame", "decode_frame", "empty_frame"]

#: Column dtypes of a telemetry frame, in :data:`contracts.telemetry.COLUMNS` order.
SCHEMA: dict[str, pl.DataType] = dict(
    zip(COLUMNS, (pl.Utf8(), pl.Utf8(), pl.Int64(), pl.Utf8(), pl.Float64()))
)


def empty_frame() -> pl.DataFrame:
    """A telemetry frame with no rows."""
    return pl.DataFrame(schema=SCHEMA)


def batch_to_frame(batch: TelemetryBatch) -> pl.DataFrame:
    """The batch's columns as a telemetry frame (``None`` values become nulls)."""
    # strict=False lets Python ints that arrived in the float column widen to Float64.
    return pl.DataFrame(batch.columns(), schema=SCHEMA, strict=False)


def decode_frame(payload: bytes) -> pl.DataFrame:
    """An agent batch (wire v1 JSON or v2 Arrow, sniffed) straight into a frame.

    Same acceptance as ``TelemetryBatch.decode`` / ``telemetry_arrow.decode_table`` but
    without building per-row Python objects. Raises :class:`BatchError`.
    """
    if wire_version(payload) == WIRE_V2:
        return _decode_v2(payload)
    doc = parse_v1(payload)
    devices, fields = doc["devices"], doc["fields"]
    d, f, t, x = doc["d"], doc["f"], doc["t"], doc["x"]
    try:
        dev_ids = pl.Series([str(dv[0]) for dv in devices], dtype=pl.Utf8)
        kinds = pl.Series([str(dv[1]) for dv in devices], dtype=pl.Utf8)
        names = pl.Series([str(v) for v in fields], dtype=pl.Utf8)
        di = _indices(d, len(devices), "d")
        fi = _indices(f, len(fields), "f")
        return pl.DataFrame(
            {
                "device_id": dev_ids.gather(di),
                "kind": kinds.gather(di),
                "ts": pl.Series(t, dtype=pl.Int64, strict=True),
                "field": names.gather(fi),
                "value": pl.Series(x, dtype=pl.Float64, strict=True),
            }
        )
    except (IndexError, TypeError, ValueError, pl.exceptions.PolarsError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BatchError(f"bad column content: {first}") from None


def _decode_v2(payload: bytes) -> pl.DataFrame:
    table, _meta = decode_table(payload)
    try:
        # A Table always becomes a DataFrame (a bare array would be a Series).
        return cast(pl.DataFrame, pl.from_arrow(table))
    except (pl.exceptions.PolarsError, ValueError, TypeError) as exc:
        raise BatchError(f"bad column content: {exc}") from None


def _indices(values: list, size: int, name: str) -> pl.Series:
    """A dictionary-index column from the wire, refusing non-integers and out-of-range."""
    s = pl.Series(values, dtype=pl.Int64, strict=True)
    if s.len() and (s.null_count() or s.min() < 0 or s.max() >= size):  # type: ignore[operator]
        raise BatchError(f"{name}: dictionary index outside 0..{size - 1}")
    return s
