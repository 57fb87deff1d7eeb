"""InfluxDB stopped under a continuous stream, and a slow InfluxDB, with a real Mosquitto
and a real influxd: every row stored exactly once; a slow store means backpressure, not
spilling."""

from __future__ import annotations

import http.server
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from contracts import topics
from contracts.config import BrokerConfig, InfluxConfig
from contracts.mqtt import make_client
from ingest.service import IngestService
from tests.ingest.fleet import S, city_cfg, pm10_count, publish, v1_doc
from tests.ingest.test_service_integration import _running, _wait_for

pytestmark = pytest.mark.servers
TELE = topics.telemetry(0, "agent-1")
ROWS_PER_BATCH = 20


def _rows(now: int, seq: int) -> list[tuple]:
    dev = ("DM-1", "DM-2", "DM-3")[seq % 3]
    return [
        (dev, "dust_monitor", now - (seq * ROWS_PER_BATCH + i) * S, "pm10", float(seq))
        for i in range(ROWS_PER_BATCH)
    ]


class _Stream(threading.Thread):
    """Publishes one batch every ``every_s`` until ``done`` is set and ``at_least`` went out."""

    def __init__(self, broker: BrokerConfig, now: int, at_least: int, every_s: float = 0.01):
        super().__init__(daemon=True)
        self.broker, self.now, self.at_least, self.every_s = broker, now, at_least, every_s
        self.done = threading.Event()
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        client = make_client(self.broker, "stream-pub")
        client.connect(self.broker.host, self.broker.port)
        client.loop_start()
        try:
            while self.sent < self.at_least or not self.done.is_set():
                payload = v1_doc(_rows(self.now, self.sent + 1), seq=self.sent + 1)
                client.publish(TELE, payload, qos=1).wait_for_publish(30)
                self.sent += 1
                self.done.wait(self.every_s)  # the stream's pace, not a wait for a result
        except BaseException as exc:  # surfaced by the test
            self.error = exc
        finally:
            client.disconnect()
            client.loop_stop()


def test_influx_stopped_mid_stream_every_row_once(tmp_path, mqtt_broker, influx, influx_server):
    now = time.time_ns() // S * S
    cfg = city_cfg(tmp_path, mqtt_broker, influx)
    service = IngestService(cfg, retry_max_s=0.3, client_id=f"t-{time.time_ns()}")
    stream = _Stream(mqtt_broker, now, at_least=200)
    with _running(service):
        stream.start()
        try:
            # writes are happening: stop influxd under them
            _wait_for(lambda: service.metrics()["rows_written"] >= 50 * ROWS_PER_BATCH, 60)
            influx_server.stop_influxd()
            try:
                _wait_for(lambda: service.metrics()["spill"]["spilled"] >= 5, 60)
                assert service.metrics()["write_errors"] >= 1
            finally:
                influx_server.start_influxd()
            # the stream keeps flowing while the spill replays
            _wait_for(lambda: service.metrics()["spill"]["replayed"] >= 5, 60)
        finally:
            stream.done.set()
            stream.join(60)
        assert stream.error is None and not stream.is_alive()
        sent = stream.sent
        _wait_for(lambda: service.metrics()["batches_done"] == sent, 120)
        _wait_for(lambda: service.metrics()["spill_depth_rows"] == 0, 60)
        m = service.metrics()
    rows = sent * ROWS_PER_BATCH
    assert sent >= 200 and pm10_count(influx) == rows
    assert m["rows_in"] == m["rows_good"] == m["rows_written"] == rows
    assert m["spill"]["replayed"] == m["spill"]["spilled"] > 0
    assert m["spill"]["dropped"] == 0 and m["quarantined"] == {}


class _SlowProxy(http.server.ThreadingHTTPServer):
    """An HTTP proxy to ``target`` that answers every request ``delay_s`` late."""

    daemon_threads = True

    def __init__(self, target: str, delay_s: float) -> None:
        self.target, self.delay_s, self.requests = target, delay_s, 0
        super().__init__(("127.0.0.1", 0), _ProxyHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    server: _SlowProxy

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
        keep = ("Content-Type", "Content-Encoding", "Authorization", "Accept")
        req = urllib.request.Request(
            self.server.target + self.path,
            data=body,
            method=self.command,
            headers={k: v for k, v in self.headers.items() if k in keep},
        )
        self.server.requests += 1
        time.sleep(self.server.delay_s)  # the slowness under test
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, headers, data = resp.status, resp.headers, resp.read()
        except urllib.error.HTTPError as exc:
            status, headers, data = exc.code, exc.headers, exc.read()
        self.send_response(status)
        for k in ("Content-Type", "X-Influxdb-Version", "X-Influxdb-Error"):
            if headers.get(k):
                self.send_header(k, headers[k])
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _forward

    def log_message(self, *args) -> None:  # quiet
        pass


@pytest.fixture
def slow_influx(influx: InfluxConfig, influx_server) -> Iterator[tuple[InfluxConfig, _SlowProxy]]:
    proxy = _SlowProxy(influx_server.url, delay_s=0.5)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    yield influx.model_copy(update={"url": proxy.url}), proxy
    proxy.shutdown()
    proxy.server_close()


def test_slow_influx_means_backpressure_not_spill(tmp_path, mqtt_broker, slow_influx, influx):
    slow, proxy = slow_influx
    now = time.time_ns() // S * S
    cfg = city_cfg(tmp_path, mqtt_broker, slow)
    n = 24
    # small queues and one message per write, so the intake must wait on the slow store
    service = IngestService(
        cfg, queue_size=4, max_rows_per_write=20, client_id=f"t-{time.time_ns()}"
    )
    with _running(service):
        publish(mqtt_broker, [(TELE, v1_doc(_rows(now, s), seq=s)) for s in range(1, n + 1)])
        _wait_for(lambda: service.metrics()["batches_done"] == n, 120)
        m = service.metrics()
    assert m["queue_waits"] > 0  # the network thread waited: backpressure reached the broker
    assert m["write_errors"] == 0 and m["spill"]["spilled"] == 0
    assert m["rows_written"] == n * ROWS_PER_BATCH
    assert m["write_latency_ms"]["p50"] >= 500  # every write went through the slow proxy
    assert proxy.requests >= m["writes"] > 0
    assert pm10_count(influx) == n * ROWS_PER_BATCH
