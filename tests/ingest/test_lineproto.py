"""Line protocol built with polars expressions."""

from __future__ import annotations

import math

import polars as pl
from influxdb_client import Point, WritePrecision

from ingest.frames import SCHEMA, coded
from ingest.store.lineproto import LINE, encode_lines, line_chunks, with_lines


def _frame(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def test_plain_line():
    lines = encode_lines(_frame([("DM-1", "dust_monitor", 17, "pm10", 87.5)]))
    assert lines.to_list() == ["dust_monitor,device_id=DM-1 pm10=87.5 17"]


def test_escaping_tags_fields_and_measurements():
    rows = [("a b,c=d", "dust monitor,x=y", 5, "f=1 x,y", 1.0)]
    (line,) = encode_lines(_frame(rows)).to_list()
    # measurement escapes comma and space (not '='); tag value and field key also '='
    assert line == r"dust\ monitor\,x=y,device_id=a\ b\,c\=d f\=1\ x\,y=1.0 5"


def test_matches_influxdb_client_point_for_awkward_names():
    rows = [
        (
            "LC 1,=x",
            "lighting_cabinet",
            1_763_942_400_123_456_789,
            "circuit 1,on=",
            0.30000000000000004,
        )
    ]
    (line,) = encode_lines(_frame(rows)).to_list()
    point = (
        Point("lighting_cabinet")
        .tag("device_id", "LC 1,=x")
        .field("circuit 1,on=", 0.30000000000000004)
        .time(1_763_942_400_123_456_789, WritePrecision.NS)
    )
    assert line == point.to_line_protocol()


def test_newline_in_a_name_cannot_split_the_line():
    (line,) = encode_lines(_frame([("A\nB", "k", 1, "f", 1.0)])).to_list()
    assert "\n" not in line


def test_non_finite_rows_are_left_out_and_floats_stay_floats():
    rows = [("D", "k", 1, "a", math.nan), ("D", "k", 2, "b", 1.0), ("D", "k", 3, "c", 1e20)]
    assert encode_lines(_frame(rows)).to_list() == [
        "k,device_id=D b=1.0 2",
        "k,device_id=D c=1e+20 3",
    ]


def test_chunks_split_at_size():
    rows = [("D", "k", i, "v", float(i)) for i in range(7)]
    chunks = list(line_chunks(_frame(rows), size=3))
    assert [c.count("\n") + 1 for c in chunks] == [3, 3, 1]
    assert chunks[2] == "k,device_id=D v=6.0 6"


def test_only_names_that_need_it_are_escaped_and_lines_match_point():
    # Escaping is skipped for a column without special characters: mixed frames must
    # still give every line exactly as influxdb-client's Point does.
    rows = [
        ("DM-1", "dust_monitor", 1, "pm10", 1.5),
        ("DM 2", "dust_monitor", 2, "pm10", 2.5),  # only the device id needs escaping
        ("DM-3", "dust_monitor", 3, "a=b", 3.5),  # only the field
        ("DM-4", "dust,monitor", 4, "pm10", 4.5),  # only the measurement
    ]
    frame = _frame(rows)
    expected = [
        Point(k).tag("device_id", d).field(f, v).time(t, WritePrecision.NS).to_line_protocol()
        for d, k, t, f, v in rows
    ]
    assert encode_lines(frame).to_list() == expected
    for part in (frame.head(1), frame.slice(1, 1), frame.slice(2, 1), frame.slice(3, 1)):
        i = int(part.get_column("ts")[0]) - 1
        assert encode_lines(part).to_list() == [expected[i]]
        # Names as categorical codes (what ingest's validation hands over): the escaping
        # is decided per distinct code, and the names come back as strings.
        ahead = with_lines(coded(part))
        assert ahead.get_column(LINE).to_list() == [expected[i]]
        assert ahead.drop(LINE).equals(part)


def test_lines_encoded_ahead_give_the_same_bodies():
    rows = [("D", "k", i, "v", math.nan if i == 2 else float(i)) for i in range(7)]
    frame = _frame(rows)
    ahead = with_lines(frame)
    assert LINE in ahead.columns and ahead.get_column(LINE).null_count() == 1  # the NaN
    bodies = list(line_chunks(ahead, size=3))
    assert [b.count("\n") + 1 for b in bodies] == [3, 3]
    assert "\n".join(bodies) == "\n".join(line_chunks(frame, size=3))
