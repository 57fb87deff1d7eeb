"""Telemetry frames: the polars DataFrame every center component passes around."""

from __future__ import annotations

import polars as pl

from contracts.telemetry import COLUMNS, TelemetryBatch

__all__ = ["SCHEMA", "batch_to_frame", "empty_frame"]

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
