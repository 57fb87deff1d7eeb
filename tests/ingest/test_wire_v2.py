"""Wire format v2 (Arrow IPC): round trip, refusals with a reason, v1 and v2 side by side."""

from __future__ import annotations

import math
import time

import polars as pl
import pyarrow as pa
import pytest

from contracts.telemetry import BatchError, TelemetryBatch, TelemetryRow
from contracts.telemetry_arrow import (
    ARROW_SCHEMA,
    WIRE_V2,
    decode_batch,
    decode_table,
    encode_batch,
    wire_version,
)
from ingest.frames import SCHEMA, batch_to_frame, coded, decode_frame, decode_rows, strings
from ingest.metrics import IngestMetrics
from ingest.prepare import prepare
from ingest.quarantine import Quarantine

S = 1_000_000_000
T0 = 1_763_942_400 * S


def _batch(n: int = 12) -> TelemetryBatch:
    b = TelemetryBatch(agent="agent-1", seq=7, sent_ns=T0 + 5)
    for i in range(n):
        kind = ("lighting_cabinet", "vehicle")[i % 2]
        value: float | None = float(i) + 0.25
        if i == 3:
            value = None
        elif i == 4:
            value = math.nan
        b.append(TelemetryRow(f"D-{i // 3}", kind, T0 + i, f"f{i % 4}", value))
    return b


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def _table(**over) -> pa.Table:
    cols = {
        "device_id": pa.array(["D-1"]).dictionary_encode(),
        "kind": pa.array(["vehicle"]).dictionary_encode(),
        "ts": pa.array([T0], pa.int64()),
        "field": pa.array(["speed"]).dictionary_encode(),
        "value": pa.array([1.5], pa.float64()),
    }
    meta = {"rongguan.wire": "2", "agent": "a", "seq": "1"}
    meta.update(over.pop("meta", {}))
    cols.update(over)
    return pa.table(cols).replace_schema_metadata(meta)


def test_round_trip_keeps_rows_metadata_and_nulls():
    b = _batch()
    payload = encode_batch(b)
    assert wire_version(payload) == WIRE_V2 and wire_version(b.encode()) == 1
    back = decode_batch(payload)
    assert (back.agent, back.seq, back.sent_ns) == ("agent-1", 7, T0 + 5)
    # Non-finite values travel as null, exactly as in v1.
    assert back.rows() == TelemetryBatch.decode(b.encode()).rows()
    assert back.value[3] is None and back.value[4] is None
    table, meta = decode_table(payload)
    assert meta == {"agent": "agent-1", "seq": 7, "sent_ns": T0 + 5}
    assert table.column_names == list(SCHEMA)


def test_schema_is_dictionary_encoded_on_the_wire():
    reader = pa.ipc.open_stream(encode_batch(_batch()))
    assert reader.schema.remove_metadata().equals(ARROW_SCHEMA)
    assert reader.schema.metadata[b"rongguan.wire"] == b"2"


def test_v1_and_v2_decode_to_the_same_frame():
    b = _batch(50)
    v1, v2 = decode_frame(b.encode()), decode_frame(encode_batch(b))
    assert v2.schema == pl.Schema(SCHEMA)
    assert v2.equals(v1) and v2.equals(batch_to_frame(TelemetryBatch.decode(b.encode())))
    empty = decode_frame(encode_batch(TelemetryBatch(agent="a", seq=1)))
    assert empty.height == 0 and empty.schema == pl.Schema(SCHEMA)
    # As ingest decodes them: the names as categorical codes, the same rows.
    for payload in (b.encode(), encode_batch(b)):
        got, _wrong = decode_rows(payload, codes=True)
        assert got.schema == coded(v1).schema and strings(got).equals(v1)


def test_plain_string_columns_are_accepted():
    t = _table(device_id=pa.array(["D-1"]), field=pa.array(["speed"], pa.large_string()))
    assert decode_frame(_ipc(t)).rows() == [("D-1", "vehicle", T0, "speed", 1.5)]


def test_receivers_that_work_on_codes_get_the_agents_dictionaries():
    # Ingest validates on dictionary codes: whatever a sender used, one dictionary type,
    # with every index checked (reading a stream does not check them).
    t = _table(
        device_id=pa.array(["D-1"]),
        kind=pa.array(["vehicle"], pa.large_string()).dictionary_encode(),
        field=pa.array(["speed"], pa.large_string()),
    )
    table, _meta = decode_table(_ipc(t), dictionaries=True)
    assert table.schema.equals(ARROW_SCHEMA)
    assert table.to_pylist() == [
        {"device_id": "D-1", "kind": "vehicle", "ts": T0, "field": "speed", "value": 1.5}
    ]
    dev = pa.DictionaryArray.from_arrays(pa.array([3], pa.int32()), ["D-1"], safe=False)
    with pytest.raises(BatchError, match="device_id: bad content"):
        decode_table(_ipc(_table(device_id=dev)), dictionaries=True)
    # Names that are not UTF-8 (a corrupt batch: agents encode Python strings) refuse it,
    # plain or dictionary-encoded alike.
    junk = pa.Array.from_buffers(
        pa.string(), 1, [None, pa.array(["ab"]).buffers()[1], pa.py_buffer(b"\xff\xfe")]
    )
    for field in (junk, junk.dictionary_encode()):
        with pytest.raises(BatchError, match="field: bad content: .*UTF8"):
            decode_table(_ipc(_table(field=field)), dictionaries=True)


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        (b"\xff\xff\xff\xff\x10\x00\x00\x00garbage-garbage!", "bad Arrow stream"),
        (b"\xff\xff\xff\xff", "bad Arrow stream"),
        (_ipc(_table(ts=pa.array([1], pa.int32()))), "ts: type int32"),
        (_ipc(_table(value=pa.array(["x"]))), "value: type string"),
        (_ipc(_table(kind=pa.array([1], pa.int64()).dictionary_encode())), "kind: type"),
        (_ipc(_table(meta={"rongguan.wire": "3"})), "unsupported wire version '3'"),
        (_ipc(pa.table({"a": [1]}).replace_schema_metadata({"rongguan.wire": "2"})), "metadata"),
        (_ipc(_table().drop_columns(["kind"])), "columns must be"),
    ],
)
def test_garbage_is_refused_with_a_reason(payload, why):
    with pytest.raises(BatchError, match=why):
        decode_frame(payload)
    with pytest.raises(BatchError, match=why):
        decode_batch(payload)


