"""Two ingest workers, each owning one of two partitions, against a real Mosquitto and a
real InfluxDB: every row stored once, no device handled by both, trackers included,
each worker with its own spill and quarantine file."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from contextlib import ExitStack

import polars as pl
import pytest

from contracts import topics
from contracts.telemetry import TelemetryBatch, TelemetryRow
from contracts.telemetry_arrow import encode_batch
from ingest.quarantine import Quarantine
from ingest.service import IngestService
from tests.ingest.fleet import DUST, TRACKER_FILTER, TRUCKS, S, city_cfg, publish, stored
from tests.ingest.test_service_integration import _running, _wait_for

pytestmark = pytest.mark.servers


def test_two_workers_two_partitions_each_device_once(tmp_path, mqtt_broker, influx):
    now = time.time_ns() // S * S
    cfg = city_cfg(tmp_path, mqtt_broker, influx, partitions=2)
    owner = {d: topics.partition_of(d, 2) for d in DUST + TRUCKS}
    assert set(owner.values()) == {0, 1}, "the fleet must span both partitions"

    messages: list[tuple[str, bytes]] = []
    expected: set[tuple] = set()
    for seq in range(1, 21):
        # an agent splits its rows by partition, as edge_agent's outbox does
        per_part: dict[int, list[TelemetryRow]] = defaultdict(list)
        for dev in DUST:
            row = TelemetryRow(dev, "dust_monitor", now - seq * S, "pm10", float(seq))
            per_part[owner[dev]].append(row)
            expected.add((dev, "pm10", row.ts, row.value))
        for part, rows in sorted(per_part.items()):
            b = TelemetryBatch(agent="agent-1", seq=seq)
            b.extend(rows)
            messages.append((topics.telemetry(part, "agent-1"), encode_batch(b)))
        for dev in TRUCKS:
            fix = {"devId": dev, "gpsTime": (now - seq * S) // 1_000_000, "lat": 30.6, "spd": 9.0}
            messages.append((f"trackers/{dev}/gps", json.dumps(fix).encode()))
            expected |= {(dev, "lat", now - seq * S, 30.6), (dev, "speed", now - seq * S, 9.0)}
    # one refused fix per partition: each must land in its owner's quarantine only
    bad = {p: next(d for d in TRUCKS if owner[d] == p) for p in (0, 1)}
    for dev in bad.values():
        fix = {"devId": dev, "gpsTime": now // 1_000_000, "lat": 30.6, "spd": "fast"}
        messages.append((f"trackers/{dev}/gps", json.dumps(fix).encode()))
        expected.add((dev, "lat", now, 30.6))

    seen: dict[int, list[pl.DataFrame]] = {0: [], 1: []}
    workers = {
        p: IngestService(
            cfg,
            partition=p,
            hooks=[seen[p].append],
            tracker_topic=TRACKER_FILTER,
            client_id=f"t-p{p}-{time.time_ns()}",
        )
        for p in (0, 1)
    }
    n_tracker_msgs = 20 * len(TRUCKS) + 2
    with ExitStack() as stack:
        for w in workers.values():
            stack.enter_context(_running(w))
        publish(mqtt_broker, messages)
        for w in workers.values():
            # each worker gets its own partition's batches plus every tracker message
            _wait_for(lambda w=w: w.metrics()["tracker_messages"] == n_tracker_msgs, 60)
        total = len(expected)
        _wait_for(lambda: sum(w.metrics()["rows_written"] for w in workers.values()) == total, 60)
        m = {p: w.metrics() for p, w in workers.items()}

    devices = {p: set(pl.concat(seen[p]).get_column("device_id")) for p in (0, 1)}
    assert not devices[0] & devices[1], "a device was handled by both workers"
    assert devices[0] | devices[1] == set(DUST + TRUCKS)
    assert all(owner[d] == p for p in (0, 1) for d in devices[p])
    # every row once: the hooks saw each row once in all, and the store holds each once
    rows = pl.concat(seen[0] + seen[1])
    assert rows.height == total == rows.unique().height
    got = stored(cfg, {(d, f) for d, f, _t, _v in expected}, now - 60 * S, now + S)
    assert len(got) == total and set(got) == expected
    # tracker rows of the other partition's trucks are counted, not stored or quarantined
    truck_rows = {p: sum(2 for d in TRUCKS if owner[d] == p) * 20 + 2 for p in (0, 1)}
    assert m[0]["rows_not_mine"] == truck_rows[1] and m[1]["rows_not_mine"] == truck_rows[0]
    for p in (0, 1):
        assert m[p]["quarantined"] == {"wrong_type": 1}
        assert cfg.path(f"spill-p{p}.db").exists()
        q = Quarantine(cfg.path(f"quarantine-p{p}.db"))
        try:
            rec = json.loads(q.recent(10)["payload"][0])
            assert q.counts() == {"wrong_type": 1} and rec["device_id"] == bad[p]
        finally:
            q.close()
    assert not cfg.path("spill.db").exists() and not cfg.path("quarantine.db").exists()
