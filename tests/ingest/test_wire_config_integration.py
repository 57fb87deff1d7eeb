"""Real Mosquitto: v1 and v2 agent batches side by side; the ``ingest:`` config section."""

from __future__ import annotations

import json
import time

import pytest

from contracts.config import BrokerConfig, DeploymentConfig, InfluxConfig, StoreConfig
from contracts.mqtt import make_client
from contracts.telemetry import TelemetryBatch, TelemetryRow
from contracts.telemetry_arrow import encode_batch
from ingest.quarantine import Quarantine
from ingest.service import IngestService
from ingest.store import open_store
from ingest.store.influx import InfluxStore
from tests.ingest.test_service_integration import _publish, _running, _wait_for

pytestmark = pytest.mark.servers
S = 1_000_000_000
_MODBUS = {"protocol": "modbus", "profile": "modbus_dust_monitor", "endpoint": "modbus://h:1"}


def _cfg(tmp_path, broker: BrokerConfig, influx: InfluxConfig | None, **ingest) -> DeploymentConfig:
    devices = [
        {"id": "DM-1", "kind": "dust_monitor", **_MODBUS},
        {
            "id": "TRK-1",
            "kind": "vehicle",
            "protocol": "mqtt_tracker",
            "profile": "mqtt_json_tracker",
            "endpoint": "trackers/TRK-1/gps",
        },
    ]
    return DeploymentConfig.model_validate(
        {
            "var_dir": str(tmp_path),
            "broker": broker.model_dump(),
            "store": StoreConfig(influx=influx).model_dump(),
            "agents": [{"id": "agent-1", "devices": devices}],
            "ingest": ingest,
        }
    )


def _rows(seq: int, rows: list[tuple]) -> TelemetryBatch:
    b = TelemetryBatch(agent="agent-1", seq=seq, sent_ns=time.time_ns())
    b.extend([TelemetryRow(*r) for r in rows])
    return b


def test_v1_and_v2_batches_both_stored(tmp_path, mqtt_broker, influx):
    now = time.time_ns() // S * S
    v1 = _rows(1, [("DM-1", "dust_monitor", now - i * S, "pm10", 40.0 + i) for i in range(5)])
    v2 = _rows(2, [("DM-1", "dust_monitor", now - i * S, "pm25", 20.0 + i) for i in range(5)])
    v2.append(TelemetryRow("DM-1", "dust_monitor", now, "noise", float("nan")))  # non_finite
    cfg = _cfg(tmp_path, mqtt_broker, influx)
    service = IngestService(cfg, client_id=f"t-{time.time_ns()}")
    with _running(service):
        bad_v2 = encode_batch(v2)[:-40]  # cut short: a broken Arrow stream
        _publish(mqtt_broker, [v1.encode(), encode_batch(v2), bad_v2])
        _wait_for(lambda: service.metrics()["batches_done"] == 3, timeout_s=30)
        m = service.metrics()
    assert m["rows_written"] == 10
    assert m["quarantined"] == {"non_finite": 1, "bad_batch": 1}
    store = InfluxStore(influx)
    try:
        for field, base in (("pm10", 40.0), ("pm25", 20.0)):
            got = store.range("DM-1", field, now - 10 * S, now + S)
            assert sorted(got.get_column("value").to_list()) == [base + i for i in range(5)]
    finally:
        store.close()


def test_ingest_config_section_takes_effect(tmp_path, mqtt_broker):
    cfg = _cfg(
        tmp_path,
        mqtt_broker,
        None,
        max_future_s=10,
        max_past_s=60,
        limits={"dust_monitor.pm10": [0, 100]},
        tracker_topic="trackers/+/gps",
        spill_max_rows=1234,
        spill_policy="drop_oldest",
    )
    now = time.time_ns() // S * S
    rows = [
        ("DM-1", "dust_monitor", now, "pm10", 50.0),  # good
        ("DM-1", "dust_monitor", now - 1 * S, "pm10", 150.0),  # over the configured 100
        ("DM-1", "dust_monitor", now + 30 * S, "pm10", 50.0),  # 30 s ahead > 10 s
        ("DM-1", "dust_monitor", now - 120 * S, "pm10", 50.0),  # 2 min old > 60 s
        ("DM-1", "dust_monitor", now - 30 * S, "pm10", 60.0),  # late but inside 60 s: good
    ]
    service = IngestService(cfg, client_id=f"t-{time.time_ns()}")
    assert (service.max_future_s, service.max_past_s) == (10, 60)
    assert service.tracker_topic == "trackers/+/gps"
    with _running(service):
        assert service.spill is not None
        assert (service.spill.max_rows, service.spill.policy) == (1234, "drop_oldest")
        _publish(mqtt_broker, [encode_batch(_rows(1, rows))])
        fix = {"devId": "TRK-1", "gpsTime": now // 1_000_000, "lat": 30.6, "lng": 104.0}
        client = make_client(mqtt_broker, "test-tracker")
        client.connect(mqtt_broker.host, mqtt_broker.port)
        client.loop_start()
        try:
            client.publish("trackers/TRK-1/gps", json.dumps(fix), qos=1).wait_for_publish(10)
        finally:
            client.disconnect()
            client.loop_stop()
        _wait_for(lambda: service.metrics()["batches_done"] == 2, timeout_s=30)
        m = service.metrics()
    assert m["quarantined"] == {"out_of_range": 1, "ts_future": 1, "ts_past": 1}
    assert m["tracker_messages"] == 1
    assert m["rows_written"] == 2 + 2
    q = Quarantine(cfg.path("quarantine.db"))
    assert q.counts() == {"out_of_range": 1, "ts_future": 1, "ts_past": 1}
    q.close()
    store = open_store(cfg)
    try:
        assert store.track("TRK-1", now - S, now + S).height == 1
    finally:
        store.close()


def test_influx_store_posts_bodies_on_two_connections(influx):
    import polars as pl

    from ingest.frames import SCHEMA

    t0 = 1_763_942_400 * S
    rows = [("DM-1", "dust_monitor", t0 + i, "pm10", float(i)) for i in range(2500)]
    frame = pl.DataFrame(rows, schema=SCHEMA, orient="row")
    store = InfluxStore(influx, chunk_lines=300, connections=2)
    try:
        assert store.write(frame) == 2500
        res = store.query('SELECT count("pm10"), sum("pm10") FROM "dust_monitor"')
        assert res[0]["series"][0]["values"][0][1:] == [2500, sum(range(2500))]
    finally:
        store.close()
