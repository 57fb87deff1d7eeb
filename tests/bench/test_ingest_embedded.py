"""The embedded-store benchmark measures what it says: a whole day, real buckets, a track."""

from __future__ import annotations

from bench import ingest_embedded


def test_a_small_district_day_answers_the_dashboards_queries(tmp_path):
    out = ingest_embedded.run(tmp_path, devices=3, interval_s=60, write_every_s=3600)
    assert out["rows"] == 3 * 5 * 1440  # five fields of each device, every minute, all day
    assert out["rows_per_write"] == 3 * 5 * 60
    assert out["latest_rows"] == 15
    assert out["range_raw_day_rows"] == 1440
    assert out["range_1min_buckets"] == 1440
    assert out["range_5min_buckets"] == 288
    assert out["track_day_fixes"] == 1440
    assert out["write_rows_per_s"] > 0 and out["latest_only_write_rows_per_s"] > 0


def test_every_row_of_the_day_is_a_distinct_point_in_time_order():
    frames = ingest_embedded.district_day(devices=6, interval_s=300, write_every_s=7200)
    assert len(frames) == 12
    ts = [t for f in frames for t in f.get_column("ts").to_list()]
    assert ts == sorted(ts)
    keys = {
        (d, fld, t) for f in frames for d, fld, t in f.select("device_id", "field", "ts").rows()
    }
    assert len(keys) == 6 * 5 * 288
