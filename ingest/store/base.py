"""The store interface every history backend implements, and the frames it returns."""

from __future__ import annotations

import json
from typing import Any, Literal, Protocol, runtime_checkable

import polars as pl

from contracts.alarms import AlarmEvent

__all__ = [
    "TelemetryStore",
    "StoreError",
    "StoreUnavailable",
    "Agg",
    "RANGE_SCHEMA",
    "TRACK_FIELDS",
    "TRACK_SCHEMA",
    "ALARM_SCHEMA",
    "alarm_frame",
]

Agg = Literal["mean", "max"]

RANGE_SCHEMA = {"ts": pl.Int64, "value": pl.Float64}
TRACK_FIELDS = ("lat", "lon", "speed", "heading")
TRACK_SCHEMA = {"ts": pl.Int64, **{f: pl.Float64 for f in TRACK_FIELDS}}
#: Columns of :meth:`TelemetryStore.alarm_history`; ``ts`` is the event's ``updated_ns``.
ALARM_SCHEMA: dict[str, Any] = {
    "ts": pl.Int64,
    "alarm_id": pl.Utf8,
    "rule_id": pl.Utf8,
    "domain": pl.Utf8,
    "device_id": pl.Utf8,
    "subject": pl.Utf8,
    "field": pl.Utf8,
    "severity": pl.Utf8,
    "state": pl.Utf8,
    "condition_active": pl.Boolean,
    "raised_ns": pl.Int64,
    "cleared_ns": pl.Int64,
    "value": pl.Float64,
    "threshold": pl.Float64,
    "message": pl.Utf8,
    "lat": pl.Float64,
    "lon": pl.Float64,
    "case_no": pl.Utf8,
    "case_status": pl.Utf8,
    "parent": pl.Utf8,  # the storm group's parent alarm id (``extra.parent``), null for none
    "extra": pl.Utf8,  # the event's ``extra`` as JSON (device name, comments, children ...)
}


class StoreError(RuntimeError):
    """A store refused a request (bad query, bad answer)."""


class StoreUnavailable(StoreError):
    """A store could not be reached after retries; the data was not written."""


@runtime_checkable
class TelemetryStore(Protocol):
    """History of telemetry and alarms; reads return polars frames.

    Time ranges are half-open, ``start_ns <= ts < end_ns``. Downsampling buckets are
    aligned to the epoch (like InfluxQL's ``GROUP BY time()``), labelled by their start,
    and empty buckets are left out.
    """

    def write(self, frame: pl.DataFrame) -> int:
        """Store a validated telemetry frame; returns rows written. Rewrites are harmless."""
        ...

    def latest(self, kind: str | None = None) -> pl.DataFrame:
        """The last value per (device_id, field), as a telemetry frame."""
        ...

    def range(
        self,
        device_id: str,
        field: str,
        start_ns: int,
        end_ns: int,
        every_s: float | None = None,
        agg: Agg = "mean",
    ) -> pl.DataFrame:
        """One field of one device over time, raw or downsampled: columns ts, value."""
        ...

    def track(self, device_id: str, start_ns: int, end_ns: int) -> pl.DataFrame:
        """A vehicle's fixes in time order: columns ts, lat, lon, speed, heading."""
        ...

    def write_alarm(self, event: AlarmEvent) -> None:
        """Record one alarm transition."""
        ...

    def alarm_history(self, start_ns: int, end_ns: int) -> pl.DataFrame:
        """Alarm transitions updated in the range, oldest first (:data:`ALARM_SCHEMA`)."""
        ...

    def alarm_events(self, alarm_id: str) -> pl.DataFrame:
        """Every stored transition of one alarm, oldest first (:data:`ALARM_SCHEMA`)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def alarm_frame(docs: list[dict[str, Any]]) -> pl.DataFrame:
    """Alarm events (as ``AlarmEvent.model_dump`` dicts) as an :data:`ALARM_SCHEMA` frame.

    One record per (alarm, ts): where a store holds two (an InfluxDB point written before
    the alarm joined a storm group has another tag set), the one naming a parent wins —
    an alarm never leaves its group.
    """
    cols = {name: [_value(d, name) for d in docs] for name in ALARM_SCHEMA}
    return (
        pl.DataFrame(cols, schema=ALARM_SCHEMA, strict=False)
        .sort(pl.col("ts"), pl.col("parent").is_not_null(), maintain_order=True)
        .unique(["alarm_id", "ts", "state", "severity"], keep="last", maintain_order=True)
        .with_columns(pl.col("parent").drop_nulls().last().over("alarm_id"))
    )


def _value(doc: dict[str, Any], name: str) -> Any:
    if name == "ts":
        return doc.get("updated_ns")
    if name == "parent":
        return (doc.get("extra") or {}).get("parent") or None
    if name == "extra":
        return json.dumps(doc.get("extra") or {}, ensure_ascii=False)
    return doc.get(name)
