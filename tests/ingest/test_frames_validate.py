"""Telemetry frames from batches, and vectorised validation."""

from __future__ import annotations

import math

import polars as pl
import pytest

from contracts.telemetry import COLUMNS, TelemetryBatch, TelemetryRow
from ingest.frames import SCHEMA, batch_to_frame, empty_frame
from ingest.validate import REASONS, validate

NOW = 1_763_942_400_000_000_000
S = 1_000_000_000
DEVICES = {"LC-1": "lighting_cabinet", "DM-1": "dust_monitor"}


def _frame(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def test_batch_to_frame_columns_dtypes_and_nulls():
    batch = TelemetryBatch(agent="a", seq=1)
    batch.append(TelemetryRow("LC-1", "lighting_cabinet", NOW, "voltage_l1", 220.5))
    batch.append(TelemetryRow("LC-1", "lighting_cabinet", NOW, "door_open", None))
    batch.append(TelemetryRow("LC-1", "lighting_cabinet", NOW, "circuit1_on", 1))  # an int
    frame = batch_to_frame(TelemetryBatch.decode(batch.encode()))
    assert tuple(frame.columns) == COLUMNS
    assert frame.dtypes == [pl.Utf8, pl.Utf8, pl.Int64, pl.Utf8, pl.Float64]
    assert frame.get_column("value").to_list() == [220.5, None, 1.0]
    assert frame.get_column("ts").to_list() == [NOW] * 3


def test_empty_batch_gives_typed_empty_frame():
    frame = batch_to_frame(TelemetryBatch(agent="a", seq=1))
    assert frame.height == 0 and frame.schema == empty_frame().schema


def test_each_reason_once():
    rows = [
        ("LC-1", "lighting_cabinet", NOW, "v", 1.0),  # good
        ("XX-9", "lighting_cabinet", NOW, "v", 1.0),  # unknown_device
        ("DM-1", "lighting_cabinet", NOW, "pm10", 1.0),  # kind_mismatch
        ("LC-1", "lighting_cabinet", NOW, "a", None),  # non_finite
        ("LC-1", "lighting_cabinet", NOW, "b", math.nan),  # non_finite
        ("LC-1", "lighting_cabinet", NOW, "c", math.inf),  # non_finite
        ("LC-1", "lighting_cabinet", NOW + 301 * S, "v", 1.0),  # ts_future
        ("LC-1", "lighting_cabinet", NOW - 8 * 86400 * S, "v", 1.0),  # ts_past
        ("LC-1", "lighting_cabinet", NOW, "v", 2.0),  # duplicate of row 0
        (None, "lighting_cabinet", NOW, "v", 1.0),  # missing_key
        ("LC-1", "lighting_cabinet", NOW - 6 * 86400 * S, "v", 3.0),  # late but good
    ]
    good, bad = validate(_frame(rows), DEVICES, NOW)
    assert good.get_column("value").to_list() == [1.0, 3.0]
    assert bad.get_column("reason").to_list() == [
        "unknown_device",
        "kind_mismatch",
        "non_finite",
        "non_finite",
        "non_finite",
        "ts_future",
        "ts_past",
        "duplicate",
        "missing_key",
    ]
    assert set(bad.get_column("reason")) <= set(REASONS)
    assert good.schema == empty_frame().schema


def test_duplicate_keeps_first_good_row_not_a_bad_one():
    rows = [
        ("LC-1", "lighting_cabinet", NOW, "v", None),  # bad: must not shadow the next
        ("LC-1", "lighting_cabinet", NOW, "v", 5.0),
        ("LC-1", "lighting_cabinet", NOW, "v", 6.0),
        ("LC-1", "lighting_cabinet", NOW + 1, "v", 7.0),  # other ts: not a duplicate
    ]
    good, bad = validate(_frame(rows), DEVICES, NOW)
    assert good.get_column("value").to_list() == [5.0, 7.0]
    assert bad.get_column("reason").to_list() == ["non_finite", "duplicate"]


def test_no_inventory_accepts_any_device_and_kind():
    rows = [("anything", "whatever", NOW, "v", 1.0)]
    good, bad = validate(_frame(rows), None, NOW)
    assert good.height == 1 and bad.height == 0


def test_empty_inventory_knows_no_device():
    good, bad = validate(_frame([("LC-1", "lighting_cabinet", NOW, "v", 1.0)]), {}, NOW)
    assert good.height == 0 and bad.get_column("reason").to_list() == ["unknown_device"]


@pytest.mark.parametrize(
    ("offset_s", "ok"), [(299, True), (301, False), (-6 * 86400, True), (-7 * 86400 - 1, False)]
)
def test_time_window_edges(offset_s, ok):
    rows = [("LC-1", "lighting_cabinet", NOW + offset_s * S, "v", 1.0)]
    good, _bad = validate(_frame(rows), DEVICES, NOW)
    assert (good.height == 1) is ok


def test_custom_window():
    rows = [("LC-1", "lighting_cabinet", NOW - 120 * S, "v", 1.0)]
    good, bad = validate(_frame(rows), DEVICES, NOW, max_past_s=60)
    assert good.height == 0 and bad.get_column("reason").item() == "ts_past"
