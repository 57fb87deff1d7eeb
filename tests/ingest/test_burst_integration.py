"""A burst of malformed messages among good ones, and duplicates, against a real Mosquitto
and the embedded store or a real InfluxDB: exact counts per reason, quarantine rows,
every good row stored exactly once, /metrics over real HTTP."""

from __future__ import annotations

import json
import random
import time
from collections import Counter

import pytest

from contracts import topics
from contracts.telemetry import TelemetryBatch, TelemetryRow
from contracts.telemetry_arrow import encode_batch
from ingest.quarantine import Quarantine
from ingest.service import IngestService
from tests.ingest.fleet import (
    DUST,
    TRACKER_FILTER,
    TRUCKS,
    S,
    city_cfg,
    publish,
    scrape,
    stored,
    v1_doc,
)
from tests.ingest.test_service_integration import _running, _wait_for

pytestmark = pytest.mark.servers
TELE = topics.telemetry(0, "agent-1")


class _Burst:
    """Builds the mixed messages and what must come of them."""

    def __init__(self, now: int, seed: int = 5) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.k = 0
        self.good: set[tuple] = set()  # (device, field, ts, value)
        self.reasons: Counter[str] = Counter()
        self.messages: list[tuple[str, bytes]] = []

    def ts(self) -> int:
        self.k += 1
        return self.now - self.k * S  # every row its own instant: no rewrites by accident

    def rows(self, n: int) -> list[tuple]:
        dev = self.rng.choice(DUST)
        return [
            (dev, "dust_monitor", self.ts(), "pm10", float(self.rng.randint(5, 300)))
            for _ in range(n)
        ]

    def keep(self, rows: list[tuple]) -> None:
        self.good |= {(d, f, t, v) for d, _k, t, f, v in rows}

    def good_v1(self) -> None:
        rows = self.rows(10)
        self.keep(rows)
        self.messages.append((TELE, v1_doc(rows)))

    def good_v2(self) -> None:
        rows = self.rows(10)
        self.keep(rows)
        b = TelemetryBatch(agent="agent-1", seq=1)
        b.extend([TelemetryRow(*r) for r in rows])
        self.messages.append((TELE, encode_batch(b)))

    def garbage(self) -> None:
        junk = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 300)))
        self.messages.append((TELE, b"\x00" + junk))
        self.reasons["bad_batch"] += 1

    def truncated_arrow(self) -> None:
        b = TelemetryBatch(agent="agent-1", seq=1)
        b.extend([TelemetryRow(*r) for r in self.rows(10)])
        p = encode_batch(b)
        self.messages.append((TELE, p[: self.rng.randint(8, len(p) - 8)]))
        self.reasons["bad_batch"] += 1

    def json_wrong_types(self) -> None:
        rows = self.rows(8)
        bad = [
            (*rows[1][:4], "12.5"),  # a string value
            (*rows[3][:2], "yesterday", *rows[3][3:]),  # a string timestamp
            (*rows[5][:4], [1]),  # an array value
        ]
        rows[1], rows[3], rows[5] = bad
        self.keep([r for i, r in enumerate(rows) if i not in (1, 3, 5)])
        self.messages.append((TELE, v1_doc(rows)))
        self.reasons["wrong_type"] += 3

    def tracker(self, bad_member: bool = False, nan: bool = False) -> None:
        dev, t = self.rng.choice(TRUCKS), self.ts()
        fix = {"devId": dev, "gpsTime": t // 1_000_000, "lat": 30.6, "lng": 104.05, "spd": 12.5}
        if bad_member:
            fix["lng"] = "104.05E"
            self.reasons["wrong_type"] += 1
        if nan:
            fix["spd"] = float("nan")  # json.dumps writes NaN, which Python's reader accepts
            self.reasons["non_finite"] += 1
        for member, field in (("lat", "lat"), ("lng", "lon"), ("spd", "speed")):
            if isinstance(fix[member], float) and fix[member] == fix[member]:
                self.good.add((dev, field, t, fix[member]))
        self.messages.append((f"trackers/{dev}/gps", json.dumps(fix).encode()))

    def tracker_not_json(self) -> None:
        self.messages.append(("trackers/TRK-0001/gps", b'{"devId": "TRK-0001", "gpsT'))
        self.reasons["bad_batch"] += 1

    def unknown_device(self) -> None:
        rows = self.rows(2)
        self.keep(rows)
        rows += [("XX-404", "dust_monitor", self.ts(), "pm10", 50.0) for _ in range(3)]
        self.messages.append((TELE, v1_doc(rows)))
        self.reasons["unknown_device"] += 3

    def out_of_range(self) -> None:
        rows = self.rows(5)
        rows[2] = (*rows[2][:4], -5.0)
        self.keep([r for i, r in enumerate(rows) if i != 2])
        self.messages.append((TELE, v1_doc(rows)))
        self.reasons["out_of_range"] += 1

    def build(self, n: int) -> None:
        kinds = [
            self.good_v1,
            self.good_v2,
            self.garbage,
            self.truncated_arrow,
            self.json_wrong_types,
            self.tracker,
            lambda: self.tracker(bad_member=True),
            lambda: self.tracker(nan=True),
            self.tracker_not_json,
            self.unknown_device,
            self.out_of_range,
        ]
        for i in range(n):
            # every kind at least once, then at random
            (kinds[i] if i < len(kinds) else self.rng.choice(kinds))()


@pytest.mark.parametrize("backend", ["embedded", "influx"])
def test_burst_of_malformed_messages(tmp_path, mqtt_broker, request, backend):
    influx = request.getfixturevalue("influx") if backend == "influx" else None
    now = time.time_ns() // S * S
    burst = _Burst(now)
    burst.build(200)
    n_good = len(burst.good)
    cfg = city_cfg(tmp_path, mqtt_broker, influx, ingest={"metrics_port": 0})
    service = IngestService(cfg, tracker_topic=TRACKER_FILTER, client_id=f"t-{time.time_ns()}")
    with _running(service):
        publish(mqtt_broker, burst.messages)
        _wait_for(lambda: service.metrics()["batches_done"] == 200, timeout_s=60)
        m = service.metrics()
        scraped = scrape(service.metrics_server.port)  # type: ignore[union-attr]
        # still alive: a good message after the burst is stored
        last = [("DM-1", "dust_monitor", now + S, "pm10", 42.0)]
        publish(mqtt_broker, [(TELE, v1_doc(last))])
        _wait_for(lambda: service.metrics()["rows_written"] == n_good + 1)
    burst.keep(last)

    n_rows_bad = sum(n for r, n in burst.reasons.items() if r != "bad_batch")
    assert m["quarantined"] == dict(burst.reasons)
    assert m["rows_good"] == m["rows_written"] == n_good
    assert m["rows_in"] == n_good + n_rows_bad
    assert m["rows_quarantined"] == n_rows_bad
    for reason, n in burst.reasons.items():
        assert scraped[f'rg_ingest_quarantined_total{{reason="{reason}"}}'] == n
    assert scraped['rg_ingest_rows_total{stage="written"}'] == n_good
    assert scraped["rg_ingest_spill_depth_rows"] == 0
    assert scraped["rg_ingest_write_latency_seconds_count"] == m["writes"] > 0
    assert "rg_ingest_lag_seconds" in scraped

    q = Quarantine(cfg.path("quarantine.db"))
    try:
        assert q.counts() == dict(burst.reasons)
        assert len(q) == sum(burst.reasons.values())  # one entry per row or bad payload
        raws = [json.loads(p)["raw"] for p in q.recent(1000, "wrong_type")["payload"]]
        assert '{"x": "12.5"}' in raws and '{"t": "yesterday"}' in raws
        assert '{"lng": "104.05E"}' in raws
    finally:
        q.close()

    pairs = {(d, f) for d, f, _t, _v in burst.good}
    got = stored(cfg, pairs, now - 86400 * S, now + 2 * S)
    assert len(got) == len(burst.good) and set(got) == burst.good


@pytest.mark.parametrize("backend", ["embedded", "influx"])
def test_duplicates_first_inside_a_message_last_across_messages(
    tmp_path, mqtt_broker, request, backend
):
    influx = request.getfixturevalue("influx") if backend == "influx" else None
    t = time.time_ns() // S * S
    cfg = city_cfg(tmp_path, mqtt_broker, influx)
    service = IngestService(cfg, client_id=f"t-{time.time_ns()}")
    one = ("DM-1", "dust_monitor", t, "pm10")
    two = ("DM-2", "dust_monitor", t, "pm10")
    with _running(service):
        # inside one message the first wins; the repeat is quarantined as a duplicate
        publish(mqtt_broker, [(TELE, v1_doc([(*one, 1.0), (*one, 2.0), (*two, 1.0)]))])
        _wait_for(lambda: service.metrics()["batches_done"] == 1)
        # across messages the last wins, whether they are written apart or together
        publish(mqtt_broker, [(TELE, v1_doc([(*one, 3.0)]))])
        _wait_for(lambda: service.metrics()["batches_done"] == 2)
        publish(mqtt_broker, [(TELE, v1_doc([(*two, 4.0)])), (TELE, v1_doc([(*two, 5.0)]))])
        _wait_for(lambda: service.metrics()["batches_done"] == 4)
        m = service.metrics()
    assert m["quarantined"] == {"duplicate": 1}
    got = stored(cfg, [("DM-1", "pm10"), ("DM-2", "pm10")], t - S, t + S)
    assert sorted(got) == [("DM-1", "pm10", t, 3.0), ("DM-2", "pm10", t, 5.0)]
