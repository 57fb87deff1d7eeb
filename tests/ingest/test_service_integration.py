"""IngestService against a real Mosquitto and a real InfluxDB (1.6.7 behind nginx)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import polars as pl
import pytest

from contracts import topics
from contracts.alarms import AlarmEvent, AlarmState, Severity
from contracts.config import BrokerConfig, DeploymentConfig, InfluxConfig, StoreConfig
from contracts.mqtt import make_client
from contracts.telemetry import TelemetryBatch, TelemetryRow
from ingest.frames import SCHEMA
from ingest.quarantine import Quarantine
from ingest.service import IngestService
from ingest.store.influx import InfluxStore

pytestmark = pytest.mark.servers
S = 1_000_000_000


def _cfg(tmp_path, broker: BrokerConfig, influx: InfluxConfig | None) -> DeploymentConfig:
    dev = {
        "protocol": "modbus",
        "profile": "modbus_dust_monitor",
        "endpoint": "modbus://127.0.0.1:1",
    }
    return DeploymentConfig.model_validate(
        {
            "var_dir": str(tmp_path),
            "broker": broker.model_dump(),
            "store": StoreConfig(influx=influx).model_dump(),
            "agents": [
                {
                    "id": "agent-1",
                    "devices": [
                        {"id": "DM-1", "kind": "dust_monitor", **dev},
                        {"id": "DM-2", "kind": "dust_monitor", **dev},
                    ],
                }
            ],
        }
    )


@contextmanager
def _running(service: IngestService) -> Iterator[None]:
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(
        target=loop.run_until_complete, args=(service.run(stop),), daemon=True
    )
    thread.start()
    try:
        assert service.wait_subscribed(10), "ingest did not subscribe"
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)
        loop.close()
        assert not thread.is_alive()


def _wait_for(cond: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def _publish(broker: BrokerConfig, payloads: list[bytes]) -> None:
    client = make_client(broker, "test-pub")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        for p in payloads:
            client.publish(topics.telemetry(0, "agent-1"), p, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def _batch(seq: int, rows: list[tuple]) -> bytes:
    b = TelemetryBatch(agent="agent-1", seq=seq, sent_ns=time.time_ns())
    b.extend([TelemetryRow(*r) for r in rows])
    return b.encode()


def test_batches_through_ingest_into_influx(tmp_path, mqtt_broker, influx):
    now = time.time_ns() // S * S
    b1 = [("DM-1", "dust_monitor", now - i * S, "pm10", 50.0 + i) for i in range(10)]
    b1 += [("DM-2", "dust_monitor", now, "pm 2.5", 30.0)]  # a field name that needs escaping
    b1 += [("XX-9", "dust_monitor", now, "pm10", 1.0)]  # unknown device
    b1 += [("DM-1", "dust_monitor", now, "pm10", 99.0)]  # duplicate inside the batch
    late = [("DM-2", "dust_monitor", now - 3600 * S, "pm10", 70.0)]  # late: good
    replay = b1[:3]  # an agent's replay: rewrites, harmless
    seen: list[pl.DataFrame] = []

    def bad_hook(frame: pl.DataFrame) -> None:
        raise RuntimeError("a broken hook must not stop ingest")

    cfg = _cfg(tmp_path, mqtt_broker, influx)
    service = IngestService(cfg, hooks=[seen.append, bad_hook], client_id=f"t-{time.time_ns()}")
    with _running(service):
        _publish(mqtt_broker, [_batch(1, b1), b"\x00garbage{", _batch(2, late), _batch(3, replay)])
        _wait_for(lambda: service.metrics()["batches_done"] == 4)
        m = service.metrics()

    assert m["quarantined"] == {"unknown_device": 1, "duplicate": 1, "bad_batch": 1}
    assert m["rows_in"] == 13 + 1 + 3 and m["rows_written"] == 11 + 1 + 3
    assert m["hook_errors"] >= 1  # once per handled group of messages
    assert sum(f.height for f in seen) == 15

    store = InfluxStore(influx)
    try:
        res = store.query('SELECT "pm10" FROM "dust_monitor" WHERE "device_id" = \'DM-1\'')
        values = res[0]["series"][0]["values"]
        assert sorted(values) == sorted([[now - i * S, 50.0 + i] for i in range(10)])
        assert store.range("DM-2", "pm 2.5", now - S, now + S).rows() == [(now, 30.0)]
        assert store.range("DM-2", "pm10", now - 7200 * S, now + S).rows() == [
            (now - 3600 * S, 70.0)
        ]
        assert (
            "series"
            not in store.query('SELECT * FROM "dust_monitor" WHERE "device_id" = \'XX-9\'')[0]
        )
        latest = store.latest("dust_monitor")
        assert latest.filter(pl.col("device_id") == "DM-1").rows() == [
            ("DM-1", "dust_monitor", now, "pm10", 50.0)
        ]
    finally:
        store.close()

    q = Quarantine(cfg.path("quarantine.db"))
    assert q.counts() == {"unknown_device": 1, "duplicate": 1, "bad_batch": 1}
    q.close()


def test_influx_store_reads_and_downsampling(influx):
    store = InfluxStore(influx)
    try:
        store.ensure_database()  # exists already: harmless
        t0 = 1_763_942_400 * S
        rows = [("DM-1", "dust_monitor", t0 + i * 10 * S, "pm10", float(i)) for i in range(12)]
        rows += [
            ("TRK-1", "vehicle", t0 + S, f, v)
            for f, v in (("lat", 30.6), ("lon", 104.1), ("speed", 12.0), ("heading", 90.0))
        ]
        frame = pl.DataFrame(rows, schema=SCHEMA, orient="row")
        assert store.write(frame) == 16
        assert store.write(frame) == 16  # rewrite: same points
        assert store.range("DM-1", "pm10", t0, t0 + 120 * S).height == 12
        assert store.range("DM-1", "pm10", t0, t0 + 120 * S, every_s=60).rows() == [
            (t0, 2.5),
            (t0 + 60 * S, 8.5),
        ]
        mx = store.range("DM-1", "pm10", t0, t0 + 120 * S, every_s=60, agg="max")
        assert mx.get_column("value").to_list() == [5.0, 11.0]
        assert store.track("TRK-1", t0, t0 + 10 * S).rows() == [(t0 + S, 30.6, 104.1, 12.0, 90.0)]
        assert store.latest().height == 5
        ev = AlarmEvent(
            alarm_id="A 1",
            rule_id="r",
            domain="dust",
            device_id="DM-1",
            subject="DM-1",
            field="pm10",
            severity=Severity.MAJOR,
            raised_ns=t0,
            updated_ns=t0,
            message='PM10 "high", 250 > 200',
        )
        store.write_alarm(ev)
        store.write_alarm(
            ev.model_copy(update={"state": AlarmState.ACKNOWLEDGED, "updated_ns": t0 + S})
        )
        hist = store.alarm_history(t0, t0 + 10 * S)
        assert hist.get_column("state").to_list() == ["open", "acknowledged"]
        assert hist.get_column("message").to_list()[0] == 'PM10 "high", 250 > 200'
        assert store.latest().height == 5  # alarm points are not telemetry
    finally:
        store.close()


def test_gzip_bodies_land_in_influx(influx, influx_server):
    # InfluxDB inflates Content-Encoding: gzip bodies itself (nginx passes them through).
    writes_log = influx_server.workdir / "writes.log"
    before = writes_log.read_text().splitlines() if writes_log.exists() else []
    store = InfluxStore(influx.model_copy(update={"gzip": True}), chunk_lines=100)
    try:
        t0 = 1_763_942_400 * S
        rows = [("DM-1", "dust_monitor", t0 + i * S, "pm10", float(i)) for i in range(250)]
        assert store.write(pl.DataFrame(rows, schema=SCHEMA, orient="row")) == 250
        got = store.range("DM-1", "pm10", t0, t0 + 250 * S)
        assert got.get_column("value").to_list() == [float(i) for i in range(250)]
    finally:
        store.close()
    # nginx writes its access log line when the request ends; it has, the data is back
    sent = [line.split() for line in writes_log.read_text().splitlines()[len(before) :]]
    assert [enc for enc, _n in sent] == ["gzip"] * 3
    # 100 lines of ~55 bytes each would be ~5.5 kB per request uncompressed
    assert all(int(n) < 2500 for _enc, n in sent)


def test_unreachable_influx_raises_store_unavailable():
    from bench.servers import free_port
    from contracts.config import InfluxConfig as IC
    from ingest.store import StoreUnavailable

    cfg = IC(url=f"http://127.0.0.1:{free_port()}", bucket="x", timeout_s=1)
    store = InfluxStore(cfg, retries=3, backoff_s=0.01)
    frame = pl.DataFrame([("D", "k", 1, "v", 1.0)], schema=list(SCHEMA), orient="row")
    with pytest.raises(StoreUnavailable, match="after 3 attempts"):
        store.write(frame)
    assert store.failures == 3
    store.close()


def test_influx_down_mid_stream_then_back_every_row_once(
    tmp_path, mqtt_broker, influx, influx_server
):
    now = time.time_ns() // S * S
    cfg = _cfg(tmp_path, mqtt_broker, influx)
    service = IngestService(cfg, retry_max_s=0.3, client_id=f"t-{time.time_ns()}")

    def rows(seq: int) -> list[tuple]:
        return [
            ("DM-1", "dust_monitor", now - (seq * 100 + i) * S, "pm10", float(seq * 100 + i))
            for i in range(50)
        ]

    with _running(service):
        _publish(mqtt_broker, [_batch(1, rows(1))])
        _wait_for(lambda: service.metrics()["rows_written"] == 50)
        influx_server.stop_influxd()
        try:
            _publish(mqtt_broker, [_batch(2, rows(2)), _batch(3, rows(3))])
            _wait_for(lambda: service.metrics()["write_errors"] >= 2)
            assert service.metrics()["rows_written"] == 50  # nothing claimed while down
        finally:
            influx_server.start_influxd()
        _wait_for(lambda: service.metrics()["rows_written"] == 150, timeout_s=30)
    store = InfluxStore(influx)
    try:
        res = store.query('SELECT count("pm10") FROM "dust_monitor"')
    finally:
        store.close()
    assert res[0]["series"][0]["values"][0][1] == 150
