"""Ingest throughput: raw InfluxDB ceiling vs Rongguan's full MQTT → InfluxDB path.

One run starts its own Mosquitto and influxd 1.6.7 behind nginx (``bench.servers``) in a
temporary directory and measures, on the same rows and the same body size:

(a) ceiling: pre-encoded line protocol POSTed to ``/api/v2/write`` on ``connections``
    keep-alive connections, bodies of the product's size (``InfluxStore``'s
    ``chunk_lines``), one after the other on each;
(b) full path: the product as configured with InfluxDB — ingest worker processes that
    open their store with ``open_store(cfg)`` like ``rongguan ingest`` (InfluxDB plus
    the embedded file beside it, written side by side); agent-format batches come from
    a separate publisher process through MQTT → decode → validate → encode → store
    (:mod:`bench.ingest_workers`); rows/s is what InfluxDB holds at the end over the wall
    time; with the ingest process's CPU share and peak RSS and the servers' CPU shares;
(b2) the same with two workers, one partition each (``workers2_seconds``, 0: not run);
(c) line-protocol encoding vs influxdb-client ``Point`` (:mod:`bench.encode`);
(d) gzip: the full path again with compressed bodies (shorter), and what compression saves
    and costs per row (:mod:`bench.ingest_gzip`);
(e) wire formats: decode µs per row of the same batch as JSON v1 and Arrow v2
    (:mod:`bench.ingest_wire`);
(f) the embedded store on a district's day (:mod:`bench.ingest_embedded`).
"""

from __future__ import annotations

import http.client
import inspect
import os
import tempfile
import threading
import time
from pathlib import Path

import polars as pl

from bench import encode as encode_bench
from bench import ingest_embedded as embedded_bench
from bench import ingest_gzip as gzip_bench
from bench import ingest_wire as wire_bench
from bench.ingest_fleet import POOL_ROWS_PER_S, ROWS_PER_DEVICE, Fleet
from bench.ingest_workers import count_rows, full_path, proc_cpu
from ingest.store.influx import InfluxStore
from ingest.store.lineproto import line_chunks

__all__ = ["run"]

#: The body size ingest posts (``InfluxStore``'s default), so (a) and (b) send the same.
PRODUCT_CHUNK_LINES: int = inspect.signature(InfluxStore).parameters["chunk_lines"].default


def run(
    seconds: int = 60,
    rows_per_batch: int = 2000,
    ceiling_seconds: float | None = None,
    window: int = 256,
    devices: int = 6000,
    connections: int = 2,
    wire: int = 2,
    gzip_seconds: int = 20,
    workers2_seconds: int = 30,
    district_devices: int = 150,
) -> dict:
    """One benchmark run; figures, ratios and where the CPU went.

    The ceiling runs as long as the full path (``ceiling_seconds`` None) with the same
    number of write ``connections`` and the product's body size. ``wire`` is the agents'
    batch format the publisher sends (2: Arrow IPC, 1: JSON). ``gzip_seconds`` and
    ``workers2_seconds``: how long the gzip and two-worker variants run (0: not).
    """
    ceiling_seconds = seconds if ceiling_seconds is None else ceiling_seconds
    if rows_per_batch % ROWS_PER_DEVICE:
        raise ValueError(f"rows_per_batch must be a multiple of {ROWS_PER_DEVICE}")
    from bench.servers import InfluxBehindNginx, Mosquitto

    fleet = Fleet(devices, rows_per_batch)
    with tempfile.TemporaryDirectory(prefix="rg-bench-ingest-") as tmp:
        root = Path(tmp)
        # nginx's workers drop root and buffer bodies over 16 KB in <workdir>/body: they
        # must be able to reach it (a 0700 temporary directory answers every write 500).
        root.chmod(0o755)
        broker = Mosquitto(root / "mqtt").start()
        influx = InfluxBehindNginx(root / "influx").start()
        try:
            # Half the ceiling before the full path and half after: other load on the
            # machine drifting during the run then weighs on both sides alike.
            half = (influx, fleet, ceiling_seconds / 2, connections, PRODUCT_CHUNK_LINES)
            before = _ceiling(*half, db="ceiling")

            def path(secs: float, db: str, **kw) -> dict | None:
                args = (root, broker, influx, fleet, secs, window, connections, wire)
                return full_path(*args, db=db, **kw) if secs > 0 else None

            full = path(seconds, "full")
            assert full is not None
            ceiling = _both(before, _ceiling(*half, db="ceiling_after"))
            two = path(workers2_seconds, "full2", workers=2)
            full_gzip = path(gzip_seconds, "full_gzip", gzip=True)
        finally:
            broker.stop()
            influx.stop()
        embedded = embedded_bench.run(root, devices=district_devices)
    enc = encode_bench.run(rows=100_000)
    wire_decode = wire_bench.run(rows=rows_per_batch)
    top = ceiling["rows_per_s"] or 1
    ratio = full["rows_per_s"] / top
    return {
        "cores": os.cpu_count(),
        "rows_per_batch": rows_per_batch,
        "wire_version": wire,
        "connections": connections,
        "body_lines": PRODUCT_CHUNK_LINES,
        "full_path_store": full["store"],
        "ceiling": ceiling,
        "full_path": full,
        "ratio_full_to_ceiling": round(ratio, 3),
        "goal_ratio": 0.70,
        # (b) must have run the minute asked: batches running out would end it early.
        "goal_met": ratio >= 0.70 and not full["publisher_ran_out"],
        "two_workers": (
            {
                **two,
                "ratio_to_ceiling": round(two["rows_per_s"] / top, 3),
                "ratio_to_one_worker": round(two["rows_per_s"] / (full["rows_per_s"] or 1), 3),
            }
            if two
            else None
        ),
        "encode": enc,
        "gzip": {
            "full_path_rows_per_s": full_gzip["rows_per_s"] if full_gzip else None,
            "ratio_to_ceiling": round(full_gzip["rows_per_s"] / top, 3) if full_gzip else None,
            "every_row_once": full_gzip["every_row_once"] if full_gzip else None,
            "full_path": full_gzip,
            "compression": gzip_bench.run(rows_per_batch=rows_per_batch),
        },
        "wire_decode": wire_decode,
        "embedded": embedded,
    }


