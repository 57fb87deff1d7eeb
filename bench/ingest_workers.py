"""The full ingest path of ``rongguan bench ingest``: ingest workers as the product runs them.

Each worker is its own process running :class:`IngestService` on a deployment config with
``store.influx`` set, so it opens its store with ``open_store(cfg)`` exactly as
``rongguan ingest [--partition K]`` does (the embedded file beside InfluxDB, written side
by side). A separate publisher process sends agent batches on MQTT as fast as the
workers keep up (at most ``window`` unfinished batches in all); agent ``a`` publishes on
partition ``a % workers``. Rows/s is what InfluxDB holds at the end over the wall time
from the first batch published.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import threading
import time
from pathlib import Path
from typing import Any

from bench.ingest_fleet import POOL_ROWS_PER_S, Fleet
from contracts import topics
from contracts.config import BrokerConfig, DeploymentConfig

__all__ = ["full_path", "proc_cpu", "count_rows"]

_TICK = os.sysconf("SC_CLK_TCK")


def full_path(
    root: Path,
    broker: Any,
    influx: Any,
    fleet: Fleet,
    seconds: float,
    window: int,
    connections: int,
    wire: int,
    *,
    db: str,
    gzip: bool = False,
    workers: int = 1,
) -> dict:
    """Run ``workers`` ingest processes against one publisher for ``seconds``; figures."""
    cfg = {
        "var_dir": str(root / db),
        "partitions": workers,
        "broker": BrokerConfig(url=broker.url).model_dump(),
        "store": {
            "path": "store.db",
            "influx": {
                "url": influx.url,
                "bucket": db,
                "token": "x",
                "gzip": gzip,
                "write_connections": connections,
            },
        },
    }
    DeploymentConfig.model_validate(cfg)  # fail here, not in a child
    ctx = mp.get_context("spawn")
    go, halt = ctx.Event(), ctx.Event()
    done = [ctx.Value("q", 0, lock=False) for _ in range(workers)]
    ready, result = ctx.Queue(), ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(
                cfg,
                k if workers > 1 else None,
                fleet.devices,
                fleet.rows_per_batch,
                done[k],
                go,
                halt,
                ready,
                result,
            ),
        )
        for k in range(workers)
    ]
    for p in procs:
        p.start()
    pub_out, start = ctx.Queue(), ctx.Event()
    pub = ctx.Process(
        target=_publish,
        args=(broker.port, fleet.devices, fleet.rows_per_batch, seconds, window, wire, workers,
              done, start, pub_out),
    )  # fmt: skip
    pub.start()
    stores = [ready.get(timeout=120) for _ in procs]  # each worker is subscribed
    # The publisher builds its batches first (~1 ms each); then the clock starts.
    pub_out.get(timeout=120 + seconds * POOL_ROWS_PER_S / fleet.rows_per_batch / 500)
    others0 = proc_cpu(influx, broker)
    t0 = time.perf_counter()
    go.set()
    start.set()
    published, rows_published, ran_out = pub_out.get(timeout=seconds + 120)
    pub_cpu = pub_out.get(timeout=30)
    pub.join(30)
    deadline = time.monotonic() + 120
    while sum(d.value for d in done) < published and time.monotonic() < deadline:
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    halt.set()
    others = {k: v - others0.get(k, 0.0) for k, v in proc_cpu(influx, broker).items()}
    outs = [result.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(30)
    stored = count_rows(influx, db)
    return {
        "workers": workers,
        "store": stores[0],
        "seconds": round(wall, 1),
        "batches_published": published,
        "rows_published": rows_published,
        "rows_stored": stored,
        "every_row_once": stored == rows_published,
        "publisher_ran_out": ran_out,
        "rows_per_s": round(stored / wall),
        "ingest_cpu_of_wall": [round(o["cpu_s"] / wall, 2) for o in outs],
        "ingest_peak_rss_mb": [o["peak_rss_mb"] for o in outs],
        "publisher_cpu_of_wall": round(pub_cpu / wall, 2),
        "server_cpu_of_wall": {k: round(v / wall, 2) for k, v in others.items()},
        "write_latency_ms": [o["metrics"]["write_latency_ms"] for o in outs],
        "writes": sum(o["metrics"]["writes"] for o in outs),
        "rows_quarantined": sum(o["metrics"]["rows_quarantined"] for o in outs),
        "embedded_latest_flushes": sum(o["latest_flushes"] for o in outs),
    }


def _worker(cfg, partition, devices, rows_per_batch, done, go, halt, ready, result) -> None:
    """One ingest worker process: ``IngestService`` with the store ``open_store`` gives."""
    from ingest.service import IngestService

    service = IngestService(
        DeploymentConfig.model_validate(cfg),
        partition=partition,
        # One session per run: a persistent session of an earlier run holds that run's
        # leftovers and the later runs' messages queued while it was away.
        client_id=f"bench-{cfg['store']['influx']['bucket']}-{partition}",
    )
    service.devices = Fleet(devices, rows_per_batch).inventory()  # a city-sized inventory
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    runner = threading.Thread(target=loop.run_until_complete, args=(service.run(stop),))
    runner.start()
    if not service.wait_subscribed(60):
        raise RuntimeError("ingest worker did not subscribe")
    ready.put(_describe(service.store))
    go.wait()
    cpu0 = time.process_time()
    while not halt.is_set():
        # The benchmark's own work inside the process it measures, so one counter (not
        # metrics() with its percentiles) 50 times a second: at 200 it took 1 % of a
        # core. The publisher's window is about a second of batches: 20 ms late is nothing.
        done.value = service.m.count("batches_done")
        halt.wait(0.02)
    cpu = time.process_time() - cpu0
    metrics = service.metrics()
    embedded = getattr(service.store, "stores", (service.store,))[0]
    loop.call_soon_threadsafe(stop.set)
    runner.join(60)
    loop.close()
    result.put(
        {
            "cpu_s": cpu,
            "peak_rss_mb": round(_peak_rss() / 2**20, 1),
            "metrics": metrics,
            "latest_flushes": getattr(embedded, "latest_flushes", 0),
        }
    )


def _describe(store: Any) -> str:
    """What ``open_store`` built, e.g. ``FanoutStore(EmbeddedStore[latest], InfluxStore)``."""
    parts = []
    for s in getattr(store, "stores", (store,)):
        name = type(s).__name__
        if hasattr(s, "history"):
            name += "[history+latest]" if s.history else "[latest+alarms]"
        parts.append(name)
    if not hasattr(store, "stores"):
        return parts[0]
    return f"{type(store).__name__}({', '.join(parts)})"


def _publish(port, devices, rows_per_batch, seconds, window, wire, parts, done, start, out):
    """Publisher process: agent batches on QoS 1, at most ``window`` ahead of the workers.

    The batches are built before the clock starts, as (a)'s line protocol is: agents
    encode on their own machines, not on the one measured. If they run out before
    ``seconds``, the run ends early and says so.
    """
    from contracts.mqtt import make_client

    fleet = Fleet(devices, rows_per_batch)
    payload = fleet.payload_v2 if wire == 2 else fleet.payload
    pool = [payload(seq) for seq in range(int(seconds * POOL_ROWS_PER_S / rows_per_batch))]
    client = make_client(BrokerConfig(url=f"mqtt://127.0.0.1:{port}"), "bench-pub")
    client.connect("127.0.0.1", port)
    client.loop_start()
    out.put("ready")
    start.wait()
    cpu0 = time.process_time()
    seq, infos = 0, []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and seq < len(pool):
        if seq - sum(d.value for d in done) >= window:
            time.sleep(0.001)
            continue
        agent = seq % fleet.agents
        topic = topics.telemetry(agent % parts, f"bench-{agent}")
        infos.append(client.publish(topic, pool[seq], 1))
        pool[seq] = b""  # sent: the broker has its copy
        seq += 1
    for info in infos:
        info.wait_for_publish(30)
    client.disconnect()
    client.loop_stop()
    out.put((seq, seq * rows_per_batch, seq == len(pool)))
    out.put(time.process_time() - cpu0)


def count_rows(influx: Any, db: str) -> int:
    """Distinct rows stored: every measurement's count of every field, summed."""
    doc = influx.query(db, "SELECT count(*) FROM /.*/")
    total = 0
    for res in doc.get("results", []):
        for s in res.get("series", []):
            total += sum(v for v in s["values"][0][1:] if v)
    return total


def proc_cpu(influx: Any, broker: Any = None) -> dict[str, float]:
    """CPU seconds so far of influxd, nginx (and mosquitto)."""
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


def _peak_rss() -> int:
    """This process's peak resident set (VmHWM), bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0
