"""The embedded SQLite store: round trips, downsampling, tracks, idempotent rewrites."""

from __future__ import annotations

import polars as pl
import pytest

from contracts.alarms import AlarmEvent, AlarmState, Severity
from contracts.config import DeploymentConfig
from ingest.frames import SCHEMA
from ingest.store import EmbeddedStore, StoreError, TelemetryStore, open_store

S = 1_000_000_000
T0 = 1_763_942_400 * S


def _frame(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


@pytest.fixture
def store(tmp_path):
    s = EmbeddedStore(tmp_path / "store.db")
    yield s
    s.close()


def test_is_a_telemetry_store(store):
    assert isinstance(store, TelemetryStore)


def test_latest_per_device_and_field_even_when_late_rows_arrive(store):
    store.write(
        _frame(
            [
                ("LC-1", "lighting_cabinet", T0 + 10 * S, "voltage_l1", 221.0),
                ("LC-1", "lighting_cabinet", T0 + 20 * S, "voltage_l1", 222.0),
                ("DM-1", "dust_monitor", T0 + 5 * S, "pm10", 80.0),
            ]
        )
    )
    store.write(_frame([("LC-1", "lighting_cabinet", T0 + 15 * S, "voltage_l1", 999.0)]))  # late
    latest = store.latest()
    assert latest.columns == list(SCHEMA)
    assert latest.rows() == [
        ("DM-1", "dust_monitor", T0 + 5 * S, "pm10", 80.0),
        ("LC-1", "lighting_cabinet", T0 + 20 * S, "voltage_l1", 222.0),
    ]
    assert store.latest("dust_monitor").height == 1
    assert store.latest("vehicle").height == 0


def test_range_raw_and_downsampled(store):
    rows = [("DM-1", "dust_monitor", T0 + i * 10 * S, "pm10", float(i)) for i in range(12)]
    store.write(_frame(rows))
    raw = store.range("DM-1", "pm10", T0, T0 + 120 * S)
    assert raw.schema == pl.Schema({"ts": pl.Int64, "value": pl.Float64})
    assert raw.height == 12
    assert store.range("DM-1", "pm10", T0 + 10 * S, T0 + 30 * S).get_column("value").to_list() == [
        1.0,
        2.0,
    ]
    mean = store.range("DM-1", "pm10", T0, T0 + 120 * S, every_s=60)
    assert mean.rows() == [(T0, 2.5), (T0 + 60 * S, 8.5)]
    mx = store.range("DM-1", "pm10", T0, T0 + 120 * S, every_s=60, agg="max")
    assert mx.get_column("value").to_list() == [5.0, 11.0]
    with pytest.raises(ValueError):
        store.range("DM-1", "pm10", T0, T0 + S, every_s=60, agg="median")  # type: ignore[arg-type]


def test_track_orders_fixes_and_needs_lat_lon(store):
    rows = []
    for i, t in enumerate((30, 10, 20)):  # arrives out of order
        for f, v in (("lat", 30.6 + i), ("lon", 104.0 + i), ("speed", 10.0 * i), ("heading", 90.0)):
            rows.append(("TRK-1", "vehicle", T0 + t * S, f, v))
    rows.append(("TRK-1", "vehicle", T0 + 40 * S, "speed", 5.0))  # no position: not a fix
    rows.append(("TRK-2", "vehicle", T0 + 10 * S, "lat", 1.0))
    store.write(_frame(rows))
    track = store.track("TRK-1", T0, T0 + 60 * S)
    assert track.columns == ["ts", "lat", "lon", "speed", "heading"]
    assert track.get_column("ts").to_list() == [T0 + 10 * S, T0 + 20 * S, T0 + 30 * S]
    assert track.row(0) == (T0 + 10 * S, 31.6, 105.0, 10.0, 90.0)


def test_rewriting_the_same_point_is_harmless(store):
    frame = _frame(
        [("DM-1", "dust_monitor", T0, "pm10", 80.0), ("DM-1", "dust_monitor", T0, "pm25", 40.0)]
    )
    store.write(frame)
    store.write(frame)
    assert store.range("DM-1", "pm10", T0, T0 + S).rows() == [(T0, 80.0)]
    store.write(_frame([("DM-1", "dust_monitor", T0, "pm10", 81.0)]))  # a correction replaces
    assert store.range("DM-1", "pm10", T0, T0 + S).rows() == [(T0, 81.0)]


def test_alarm_history(store):
    ev = AlarmEvent(
        alarm_id="A1",
        rule_id="r",
        domain="dust",
        device_id="DM-1",
        subject="DM-1",
        field="pm10",
        severity=Severity.MAJOR,
        raised_ns=T0,
        updated_ns=T0,
        value=250.0,
    )
    store.write_alarm(ev)
    store.write_alarm(ev)  # same transition twice: stored once
    store.write_alarm(
        ev.model_copy(update={"state": AlarmState.ACKNOWLEDGED, "updated_ns": T0 + S})
    )
    hist = store.alarm_history(T0, T0 + 10 * S)
    assert hist.get_column("state").to_list() == ["open", "acknowledged"]
    assert hist.get_column("ts").to_list() == [T0, T0 + S]
    assert store.alarm_history(T0 + 2 * S, T0 + 3 * S).height == 0


def test_reader_sees_writer_and_cannot_write(tmp_path):
    cfg = DeploymentConfig(var_dir=str(tmp_path))
    reader = open_store(cfg, read_only=True)  # before the writer: creates the empty schema
    assert reader.latest().height == 0
    writer = open_store(cfg)
    writer.write(_frame([("DM-1", "dust_monitor", T0, "pm10", 80.0)]))
    assert reader.latest().height == 1
    with pytest.raises(StoreError):
        reader.write(_frame([("DM-1", "dust_monitor", T0, "pm10", 1.0)]))
    reader.close()
    writer.close()
