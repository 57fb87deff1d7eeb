"""Spill, refusals and trackers against a real Mosquitto (tight queues) and a real InfluxDB."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from bench.servers import Mosquitto
from contracts.config import BrokerConfig
from contracts.mqtt import make_client
from ingest.quarantine import Quarantine
from ingest.service import IngestService
from ingest.store.influx import InfluxStore
from tests.ingest.fleet import pm10_count
from tests.ingest.test_service_integration import _batch, _cfg, _publish, _running, _wait_for

pytestmark = pytest.mark.servers
S = 1_000_000_000


@pytest.fixture
def tight_broker(tmp_path: Path):
    # At most a handful of messages queued per client, then dropped.
    tight = {"max_inflight_messages": 2, "max_queued_messages": 5}
    broker = Mosquitto(tmp_path / "mqtt", settings=tight).start()
    yield BrokerConfig(url=broker.url)
    broker.stop()


def _rows(now: int, seq: int) -> list[tuple]:
    return [
        ("DM-1", "dust_monitor", now - (seq * 100 + i) * S, "pm10", float(seq * 100 + i))
        for i in range(50)
    ]


def test_influx_down_longer_than_broker_queues_every_row_once(
    tmp_path, tight_broker, influx, influx_server
):
    now = time.time_ns() // S * S
    n = 30  # far more than the broker's 2 in flight + 5 queued
    cfg = _cfg(tmp_path, tight_broker, influx)
    service = IngestService(cfg, retry_max_s=0.3, client_id=f"t-{time.time_ns()}")
    with _running(service):
        _publish(tight_broker, [_batch(1, _rows(now, 1))])
        _wait_for(lambda: service.metrics()["rows_written"] == 50)
        influx_server.stop_influxd()
        try:
            # One at a time (a burst would overflow 2 + 5 even with InfluxDB up): each is
            # acknowledged once spilled, so the broker never holds more than one.
            for s in range(2, n + 2):
                _publish(tight_broker, [_batch(s, _rows(now, s))])
                _wait_for(lambda s=s: service.metrics()["batches_done"] == s, timeout_s=20)
            m = service.metrics()
            assert m["spill"]["spilled"] >= n - 2 and m["spill_depth_rows"] >= (n - 2) * 50
        finally:
            influx_server.start_influxd()
        _wait_for(lambda: service.metrics()["spill_depth_rows"] == 0, timeout_s=30)
        m = service.metrics()
    assert m["spill"]["replayed"] == m["spill"]["spilled"] and m["spill"]["dropped"] == 0
    assert pm10_count(influx) == (n + 1) * 50


def test_field_type_conflict_is_quarantined_not_retried(tmp_path, mqtt_broker, influx):
    now = time.time_ns() // S * S
    # InfluxDB keeps field types per shard (weekly, from Monday 00:00 UTC): each float
    # that conflicts has a string at its own timestamp, so in its shard, on any day.
    store = InfluxStore(influx)
    store.write_lines(
        "\n".join(f'dust_monitor,device_id=DM-9 noise="loud" {now - i * S}' for i in range(10))
    )
    store.close()
    rows = [("DM-1", "dust_monitor", now - i * S, "pm10", 80.0 + i) for i in range(90)]
    rows += [("DM-2", "dust_monitor", now - i * S, "noise", 60.0) for i in range(10)]
    cfg = _cfg(tmp_path, mqtt_broker, influx)
    service = IngestService(cfg, client_id=f"t-{time.time_ns()}")
    with _running(service):
        _publish(mqtt_broker, [_batch(1, rows)])
        _wait_for(lambda: service.metrics()["batches_done"] == 1)
        m = service.metrics()
    assert m["quarantined"] == {"store_refused": 10}
    assert pm10_count(influx) == 90
    q = Quarantine(cfg.path("quarantine.db"))
    assert q.counts() == {"store_refused": 10}
    q.close()


def test_out_of_range_and_tracker_json(tmp_path, mqtt_broker, influx):
    now = time.time_ns() // S * S
    cfg = _cfg(tmp_path, mqtt_broker, influx)
    service = IngestService(
        cfg, tracker_topic="trackers/+/gps", client_id=f"t-{time.time_ns()}", log_every_s=0.1
    )
    fix = {"devId": "TRK-9", "gpsTime": now // 1_000_000, "lat": 30.6, "lng": 104.0, "spd": 999}
    with _running(service):
        _publish(
            mqtt_broker,
            [_batch(1, [("DM-1", "dust_monitor", now, "pm10", -5.0)])],
        )
        client = make_client(mqtt_broker, "tracker-pub")
        client.connect(mqtt_broker.host, mqtt_broker.port)
        client.loop_start()
        client.publish("trackers/TRK-9/gps", json.dumps(fix), qos=1).wait_for_publish(10)
        client.publish("trackers/TRK-9/gps", b"[1, 2]", qos=1).wait_for_publish(10)
        client.disconnect()
        client.loop_stop()
        _wait_for(lambda: service.metrics()["batches_done"] == 3)
        m = service.metrics()
    # TRK-9 is not in the inventory: its three rows are refused as unknown_device.
    assert m["quarantined"] == {"out_of_range": 1, "unknown_device": 3, "bad_batch": 1}
    assert m["tracker_messages"] == 2
