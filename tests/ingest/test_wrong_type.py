"""Row-level refusals at decode (wrong_type), tracker routing to the owning partition,
and the Prometheus figures; pure logic, no servers."""

from __future__ import annotations

import json
import random
import time

import polars as pl
import pytest

from contracts import topics
from contracts.telemetry import BatchError, TelemetryBatch, TelemetryRow
from ingest.frames import SCHEMA, WRONG_TYPE, coded, decode_frame, decode_rows, strings
from ingest.metrics import IngestMetrics
from ingest.prepare import prepare
from ingest.prometheus import ingest_text
from ingest.quarantine import Quarantine
from ingest.tracker import TrackerFormat
from ingest.validate import inventory_frame

TOPIC = topics.telemetry(0, "agent-1")


def _v1(d: list, f: list, t: list, x: list) -> bytes:
    doc = {"v": 1, "agent": "a", "seq": 1, "devices": [["DM-1", "dust_monitor"]]}
    doc |= {"fields": ["pm10", "noise"], "d": d, "f": f, "t": t, "x": x}
    return json.dumps(doc).encode()


def test_v1_wrong_types_refuse_only_their_rows():
    payload = _v1(
        [0, 0, "0", 0, 0, 0], [0, 1, 0, 0, None, 0], [1, 2, 3, "4", 5, 6.5], [1, "loud", 3, 4, 5, 6]
    )
    good, wrong = decode_rows(payload)
    assert good.rows() == [("DM-1", "dust_monitor", 1, "pm10", 1.0)]
    assert wrong.get_column("reason").to_list() == ["wrong_type"] * 5
    assert [json.loads(r) for r in wrong.get_column("raw")] == [
        {"x": "loud"},
        {"d": "0"},
        {"t": "4"},
        {"f": None},
        {"t": 6.5},
    ]
    # what could be read is kept for the operator
    assert wrong.row(0) == ("DM-1", "dust_monitor", 2, "noise", None, "wrong_type", '{"x": "loud"}')
    with pytest.raises(BatchError, match="bad column content"):
        decode_frame(payload)  # the strict decoder still refuses the message
    # As ingest decodes it (names as codes from the batch's dictionaries): the same rows.
    coded_good, coded_wrong = decode_rows(payload, codes=True)
    assert coded_good.schema == coded(good).schema and strings(coded_good).equals(good)
    assert coded_wrong.equals(wrong)


def test_v1_index_outside_dictionary_stays_a_bad_batch():
    with pytest.raises(BatchError, match="outside"):
        decode_rows(_v1([0, 3], [0, 0], [1, 2], [1, 2]))


def test_v1_good_batch_takes_the_fast_path_unchanged():
    b = TelemetryBatch(agent="a", seq=1)
    b.extend([TelemetryRow("DM-1", "dust_monitor", i, "pm10", float(i)) for i in range(5)])
    good, wrong = decode_rows(b.encode())
    assert good.height == 5 and wrong.height == 0


def test_tracker_bad_member_refuses_only_that_row():
    fixes = [
        {"devId": "TRK-1", "gpsTime": 1000, "lat": 30.5, "lng": "104.1", "spd": 3},
        {"gpsTime": 1000, "lat": 1.0},  # no id
        {"devId": 7, "gpsTime": 1000},  # id of the wrong type
        "junk",
    ]
    good, wrong = TrackerFormat().decode_rows(json.dumps(fixes).encode())
    assert good.get_column("field").to_list() == ["lat", "speed"]
    assert wrong.get_column("reason").to_list() == [
        "wrong_type",
        "missing_key",
        "wrong_type",
        "wrong_type",
    ]
    assert json.loads(wrong.get_column("raw")[0]) == {"lng": "104.1"}
    assert wrong.row(0)[:4] == ("TRK-1", "vehicle", 1_000_000_000, "lon")


@pytest.mark.parametrize("payload", [b"nope", b"[1, 2]", b'"x"', b"[]"])
def test_tracker_message_without_any_fix_is_a_bad_batch(payload):
    with pytest.raises(BatchError):
        TrackerFormat().decode_rows(payload)


def _tracker_ids(partition: int, n: int, count: int) -> list[str]:
    ids = (f"TRK-{i:04d}" for i in range(1000))
    return [d for d in ids if topics.partition_of(d, n) == partition][:count]


def test_prepare_quarantines_wrong_rows_with_raw_and_counts_per_reason(tmp_path):
    q = Quarantine(tmp_path / "q.db")
    m = IngestMetrics()
    inv = inventory_frame({"DM-1": "dust_monitor"})
    now_ns = time.time_ns()
    payload = _v1([0, 0, 0], [0, 0, 1], [now_ns, now_ns + 1, now_ns], [1, "x", 60.0])
    good = prepare([(TOPIC, payload, 1), (TOPIC, b"\x00", 2)], inv, None, m, q)
    assert good is not None and good.get_column("value").to_list() == [1.0, 60.0]
    snap = m.snapshot()
    assert snap["quarantined"] == {"wrong_type": 1, "bad_batch": 1}
    assert (m.c["rows_in"], m.c["rows_good"], m.c["rows_quarantined"]) == (3, 2, 1)
    assert q.counts() == {"wrong_type": 1, "bad_batch": 1}
    rec = json.loads(q.recent(reason="wrong_type")["payload"][0])
    assert rec["raw"] == '{"x": "x"}' and rec["device_id"] == "DM-1"
    q.close()


