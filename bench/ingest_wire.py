"""Wire format for agent batches: JSON (the contract today) vs columnar alternatives.

Decoding one agent batch into a telemetry frame, per format, in the same run:

- ``json_contract``: ``TelemetryBatch.decode`` + ``batch_to_frame`` (per-row Python lists);
- ``json_direct``: how ingest decodes v1 (:func:`ingest.frames.decode_rows` with the names
  as categorical codes: json.loads, then polars gathers from the batch's dictionaries);
- ``arrow_ipc``: an Arrow IPC stream with dictionary-encoded device/kind/field columns,
  read by ``pl.read_ipc_stream``;
- ``wire_v2``: the agents' wire v2 (:mod:`contracts.telemetry_arrow`) as ingest decodes
  it (the same call: dictionaries kept as codes, with the schema, index, UTF-8 and
  metadata checks);
- ``packed``: a small JSON header (dictionaries) + little-endian int32/int64/float64
  arrays, read with ``numpy.frombuffer``.

Measured to choose wire v2: agents publish Arrow IPC since; JSON stays accepted. The
headline figures are ``json_v1_us_per_row`` (``json_direct``, how ingest decodes v1) and
``arrow_v2_us_per_row`` (``wire_v2``, how it decodes v2), on the same rows.
"""

from __future__ import annotations

import io
import json
import struct
import time
import zlib

import numpy as np
import polars as pl
import pyarrow as pa

from bench.ingest_fleet import Fleet
from contracts.telemetry import TelemetryBatch
from ingest.frames import SCHEMA, batch_to_frame, decode_rows, strings

__all__ = ["run", "arrow_payload", "packed_payload", "decode_packed"]


def arrow_payload(frame: pl.DataFrame) -> bytes:
    """The frame as an Arrow IPC stream with dictionary-encoded string columns."""
    table = frame.to_arrow()
    cols = [
        table.column(c).dictionary_encode() if c in ("device_id", "kind", "field") else table[c]
        for c in table.column_names
    ]
    table = pa.table(cols, names=table.column_names)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue()


def packed_payload(frame: pl.DataFrame) -> bytes:
    """Header length, JSON header with dictionaries, then d (i32), f (i32), t (i64), x (f64)."""
    dev = frame.select(pl.struct("device_id", "kind")).to_series()
    devs, d = np.unique(np.array(dev.struct.field("device_id").to_list()), return_inverse=True)
    kinds = dict(zip(frame["device_id"].to_list(), frame["kind"].to_list()))
    names, f = np.unique(np.array(frame["field"].to_list()), return_inverse=True)
    head = json.dumps(
        {"devices": [[x, kinds[x]] for x in devs.tolist()], "fields": names.tolist()}
    ).encode()
    arrays = (
        d.astype("<i4").tobytes(),
        f.astype("<i4").tobytes(),
        frame["ts"].to_numpy().astype("<i8").tobytes(),
        frame["value"].to_numpy().astype("<f8").tobytes(),
    )
    return struct.pack("<II", len(head), frame.height) + head + b"".join(arrays)


def decode_packed(payload: bytes) -> pl.DataFrame:
    """Inverse of :func:`packed_payload`."""
    hlen, n = struct.unpack_from("<II", payload)
    head = json.loads(payload[8 : 8 + hlen])
    off = 8 + hlen
    d = np.frombuffer(payload, "<i4", n, off)
    f = np.frombuffer(payload, "<i4", n, off + 4 * n)
    t = np.frombuffer(payload, "<i8", n, off + 8 * n)
    x = np.frombuffer(payload, "<f8", n, off + 16 * n)
    devs = pl.Series([v[0] for v in head["devices"]])
    kinds = pl.Series([v[1] for v in head["devices"]])
    di = pl.Series(d)
    return pl.DataFrame(
        {
            "device_id": devs.gather(di),
            "kind": kinds.gather(di),
            "ts": t,
            "field": pl.Series(head["fields"]).gather(pl.Series(f)),
            "value": x,
        },
        schema=SCHEMA,
    )


def _as_ingest(payload: bytes) -> pl.DataFrame:
    """A batch decoded as ingest decodes it (names as categorical codes)."""
    good, _wrong = decode_rows(payload, codes=True)
    return good


def run(rows: int = 2000, repeat: int = 300) -> dict:
    """µs to decode one ``rows``-row batch into a frame, and payload bytes, per format."""
    fleet = Fleet(max(3000, rows), rows)
    frame = fleet.frame(1)
    js = fleet.payload(1)
    arrow = arrow_payload(frame)
    packed = packed_payload(frame)
    cases = {
        "json_contract": (js, lambda p: batch_to_frame(TelemetryBatch.decode(p))),
        "json_direct": (js, _as_ingest),
        "wire_v2": (fleet.payload_v2(1), _as_ingest),
        "arrow_ipc": (arrow, lambda p: pl.read_ipc_stream(p).cast(SCHEMA)),  # type: ignore[arg-type]
        "packed": (packed, decode_packed),
    }
    out: dict = {"rows": rows}
    for name, (payload, fn) in cases.items():
        got = strings(fn(payload))
        if not got.equals(frame):
            raise AssertionError(f"{name} decodes to a different frame")
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(repeat):
                fn(payload)
            best = min(best, (time.perf_counter() - t0) / repeat)
        out[name] = {
            "us_per_batch": round(best * 1e6, 1),
            "us_per_row": round(best * 1e6 / rows, 3),
            "bytes": len(payload),
            "gzip_bytes": len(zlib.compress(payload, 6)),
        }
    base = out["json_contract"]["us_per_batch"]
    for name in cases:
        out[name]["speedup_vs_json_contract"] = round(base / out[name]["us_per_batch"], 1)
    v1, v2 = out["json_direct"], out["wire_v2"]
    out["json_v1_us_per_row"] = v1["us_per_row"]
    out["arrow_v2_us_per_row"] = v2["us_per_row"]
    out["arrow_v2_speedup_vs_json_v1"] = round(v1["us_per_batch"] / v2["us_per_batch"], 1)
    out["json_v1_bytes_per_row"] = round(v1["bytes"] / rows, 1)
    out["arrow_v2_bytes_per_row"] = round(v2["bytes"] / rows, 1)
    return out