# -- (a) the ceiling ---------------------------------------------------------


def _ceiling(influx, fleet: Fleet, seconds: float, connections: int, chunk: int, db: str) -> dict:
    influx.create_database(db)
    # Fresh points, pre-encoded (rewriting the same points would flatter the ceiling by
    # ~7 %); enough for POOL_ROWS_PER_S, so the ceiling runs the time asked (a pool for
    # 500k rows/s ran out after 22 s of 30 here). If it runs out all the same, the run
    # ends early and says so.
    n_batches = max(10, int(seconds * POOL_ROWS_PER_S / fleet.rows_per_batch))
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
    others0 = proc_cpu(influx)
    deadline = t0 + seconds
    threads = [threading.Thread(target=post, args=(k,)) for k in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    others = {k: v - others0.get(k, 0.0) for k, v in proc_cpu(influx).items()}
    rows = sum(posted)
    ran_out = next(next_body, None) is None
    bodies.clear()
    stored = count_rows(influx, db)
    return {
        "seconds": round(wall, 1),
        "rows_posted": rows,
        "rows_stored": stored,
        "rows_per_s": round(rows / wall),
        "pool_ran_out": ran_out,
        "client_cpu_of_wall": round(cpu / wall, 2),
        "server_cpu_of_wall": {k: round(v / wall, 2) for k, v in others.items()},
    }


def _both(a: dict, b: dict) -> dict:
    """The two halves of the ceiling as one run (rates weighted by time)."""
    wall = a["seconds"] + b["seconds"]
    servers = a["server_cpu_of_wall"]
    return {
        "seconds": round(wall, 1),
        "rows_posted": a["rows_posted"] + b["rows_posted"],
        "rows_stored": a["rows_stored"] + b["rows_stored"],
        "rows_per_s": round((a["rows_posted"] + b["rows_posted"]) / wall),
        "rows_per_s_before_after": [a["rows_per_s"], b["rows_per_s"]],
        "pool_ran_out": a["pool_ran_out"] or b["pool_ran_out"],
        "client_cpu_of_wall": round(
            (a["client_cpu_of_wall"] * a["seconds"] + b["client_cpu_of_wall"] * b["seconds"])
            / wall,
            2,
        ),
        "server_cpu_of_wall": {
            k: round((v * a["seconds"] + b["server_cpu_of_wall"][k] * b["seconds"]) / wall, 2)
            for k, v in servers.items()
        },
    }
