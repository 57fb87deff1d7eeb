"""The store ingest opens beside InfluxDB: concurrent fan-out, a latest-only embedded file."""

from __future__ import annotations

import threading

import polars as pl
import pytest

from contracts.config import DeploymentConfig
from ingest.frames import SCHEMA
from ingest.store import EmbeddedStore, FanoutStore, StoreError, open_store

S = 1_000_000_000
T0 = 1_763_942_400 * S


def _frame(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


class _Recording:
    """A store that records writes; waits at ``barrier`` first, fails if ``fail`` is set."""

    def __init__(self, barrier: threading.Barrier | None = None, fail: bool = False) -> None:
        self.barrier, self.fail = barrier, fail
        self.frames: list[pl.DataFrame] = []
        self.closed = False

    def write(self, frame: pl.DataFrame) -> int:
        if self.barrier is not None:
            self.barrier.wait()  # raises BrokenBarrierError unless the other store is here too
        if self.fail:
            raise StoreError("refused")
        self.frames.append(frame)
        return frame.height

    def close(self) -> None:
        self.closed = True


ROWS = _frame([("DM-1", "dust_monitor", T0, "pm10", 80.0)])


def test_fanout_writes_the_stores_at_the_same_time():
    # Each write waits until the other store's write has started: serial writes would
    # never meet at the barrier, and its timeout (a hang bound, not a speed test) breaks it.
    barrier = threading.Barrier(2, timeout=30)
    a, b = _Recording(barrier), _Recording(barrier)
    fan = FanoutStore(a, b)
    assert fan.write(ROWS) == 1
    assert a.frames == [ROWS] and b.frames == [ROWS]
    fan.close()
    assert a.closed and b.closed


def test_fanout_tries_every_store_and_raises_the_failure():
    ok_first, bad_other = _Recording(), _Recording(fail=True)
    fan = FanoutStore(ok_first, bad_other)
    with pytest.raises(StoreError, match="refused"):
        fan.write(ROWS)
    assert ok_first.frames == [ROWS]  # written anyway; a retry rewrites it, harmlessly
    bad_first, ok_other = _Recording(fail=True), _Recording()
    with pytest.raises(StoreError):
        FanoutStore(bad_first, ok_other).write(ROWS)
    assert ok_other.frames == [ROWS]


def test_latest_only_store_keeps_the_newest_per_series_and_no_history(tmp_path):
    store = EmbeddedStore(tmp_path / "s.db", history=False, latest_every_s=3600)
    store.write(
        _frame(
            [
                ("LC-1", "lighting_cabinet", T0 + 10 * S, "voltage_l1", 221.0),
                ("LC-1", "lighting_cabinet", T0 + 20 * S, "voltage_l1", 222.0),
                ("TRK-1", "vehicle", T0, "lat", 30.6),
            ]
        )
    )
    store.write(_frame([("LC-1", "lighting_cabinet", T0 + 15 * S, "voltage_l1", 999.0)]))  # late
    reader = EmbeddedStore(tmp_path / "s.db", read_only=True)
    assert reader.latest().height == 0  # buffered: not flushed within the hour
    assert store.latest_flushes == 0
    assert store.latest().rows() == [  # a read in the writer flushes first
        ("LC-1", "lighting_cabinet", T0 + 20 * S, "voltage_l1", 222.0),
        ("TRK-1", "vehicle", T0, "lat", 30.6),
    ]
    assert store.latest_flushes == 1 and store.latest_rows_flushed == 2
    assert reader.latest().height == 2
    # Later flushes still never let an older row replace a newer one already stored.
    store.write(_frame([("LC-1", "lighting_cabinet", T0 + 5 * S, "voltage_l1", 1.0)]))
    store.close()  # close flushes
    assert reader.latest().rows()[0][2:] == (T0 + 20 * S, "voltage_l1", 222.0)
    assert reader.range("LC-1", "voltage_l1", T0, T0 + 60 * S).height == 0
    assert reader.track("TRK-1", T0, T0 + S).height == 0
    reader.close()


def test_latest_buffer_is_bounded(tmp_path):
    store = EmbeddedStore(tmp_path / "s.db", history=False, latest_every_s=3600, max_pending=3)
    store.write(_frame([("DM-1", "dust_monitor", T0 + i * S, "pm10", float(i)) for i in range(9)]))
    assert store.latest_flushes == 0  # one series: nine rows buffer as one
    store.write(_frame([(f"DM-{i}", "dust_monitor", T0, "pm10", 1.0) for i in range(2, 5)]))
    assert store.latest_flushes == 1 and store.latest_rows_flushed == 4
    store.close()


def test_without_influx_open_store_keeps_history_in_the_embedded_file(tmp_path):
    cfg = DeploymentConfig.model_validate({"var_dir": str(tmp_path)})
    store = open_store(cfg)
    assert isinstance(store, EmbeddedStore) and store.history
    store.write(ROWS)
    assert store.range("DM-1", "pm10", T0, T0 + S).rows() == [(T0, 80.0)]
    store.close()


@pytest.mark.servers
def test_with_influx_history_reads_influx_and_latest_reads_the_file(tmp_path, influx):
    cfg = DeploymentConfig.model_validate(
        {"var_dir": str(tmp_path), "store": {"influx": influx.model_dump()}}
    )
    rows = [("TRK-1", "vehicle", T0 + i * S, f, v) for i in range(3) for f, v in
            (("lat", 30.5 + i / 4), ("lon", 104.0), ("speed", 20.0), ("heading", 90.0))]  # fmt: skip
    store = open_store(cfg)
    assert isinstance(store, FanoutStore)
    embedded = store.stores[0]
    assert isinstance(embedded, EmbeddedStore) and not embedded.history
    assert store.write(_frame(rows)) == 12
    assert store.track("TRK-1", T0, T0 + 10 * S).height == 3  # from InfluxDB
    assert store.range("TRK-1", "lat", T0, T0 + 10 * S, every_s=2, agg="max").rows() == [
        (T0, 30.75),
        (T0 + 2 * S, 31.0),
    ]
    store.close()
    # Another process (the dashboard) reads the same way; InfluxDB down would not stop latest.
    reader = open_store(cfg, read_only=True)
    assert reader.latest("vehicle").get_column("ts").to_list() == [T0 + 2 * S] * 4
    assert reader.track("TRK-1", T0, T0 + 10 * S).height == 3
    file_only = EmbeddedStore(cfg.path(cfg.store.path), read_only=True)
    assert file_only.track("TRK-1", T0, T0 + S).height == 0  # no history copy in the file
    file_only.close()
    reader.close()
