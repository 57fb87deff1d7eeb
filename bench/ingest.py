"""Ingest throughput: raw InfluxDB ceiling vs Rongguan's full MQTT → InfluxDB path.

One run starts its own Mosquitto and influxd 1.6.7 behind nginx (``tests.servers``) in a
temporary directory and measures, on the same rows and the same body size:

(a) ceiling: pre-encoded line protocol POSTed to ``/api/v2/write`` on one keep-alive
    connection, one body after the other (the way ingest's single writer works);
(b) full path: agent-format batches published on MQTT by a separate publisher process,
    as fast as ingest keeps up (at most ``window`` unfinished batches), through
    decode → validate → encode → InfluxDB in :class:`IngestService`; rows/s is what the
    database holds at the end (counted with InfluxQL) over the wall time;
(c) line-protocol encoding vs influxdb-client ``Point`` (:mod:`bench.encode`);
(d) gzip: the full path again with compressed bodies (shorter), and what compression saves
    and costs per row (:mod:`bench.ingest_gzip`);
plus the wire-format decode comparison (:mod:`bench.ingest_wire`) and the embedded store.
"""

from __future__ import annotations

import asyncio
import http.client
import multiprocessing as mp
import os
import tempfile
import threading
import time
from pathlib import Path

import polars as pl

from bench import encode as encode_bench
from bench import ingest_gzip as gzip_bench
from bench import ingest_wire as wire_bench
from bench.ingest_fleet import ROWS_PER_DEVICE, Fleet
from contracts import topics
from contracts.config import BrokerConfig, DeploymentConfig, InfluxConfig
from ingest.service import IngestService
from ingest.store.embedded import EmbeddedStore
from ingest.store.influx import InfluxStore
from ingest.store.lineproto import line_chunks

__all__ = ["run"]

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def run(
    seconds: int = 60,
    rows_per_batch: int = 2000,
    ceiling_seconds: float | None = None,
    window: int = 256,
    devices: int = 6000,
    connections: int = 2,
    chunk_lines: int | None = None,
    wire: int = 2,
    gzip_seconds: int = 20,
) -> dict:
    """One benchmark run; figures, ratios and where the CPU went.

    The ceiling runs as long as the full path (``ceiling_seconds`` None) with the same
    number of write ``connections`` and body size (``chunk_lines``, default one batch).
    ``wire`` is the agents' batch format the publisher sends (2: Arrow IPC, 1: JSON).
    ``gzip_seconds``: how long the full path runs again with gzip bodies (0: not).
    """
    ceiling_seconds = seconds if ceiling_seconds is None else ceiling_seconds
    chunk = chunk_lines or rows_per_batch
    from tests.servers import InfluxBehindNginx, Mosquitto

    if rows_per_batch % ROWS_PER_DEVICE:
        raise ValueError(f"rows_per_batch must be a multiple of {ROWS_PER_DEVICE}")
    fleet = Fleet(devices, rows_per_batch)
    with tempfile.TemporaryDirectory(prefix="rg-bench-ingest-") as tmp:
        root = Path(tmp)
        # nginx's workers drop root and buffer bodies over 16 KB in <workdir>/body: they
        # must be able to reach it (a 0700 temporary directory answers every write 500).
        root.chmod(0o755)
        broker = Mosquitto(root / "mqtt").start()
        influx = InfluxBehindNginx(root / "influx").start()
        try:
            ceiling = _ceiling(influx, fleet, ceiling_seconds, connections, chunk)
            full = _full_path(
                root, broker, influx, fleet, seconds, window, connections, chunk, wire
            )
            full_gzip = (
                _full_path(
                    root, broker, influx, fleet, gzip_seconds, window, connections, chunk, wire,
                    gzip=True,
                )
                if gzip_seconds > 0
                else None
            )  # fmt: skip
        finally:
            broker.stop()
            influx.stop()
        embedded = _embedded(root / "embedded.db", fleet)
    enc = encode_bench.run(rows=100_000)
    wire_decode = wire_bench.run(rows=rows_per_batch)
    ratio = full["rows_per_s"] / ceiling["rows_per_s"] if ceiling["rows_per_s"] else 0.0
    return {
        "cores": os.cpu_count(),
        "rows_per_batch": rows_per_batch,
        "wire_version": wire,
        "connections": connections,
        "body_lines": chunk,
        "ceiling": ceiling,
        "full_path": full,
        "ratio_full_to_ceiling": round(ratio, 3),
        "goal_ratio": 0.70,
        "goal_met": ratio >= 0.70,
        "encode": enc,
        "gzip": {
            "full_path_rows_per_s": full_gzip["rows_per_s"] if full_gzip else None,
            "ratio_to_ceiling": (
                round(full_gzip["rows_per_s"] / ceiling["rows_per_s"], 3)
                if full_gzip and ceiling["rows_per_s"]
                else None
            ),
            "every_row_once": full_gzip["every_row_once"] if full_gzip else None,
            "compression": gzip_bench.run(rows_per_batch=rows_per_batch),
        },
        "wire_decode": wire_decode,
        "embedded": embedded,
    }