def test_prepare_keeps_only_the_owned_trackers():
    mine, theirs = _tracker_ids(1, 2, 2), _tracker_ids(0, 2, 2)
    now_ms = time.time_ns() // 1_000_000
    fixes = [{"devId": d, "gpsTime": now_ms, "lat": 30.6, "lng": "bad"} for d in mine + theirs]
    items = [("trackers/x/gps", json.dumps(fixes).encode(), 1)]
    m = IngestMetrics()
    good = prepare(items, None, None, m, None, TrackerFormat(), owner=(1, 2))
    assert good is not None and sorted(good.get_column("device_id")) == sorted(mine)
    # rows of the other partition's devices are neither kept nor quarantined
    assert m.c["rows_not_mine"] == 4 and m.snapshot()["quarantined"] == {"wrong_type": 2}
    # the same message on the other worker: the complement
    m0 = IngestMetrics()
    good0 = prepare(items, None, None, m0, None, TrackerFormat(), owner=(0, 2))
    assert good0 is not None and sorted(good0.get_column("device_id")) == sorted(theirs)
    assert m0.c["rows_not_mine"] == 4


def test_prometheus_text_has_reasons_spill_latency_and_lag():
    m = IngestMetrics()
    m.bad("wrong_type", 3)
    m.bad('we"ird', 1)
    m.write(100, 250.0)
    snap = {**m.snapshot(), **{k: v for k, v in m.c.items()}, "queue_depth": 2}
    snap |= {"spill": {"depth_rows": 7, "depth_batches": 1, "spilled": 1}, "lag_s": 1.5}
    text = ingest_text(snap)
    lines = text.splitlines()
    assert 'rg_ingest_quarantined_total{reason="wrong_type"} 3.0' in lines
    assert 'rg_ingest_quarantined_total{reason="we\\"ird"} 1.0' in lines
    assert "rg_ingest_spill_depth_rows 7.0" in lines
    assert 'rg_ingest_write_latency_seconds{quantile="0.5"} 0.25' in lines
    assert "rg_ingest_write_latency_seconds_count 1.0" in lines
    assert "rg_ingest_lag_seconds 1.5" in lines
    assert "# TYPE rg_ingest_write_latency_seconds summary" in lines
    # one TYPE line per family, before its samples
    types = [ln.split()[2] for ln in lines if ln.startswith("# TYPE")]
    assert len(types) == len(set(types))


def test_wrong_type_frame_schema_is_stable():
    _good, wrong = decode_rows(_v1([0], [0], ["t"], [1]))
    assert wrong.schema["ts"] == pl.Int64 and wrong.columns[-2:] == ["reason", "raw"]


def test_v1_members_of_any_type_never_escape_as_other_errors():
    # every row ends up good or refused, or the message is a BatchError; nothing else
    rng = random.Random(11)
    junk = [None, True, -1, 0, 1, 2, 1.5, "1", [], {}, 10**30, 10**400, float("nan")]
    for _ in range(500):
        n = rng.randint(0, 6)
        cols = [[rng.choice(junk) for _ in range(n)] for _ in "dftx"]
        try:
            good, wrong = decode_rows(_v1(*cols))
        except BatchError:
            continue
        assert good.height + wrong.height == n


def test_tracker_members_of_any_type_never_escape_as_other_errors():
    rng = random.Random(12)
    junk = [None, True, -1, 0, 1.5, "1", [], {}, 10**400, float("nan"), 1e300]
    members = ["devId", "gpsTime", "lat", "lng", "spd", "dir", "cover"]
    for _ in range(500):
        fixes = [
            {k: rng.choice([*junk, "TRK-1"]) for k in rng.sample(members, rng.randint(0, 7))}
            for _ in range(rng.randint(1, 3))
        ]
        try:
            good, wrong = TrackerFormat().decode_rows(json.dumps(fixes).encode())
        except BatchError:
            continue
        # refused rows say why; kept rows have what a fix needs, in the frame's schema
        assert set(wrong.get_column("reason").to_list()) <= {WRONG_TYPE, "missing_key"}
        assert (
            good.schema == SCHEMA
            and good.select("device_id", "ts").null_count().sum_horizontal().item() == 0
        )


def test_nan_and_infinities_are_floats_left_to_validation() -> None:
    # decoding keeps them (validation refuses them as non_finite); only a number no
    # float64 can hold, or a non-number, is the wrong type
    from ingest.frames import is_float_value

    assert all(is_float_value(x) for x in (None, float("nan"), float("inf"), -1e308, 10**300))
    assert not any(is_float_value(x) for x in (10**400, "1.5", [], {}))
