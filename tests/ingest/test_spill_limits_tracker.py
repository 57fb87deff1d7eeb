"""Unit tests: the spill's bounds and order, plausibility limits, tracker JSON, decode_frame."""

from __future__ import annotations

import polars as pl
import pytest

from contracts.telemetry import BatchError, TelemetryBatch, TelemetryRow
from ingest.frames import SCHEMA, batch_to_frame, decode_frame
from ingest.limits import limits_frame
from ingest.metrics import IngestMetrics, log_line
from ingest.spill import Spill
from ingest.tracker import TrackerFormat
from ingest.validate import validate

NOW = 1_763_942_400_000_000_000


def _frame(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def _f(i: int, n: int = 2) -> pl.DataFrame:
    return _frame([("D", "k", i * 10 + j, "v", float(i)) for j in range(n)])


def test_spill_is_fifo_and_survives_reopen(tmp_path):
    s = Spill(tmp_path / "s.db")
    for i in range(3):
        assert s.put(_f(i))
    s.close()
    s = Spill(tmp_path / "s.db")
    assert (len(s), s.depth_rows) == (3, 6)
    seen = []
    while (head := s.peek()) is not None:
        seen.append(head[1]["value"][0])
        s.done(head[0])
    assert seen == [0.0, 1.0, 2.0] and s.replayed == 3 and s.depth_rows == 0


def test_spill_keeps_nan_and_nulls(tmp_path):
    s = Spill(tmp_path / "s.db")
    f = _frame([("D", "k", 1, "v", float("nan")), ("D", "k", 2, "v", None)])
    s.put(f)
    assert s.peek()[1].equals(f)  # type: ignore[index]


@pytest.mark.parametrize(
    ("policy", "kept", "values", "dropped"),
    [
        ("block", False, [0.0, 1.0], 0),
        ("drop_newest", True, [0.0, 1.0], 1),
        ("drop_oldest", True, [1.0, 2.0], 1),
    ],
)
def test_spill_policies_when_full(tmp_path, policy, kept, values, dropped):
    s = Spill(tmp_path / "s.db", max_rows=4, policy=policy)
    assert s.put(_f(0)) and s.put(_f(1))
    assert s.put(_f(2)) is kept
    got = []
    while (head := s.peek()) is not None:
        got.append(head[1]["value"][0])
        s.done(head[0])
    assert got == values and s.dropped == dropped
    assert s.refused == (1 if policy == "block" else 0)


def test_spill_rejects_bad_settings(tmp_path):
    with pytest.raises(ValueError):
        Spill(tmp_path / "s.db", max_rows=0)
    with pytest.raises(ValueError):
        Spill(tmp_path / "s.db", policy="lose")  # type: ignore[arg-type]


def test_out_of_range_per_kind_and_field_with_overrides():
    rows = [
        ("T", "vehicle", NOW, "lat", 10.0),  # south of China
        ("T", "vehicle", NOW, "lon", 104.0),
        ("T", "vehicle", NOW, "speed", 250.0),
        ("D", "dust_monitor", NOW, "pm10", 10_001.0),
        ("L", "lighting_cabinet", NOW, "voltage_l1", 230.0),
        ("L", "lighting_cabinet", NOW, "circuit12_current", -1.0),  # numbered channel
        ("L", "lighting_cabinet", NOW, "unlisted", 1e9),  # no limit: accepted
    ]
    good, bad = validate(_frame(rows), None, NOW)
    assert bad.get_column("field").to_list() == ["lat", "speed", "pm10", "circuit12_current"]
    assert set(bad.get_column("reason")) == {"out_of_range"}
    assert good.height == 3
    wider = limits_frame({("vehicle", "speed"): (0, 300)})
    _good, bad = validate(_frame(rows), None, NOW, limits=wider)
    assert "speed" not in bad.get_column("field").to_list()
    _good, bad = validate(_frame(rows), None, NOW, limits=None)
    assert bad.height == 0
    with pytest.raises(ValueError, match="min"):
        limits_frame({("vehicle", "speed"): (10, 0)})


def test_duplicates_are_scoped_by_kept_columns():
    rows = [("D", "k", NOW, "v", 1.0)] * 2
    frame = _frame(rows).with_columns(pl.Series("_msg", [0, 1]))
    good, bad = validate(frame, None, NOW, keep=["_msg"])
    assert good.height == 2 and bad.height == 0
    good, bad = validate(_frame(rows), None, NOW)
    assert good.height == 1 and bad.get_column("reason").to_list() == ["duplicate"]


def test_tracker_json_to_rows():
    fmt = TrackerFormat()
    f = fmt.decode(b'{"devId":"TRK-1","gpsTime":1000,"lat":30.5,"lng":104.1,"cover":true}')
    assert f.rows() == [
        ("TRK-1", "vehicle", 1_000_000_000, "lat", 30.5),
        ("TRK-1", "vehicle", 1_000_000_000, "lon", 104.1),
        ("TRK-1", "vehicle", 1_000_000_000, "cover_open", 1.0),
    ]
    two = fmt.decode(b'[{"devId":"A","gpsTime":1,"spd":3},{"devId":"B","gpsTime":2,"dir":4}]')
    assert two.get_column("device_id").to_list() == ["A", "B"]


@pytest.mark.parametrize(
    "payload",
    [
        b"nope",
        b"[1]",
        b'{"gpsTime":1}',
        b'{"devId":"A","gpsTime":"x"}',
        b'{"devId":"A","gpsTime":1,"lat":"n"}',
    ],
)
def test_tracker_json_refused(payload):
    with pytest.raises(BatchError):
        TrackerFormat().decode(payload)


def test_decode_frame_matches_the_contract_decoder():
    b = TelemetryBatch(agent="a", seq=1)
    b.extend([TelemetryRow(f"D{i % 3}", "k", NOW + i, f"f{i % 2}", i or None) for i in range(20)])
    assert decode_frame(b.encode()).equals(batch_to_frame(TelemetryBatch.decode(b.encode())))


@pytest.mark.parametrize(
    "doc",
    [
        '{"v":2}',
        "[]",
        '{"v":1,"agent":"a","seq":1,"devices":[["x","k"]],"fields":["f"],"d":[1],"f":[0],"t":[1],"x":[1]}',
        '{"v":1,"agent":"a","seq":1,"devices":[["x","k"]],"fields":["f"],"d":[0.5],"f":[0],"t":[1],"x":[1]}',
        '{"v":1,"agent":"a","seq":1,"devices":[["x","k"]],"fields":["f"],"d":[0],"f":[0],"t":["a"],"x":[1]}',
        '{"v":1,"agent":"a","seq":1,"devices":[["x","k"]],"fields":["f"],"d":[0],"f":[0],"t":[1],"x":["z"]}',
        '{"v":1,"agent":"a","seq":1,"devices":[["x","k"]],"fields":["f"],"d":[0,0],"f":[0],"t":[1],"x":[1]}',
    ],
)
def test_decode_frame_refuses_bad_batches(doc):
    with pytest.raises(BatchError):
        decode_frame(doc.encode())


def test_metrics_percentiles_and_log_line():
    m = IngestMetrics()
    for ms in range(1, 101):
        m.write(10, float(ms))
    snap = m.snapshot()
    assert snap["write_latency_ms"]["p50"] == 51.0 and snap["write_latency_ms"]["p95"] == 96.0
    line = log_line(
        {
            **snap,
            "rows_in": 1,
            "rows_written": 1000,
            "rows_quarantined": 0,
            "batches_done": 1,
            "write_errors": 0,
            "queue_depth": 0,
            "spill": {},
        }
    )
    assert "\n" not in line and "write_p95_ms=96.0" in line