# -- (a) the ceiling ---------------------------------------------------------


def _ceiling(influx, fleet: Fleet, seconds: float, connections: int, chunk: int) -> dict:
    db = "ceiling"
    influx.create_database(db)
    # Fresh points, pre-encoded (rewriting the same points would flatter the ceiling by
    # ~7 %); sized for ~300k rows/s, and the run ends early if the pool runs out.
    n_batches = max(10, int(seconds * 300_000 / fleet.rows_per_batch))
    bodies: list[bytes] = []
    for first in range(0, n_batches, 50):
        frame = pl.concat([fleet.frame(seq) for seq in range(first, min(first + 50, n_batches))])
        bodies.extend(body.encode() for body in line_chunks(frame, chunk))
    lines = [body.count(b"\n") + 1 for body in bodies]
    path = f"/api/v2/write?org=rongguan&bucket={db}&precision=ns"
    headers = {"Content-Type": "text/plain; charset=utf-8", "Authorization": "Token x"}
    next_body = iter(range(len(bodies)))
    posted = [0] * connections
    lock = threading.Lock()

    def post(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", influx.port, timeout=30)
        while time.perf_counter() < deadline:
            with lock:
                i = next(next_body, None)
            if i is None:
                break
            conn.request("POST", path, bodies[i], headers)
            resp = conn.getresponse()
            answer = resp.read()
            if resp.status != 204:
                raise RuntimeError(f"ceiling write answered {resp.status}: {answer[:300]!r}")
            posted[k] += lines[i]
        conn.close()

    cpu0, t0 = time.process_time(), time.perf_counter()
    others0 = _proc_cpu(influx)
    deadline = t0 + seconds
    threads = [threading.Thread(target=post, args=(k,)) for k in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    others = _delta(others0, _proc_cpu(influx))
    rows = sum(posted)
    bodies.clear()
    stored = _count(influx, db)
    return {
        "seconds": round(wall, 1),
        "rows_posted": rows,
        "rows_stored": stored,
        "rows_per_s": round(rows / wall),
        "client_cpu_of_wall": round(cpu / wall, 2),
        "server_cpu_of_wall": {k: round(v / wall, 2) for k, v in others.items()},
    }


# -- (b) the full path ---------------------------------------------------------


def _full_path(
    root: Path,
    broker,
    influx,
    fleet: Fleet,
    seconds: int,
    window: int,
    connections: int,
    chunk: int,
    wire: int,
    gzip: bool = False,
) -> dict:
    db = "full_gzip" if gzip else "full"
    icfg = InfluxConfig(url=influx.url, bucket=db, token="x", gzip=gzip)
    store = InfluxStore(icfg, chunk_lines=chunk, connections=connections)
    store.ensure_database()
    cfg = DeploymentConfig.model_validate(
        {"var_dir": str(root / db), "broker": BrokerConfig(url=broker.url).model_dump()}
    )
    service = IngestService(cfg, store=store, client_id=f"bench-{db}")
    service.devices = fleet.inventory()  # validate against a city-sized inventory
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    runner = threading.Thread(target=loop.run_until_complete, args=(service.run(stop),))
    runner.start()
    if not service.wait_subscribed(15):
        raise RuntimeError("ingest did not subscribe")

    ctx = mp.get_context("spawn")
    done = ctx.Value("q", 0, lock=False)
    result = ctx.Queue()
    pub = ctx.Process(
        target=_publish,
        args=(
            broker.port,
            fleet.devices,
            fleet.rows_per_batch,
            seconds,
            window,
            wire,
            done,
            result,
        ),
    )
    peak_rss = [0]
    feeding = threading.Event()

    def feed() -> None:
        # The end-to-end window: the publisher sees how many batches ingest has finished.
        while not feeding.is_set():
            done.value = service.metrics()["batches_done"]
            peak_rss[0] = max(peak_rss[0], _rss())
            feeding.wait(0.005)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    cpu0, t0 = time.process_time(), time.perf_counter()
    others0 = _proc_cpu(influx, broker)
    pub.start()
    published, rows_published = result.get(timeout=seconds + 120)
    pub_cpu = result.get(timeout=30)
    pub.join(30)
    deadline = time.monotonic() + 120
    while service.metrics()["batches_done"] < published and time.monotonic() < deadline:
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    others = _delta(others0, _proc_cpu(influx, broker))
    metrics = service.metrics()
    feeding.set()
    loop.call_soon_threadsafe(stop.set)
    runner.join(30)
    loop.close()
    stored = _count(influx, db)
    return {
        "seconds": round(wall, 1),
        "batches_published": published,
        "rows_published": rows_published,
        "rows_stored": stored,
        "every_row_once": stored == rows_published,
        "rows_per_s": round(stored / wall),
        "ingest_cpu_of_wall": round(cpu / wall, 2),
        "publisher_cpu_of_wall": round(pub_cpu / wall, 2),
        "server_cpu_of_wall": {k: round(v / wall, 2) for k, v in others.items()},
        "ingest_peak_rss_mb": round(peak_rss[0] / 2**20, 1),
        "write_latency_ms": metrics["write_latency_ms"],
        "writes": metrics["writes"],
        "rows_quarantined": metrics["rows_quarantined"],
    }


def _publish(port, devices, rows_per_batch, seconds, window, wire, done, result) -> None:
    """Publisher process: agent batches on QoS 1, at most ``window`` ahead of ingest."""
    from contracts.mqtt import make_client

    fleet = Fleet(devices, rows_per_batch)
    payload = fleet.payload_v2 if wire == 2 else fleet.payload
    client = make_client(BrokerConfig(url=f"mqtt://127.0.0.1:{port}"), "bench-pub")
    client.connect("127.0.0.1", port)
    client.loop_start()
    cpu0 = time.process_time()
    seq, infos = 0, []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if seq - done.value >= window:
            time.sleep(0.001)
            continue
        agent = seq % fleet.agents
        infos.append(client.publish(topics.telemetry(0, f"bench-{agent}"), payload(seq), 1))
        seq += 1
    for info in infos:
        info.wait_for_publish(30)
    client.disconnect()
    client.loop_stop()
    result.put((seq, seq * rows_per_batch))
    result.put(time.process_time() - cpu0)


# -- the embedded store ------------------------------------------------------


def _embedded(path: Path, fleet: Fleet, batches: int = 100) -> dict:
    store = EmbeddedStore(path)
    frames = [fleet.frame(seq) for seq in range(batches)]
    t0 = time.perf_counter()
    for f in frames:
        store.write(f)
    write_s = time.perf_counter() - t0
    rows = batches * fleet.rows_per_batch
    start, end = fleet.t0, fleet.t0 + rows + 1
    vehicle = fleet.vehicle_id()
    timings = {
        "latest_ms": lambda: store.latest(),
        "range_downsampled_ms": lambda: store.range(
            fleet.device_id(0), fleet.first_field(0), start, end, every_s=1e-5
        ),
        "track_ms": lambda: store.track(vehicle, start, end),
    }
    out: dict = {"rows": rows, "write_rows_per_s": round(rows / write_s)}
    for name, fn in timings.items():
        runs = []
        for _ in range(5):
            t = time.perf_counter()
            fn()
            runs.append((time.perf_counter() - t) * 1000)
        out[name] = round(sorted(runs)[2], 2)
    out["latest_rows"] = store.latest().height
    store.close()
    return out


# -- helpers -----------------------------------------------------------------


def _count(influx, db: str) -> int:
    """Distinct rows stored: every measurement's count of every field, summed."""
    doc = influx.query(db, "SELECT count(*) FROM /.*/")
    total = 0
    for res in doc.get("results", []):
        for s in res.get("series", []):
            total += sum(v for v in s["values"][0][1:] if v)
    return total


def _proc_cpu(influx, broker=None) -> dict[str, float]:
    procs = {"influxd": influx.influxd, "nginx": influx.nginx}
    if broker is not None:
        procs["mosquitto"] = broker.proc
    return {name: _tree_cpu(p.pid) if p is not None else 0.0 for name, p in procs.items()}


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (nginx's work is in its worker)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICK + sum(_tree_cpu(int(k)) for k in kids)


def _delta(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: b[k] - a.get(k, 0.0) for k in b}


def _rss() -> int:
    try:
        return int(Path("/proc/self/statm").read_text().split()[1]) * _PAGE
    except OSError:
        return 0