def test_truncated_stream_is_refused():
    payload = encode_batch(_batch())
    with pytest.raises(BatchError, match="bad Arrow stream"):
        decode_frame(payload[: len(payload) // 2])


def test_bad_v2_batch_is_quarantined_with_v1_and_v2_good_ones_kept(tmp_path):
    now = time.time_ns()
    good = TelemetryBatch(agent="a", seq=1)
    good.append(TelemetryRow("D-1", "vehicle", now, "speed", 10.0))
    other = TelemetryBatch(agent="a", seq=2)
    other.append(TelemetryRow("D-1", "vehicle", now, "heading", 90.0))
    q = Quarantine(tmp_path / "q.db")
    m = IngestMetrics()
    topic = "rg/v1/tele/0/a"
    items = [
        (topic, encode_batch(good), now),
        (topic, b"\xff\xff\xff\xffnot arrow at all", now),
        (topic, other.encode(), now),
    ]
    frame = prepare(items, None, None, m, q)
    assert frame is not None
    assert sorted(frame.get_column("field").to_list()) == ["heading", "speed"]
    assert q.counts() == {"bad_batch": 1}
    q.close()


def _one(seq: int, rows: list[tuple[str, int, str, float]]) -> TelemetryBatch:
    b = TelemetryBatch(agent="a", seq=seq)
    for dev, ts, field, value in rows:
        b.append(TelemetryRow(dev, "vehicle", ts, field, value))
    return b


def test_a_group_keeps_message_order_and_scopes_duplicates_per_message():
    # Runs of Arrow batches are imported as one table; the rows must still come out in
    # message order (a later message's rewrite stays later) with duplicates per message.
    now = time.time_ns()
    topic = "rg/v1/tele/0/a"
    m1 = encode_batch(_one(1, [("D-1", now, "speed", 1.0), ("D-1", now, "speed", 9.0)]))
    m2 = encode_batch(_one(2, [("D-1", now, "speed", 2.0)]))  # rewrites m1's point
    m3 = _one(3, [("D-2", now, "speed", 3.0)]).encode()  # JSON between Arrow runs
    m4 = encode_batch(_one(4, [("D-1", now, "speed", 4.0), ("D-3", now, "lat", 30.5)]))
    m = IngestMetrics()
    frame = prepare([(topic, p, now) for p in (m1, m2, m3, m4)], None, None, m, None)
    assert frame is not None and frame.columns == list(SCHEMA)
    assert frame.select("device_id", "value").rows() == [
        ("D-1", 1.0), ("D-1", 2.0), ("D-2", 3.0), ("D-1", 4.0), ("D-3", 30.5)
    ]  # fmt: skip
    assert m.flat()["quarantined"] == {"duplicate": 1}  # m1's second row only


def test_a_batch_polars_cannot_import_is_refused_alone(monkeypatch, tmp_path):
    import ingest.frames as frames

    real = frames._from_arrow

    def picky(table: pa.Table) -> pl.DataFrame:
        if 66.0 in table.column("value").to_pylist():
            raise BatchError("bad column content: not importable")
        return real(table)

    monkeypatch.setattr(frames, "_from_arrow", picky)
    now = time.time_ns()
    topic = "rg/v1/tele/0/a"
    items = [
        (topic, encode_batch(_one(1, [("D-1", now, "speed", 1.0)])), now),
        (topic, encode_batch(_one(2, [("D-2", now, "speed", 66.0)])), now),
        (topic, encode_batch(_one(3, [("D-3", now, "speed", 3.0)])), now),
    ]
    q = Quarantine(tmp_path / "q.db")
    frame = prepare(items, None, None, IngestMetrics(), q)
    assert frame is not None
    assert frame.get_column("device_id").to_list() == ["D-1", "D-3"]
    assert q.counts() == {"bad_batch": 1}
    q.close()


def test_an_index_outside_its_dictionary_refuses_only_its_batch(tmp_path):
    # Arrow does not check dictionary indices when it reads a stream; the batch's strings
    # are decoded with its group, and the bad one must not take the others with it.
    now = time.time_ns()

    def batch(index: int) -> bytes:
        dev = pa.DictionaryArray.from_arrays(pa.array([index], pa.int32()), ["D-1"], safe=False)
        return _ipc(_table(device_id=dev, ts=pa.array([now], pa.int64())))

    topic = "rg/v1/tele/0/a"
    q = Quarantine(tmp_path / "q.db")
    frame = prepare([(topic, batch(i), now) for i in (0, 7, 0)], None, None, IngestMetrics(), q)
    assert frame is not None and frame.height == 2
    assert q.counts() == {"bad_batch": 1}
    q.close()
