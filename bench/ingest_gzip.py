"""Gzip for InfluxDB writes: what it saves on the wire and what it costs in CPU.

On the same line-protocol bodies ingest sends (one batch per body), per compression
level: bytes per row before and after, and compression µs per row on one core. From
these, the link speed below which gzip makes a write faster: compressing a row costs
``c`` seconds and saves ``b × (1 − 1/ratio)`` bytes, so gzip pays on links slower than
``8 · b · (1 − 1/ratio) / c`` bit/s. influxdb-client's ``enable_gzip`` compresses at
level 9 (``gzip.compress``'s default); level 1 is shown for comparison.
"""

from __future__ import annotations

import gzip
import time

from bench.ingest_fleet import Fleet
from ingest.store.lineproto import line_chunks

__all__ = ["run"]


def run(rows_per_batch: int = 2000, batches: int = 20, devices: int = 6000) -> dict:
    """Compression figures per level and the break-even link speed."""
    fleet = Fleet(devices, rows_per_batch)
    bodies = [
        body.encode() for seq in range(batches) for body in line_chunks(fleet.frame(seq), 10**9)
    ]
    rows = sum(b.count(b"\n") + 1 for b in bodies)
    raw = sum(len(b) for b in bodies)
    out: dict = {"rows": rows, "raw_bytes_per_row": round(raw / rows, 1)}
    for level in (9, 1):
        t0 = time.perf_counter()
        packed = sum(len(gzip.compress(b, compresslevel=level)) for b in bodies)
        secs = time.perf_counter() - t0
        ratio = raw / packed
        per_row_s = secs / rows
        saved_bits = 8 * raw / rows * (1 - 1 / ratio)
        out[f"level_{level}"] = {
            "gzip_bytes_per_row": round(packed / rows, 1),
            "ratio": round(ratio, 1),
            "compress_us_per_row": round(per_row_s * 1e6, 2),
            "compress_rows_per_s_one_core": round(1 / per_row_s),
            "pays_below_mbit_s": round(saved_bits / per_row_s / 1e6, 1),
        }
    return out
