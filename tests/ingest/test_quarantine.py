"""The bounded SQLite quarantine."""

from __future__ import annotations

import json

import polars as pl

from ingest.frames import SCHEMA
from ingest.quarantine import BAD_BATCH, Quarantine


def _bad(n: int, reason: str) -> pl.DataFrame:
    frame = pl.DataFrame(
        [(f"D-{i}", "dust_monitor", i, "pm10", None) for i in range(n)], schema=SCHEMA, orient="row"
    )
    return frame.with_columns(pl.lit(reason).alias("reason"))


def test_rows_and_payloads_with_counts(tmp_path):
    q = Quarantine(tmp_path / "q.db")
    assert q.add_rows(_bad(3, "non_finite"), "rg/v1/tele/0/a") == 3
    q.add_payload(BAD_BATCH, "rg/v1/tele/0/a", b"\xff\xfenot json")
    assert q.counts() == {"non_finite": 3, BAD_BATCH: 1}
    assert len(q) == 4
    recent = q.recent()
    assert recent.get_column("reason").to_list()[0] == BAD_BATCH
    assert "not json" in recent.get_column("payload").to_list()[0]
    row = json.loads(q.recent(reason="non_finite").get_column("payload").to_list()[-1])
    assert row == {
        "device_id": "D-0",
        "kind": "dust_monitor",
        "ts": 0,
        "field": "pm10",
        "value": None,
    }
    q.close()


def test_bounded_drop_oldest_and_counts_survive_restart(tmp_path):
    q = Quarantine(tmp_path / "q.db", max_rows=5)
    q.add_rows(_bad(4, "ts_past"), "t")
    q.add_rows(_bad(4, "duplicate"), "t")
    assert len(q) == 5 and q.dropped == 3
    # the oldest went: 1 ts_past row left, all 4 duplicates kept
    assert q.recent(reason="ts_past").height == 1
    assert q.recent(reason="duplicate").height == 4
    q.close()
    q2 = Quarantine(tmp_path / "q.db", max_rows=5)
    assert q2.counts() == {"ts_past": 4, "duplicate": 4} and q2.dropped == 3
    q2.close()


def test_empty_frame_is_a_no_op(tmp_path):
    q = Quarantine(tmp_path / "q.db")
    assert q.add_rows(_bad(0, "x"), "t") == 0 and q.counts() == {}
    q.close()
