"""InfluxDB history: writes through influxdb-client's v2 write API, reads with InfluxQL.

Writes send line protocol built by :mod:`ingest.store.lineproto` (polars expressions,
no ``Point`` objects) in bodies of ``chunk_lines`` lines, retried with exponential
backoff; after ``retries`` failed attempts :class:`StoreUnavailable` is raised and the
caller keeps the data (ingest does not acknowledge the MQTT message until it is stored).
Reads go to ``/query`` (InfluxQL), which InfluxDB 1.8+, 2.x (v1 compatibility) and 3.x
all serve; influxdb-client has no InfluxQL API, so this module calls it with urllib.
"""

from __future__ import annotations

import json
import logging
import threading
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import polars as pl
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from contracts.alarms import AlarmEvent
from contracts.config import InfluxConfig
from ingest.frames import SCHEMA
from ingest.store.base import (
    RANGE_SCHEMA,
    TRACK_FIELDS,
    TRACK_SCHEMA,
    Agg,
    StoreError,
    StoreUnavailable,
    alarm_frame,
)
from ingest.store.lineproto import escape_tag, line_chunks

__all__ = ["InfluxStore", "ALARM_MEASUREMENT", "quote_ident", "quote_str"]

log = logging.getLogger(__name__)

#: Alarm transitions: tags alarm_id, device_id, domain, severity, state; field ``doc`` (JSON).
ALARM_MEASUREMENT = "alarm_events"
_NS = 1_000_000_000


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_str(value: str) -> str:
    """An InfluxQL string literal in single quotes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class InfluxStore:
    """Telemetry and alarm history in InfluxDB."""

    def __init__(
        self,
        cfg: InfluxConfig,
        *,
        chunk_lines: int = 5000,
        retries: int = 5,
        backoff_s: float = 0.2,
        max_backoff_s: float = 5.0,
        gzip: bool = False,
        connections: int = 1,
    ) -> None:
        self.cfg = cfg
        self.chunk_lines = chunk_lines
        # Bodies of one write posted side by side: influxd parses one while the next arrives.
        self._pool = ThreadPoolExecutor(connections, "influx-write") if connections > 1 else None
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.failures = 0  # failed write attempts, for metrics
        self._closed = threading.Event()  # wakes a backoff sleep on close()
        self._client = InfluxDBClient(
            url=cfg.url,
            token=cfg.token,
            org=cfg.org,
            timeout=int(cfg.timeout_s * 1000),
            enable_gzip=gzip,
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)

    # -- writes ---------------------------------------------------------------

    def ensure_database(self) -> None:
        """Create the bucket as a 1.x database (harmless if it exists; ignored on 2.x/3.x)."""
        try:
            self.query(f"CREATE DATABASE {quote_ident(self.cfg.bucket)}")
        except StoreError as exc:
            log.info("CREATE DATABASE not supported here (%s); assuming the bucket exists", exc)

    def write(self, frame: pl.DataFrame) -> int:
        """Write the frame's rows with finite values; returns rows written."""
        if frame.height == 0:
            return 0
        if self._pool is None:
            for body in line_chunks(frame, self.chunk_lines):
                self._write_body(body)
        else:
            # Every body must be stored before the frame counts (a failure re-raises here).
            for fut in [
                self._pool.submit(self._write_body, b) for b in line_chunks(frame, self.chunk_lines)
            ]:
                fut.result()
        return int(frame.get_column("value").is_finite().sum())

    def write_lines(self, body: str) -> None:
        """Write pre-encoded line protocol (newline-separated), with the same retries."""
        self._write_body(body)

    def _write_body(self, body: str) -> None:
        delay = self.backoff_s
        created = False
        for attempt in range(1, self.retries + 1):
            try:
                self._write_api.write(
                    bucket=self.cfg.bucket,
                    org=self.cfg.org,
                    record=body,
                    write_precision=WritePrecision.NS,
                )
                return
            except Exception as exc:  # urllib3 / ApiException / socket: one boundary
                self.failures += 1
                if getattr(exc, "status", None) == 404 and not created:
                    # 1.x answers 404 when the database is missing (e.g. InfluxDB was down
                    # at start-up, so ensure_database could not run): create it, retry.
                    created = True
                    self.ensure_database()
                    continue
                if _is_client_error(exc):
                    # The answer's body says why (e.g. which field conflicts): keep it whole.
                    body = getattr(exc, "body", None)
                    if isinstance(body, bytes):
                        body = body.decode("utf-8", errors="replace")
                    why = str(body)[:1000] if body else _short(exc)
                    raise StoreError(f"InfluxDB refused the write ({exc.status}): {why}") from None  # type: ignore[attr-defined]
                if attempt == self.retries or self._closed.is_set():
                    raise StoreUnavailable(
                        f"InfluxDB at {self.cfg.url} unavailable after {attempt} attempts: "
                        f"{_short(exc)}"
                    ) from None
                log.warning("InfluxDB write failed (attempt %d): %s", attempt, _short(exc))
                self._closed.wait(delay)
                delay = min(delay * 2, self.max_backoff_s)

    def write_alarm(self, event: AlarmEvent) -> None:
        """Record one alarm transition as a point of :data:`ALARM_MEASUREMENT`."""
        tags = {
            "alarm_id": event.alarm_id,
            "device_id": event.device_id,
            "domain": event.domain,
            "severity": str(event.severity),
            "state": str(event.state),
        }
        tags = {k: v or "-" for k, v in tags.items()}  # line protocol has no empty tag values
        frame = pl.DataFrame({k: [v] for k, v in tags.items()}).with_columns(
            pl.lit(event.model_dump_json()).alias("doc"), pl.lit(event.updated_ns).alias("ts")
        )
        self._write_body(_alarm_line(frame))

    # -- reads ----------------------------------------------------------------

    def query(self, q: str) -> list[dict[str, Any]]:
        """Run InfluxQL statements (``;``-separated); one result dict per statement."""
        data = urllib.parse.urlencode({"db": self.cfg.bucket, "q": q, "epoch": "ns"}).encode()
        req = urllib.request.Request(f"{self.cfg.url}/query", data=data, method="POST")
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
        if self.cfg.token:
            req.add_header("Authorization", f"Token {self.cfg.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:
                doc = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            body = exc.read()[:300].decode(errors="replace")
            raise StoreError(f"InfluxQL {exc.code}: {body}") from None
        except (OSError, ValueError) as exc:
            raise StoreUnavailable(f"InfluxDB at {self.cfg.url}: {exc}") from None
        if "error" in doc:
            raise StoreError(f"InfluxQL: {doc['error']}")
        results = doc.get("results", [])
        for r in results:
            if "error" in r:
                raise StoreError(f"InfluxQL: {r['error']}")
        return results

    def latest(self, kind: str | None = None) -> pl.DataFrame:
        """The last value per (device_id, field): one ``last()`` per field key."""
        src = quote_ident(kind) if kind else "/.*/"
        keys = self.query(f"SHOW FIELD KEYS FROM {src}")
        stmts = [
            (m["name"], key)
            for res in keys
            for m in res.get("series", [])
            if m["name"] != ALARM_MEASUREMENT
            for key, _type in m["values"]
        ]
        frames = [pl.DataFrame(schema=SCHEMA)]
        for i in range(0, len(stmts), 100):  # keep each request's query string modest
            part = stmts[i : i + 100]
            q = ";".join(
                f'SELECT last({quote_ident(k)}) FROM {quote_ident(m)} GROUP BY "device_id"'
                for m, k in part
            )
            for (meas, key), res in zip(part, self.query(q)):
                for s in res.get("series", []):
                    ts, val = zip(*s["values"])
                    n = len(ts)
                    frames.append(
                        pl.DataFrame(
                            {
                                "device_id": [s["tags"]["device_id"]] * n,
                                "kind": [meas] * n,
                                "ts": list(ts),
                                "field": [key] * n,
                                "value": list(val),
                            },
                            schema=SCHEMA,
                            strict=False,
                        )
                    )
        return pl.concat(frames).sort("device_id", "field")

    def range(
        self,
        device_id: str,
        field: str,
        start_ns: int,
        end_ns: int,
        every_s: float | None = None,
        agg: Agg = "mean",
    ) -> pl.DataFrame:
        """One field of one device over [start_ns, end_ns), raw or in epoch-aligned buckets."""
        where = (
            f'WHERE "device_id" = {quote_str(device_id)} '
            f"AND time >= {int(start_ns)} AND time < {int(end_ns)}"
        )
        col = quote_ident(field)
        if every_s is None:
            q = f"SELECT {col} FROM /.*/ {where}"
        else:
            if agg not in ("mean", "max"):
                raise ValueError(f"agg must be 'mean' or 'max', not {agg!r}")
            step = int(every_s * _NS)
            if step <= 0:
                raise ValueError("every_s must be positive")
            q = f"SELECT {agg}({col}) FROM /.*/ {where} GROUP BY time({step}ns) fill(none)"
        rows = [
            (v[0], v[1]) for s in _series(self.query(q)) for v in s["values"] if v[1] is not None
        ]
        return pl.DataFrame(rows, schema=RANGE_SCHEMA, orient="row").sort("ts")

    def track(self, device_id: str, start_ns: int, end_ns: int) -> pl.DataFrame:
        """A vehicle's fixes in time order (rows with lat and lon)."""
        cols = ", ".join(quote_ident(f) for f in TRACK_FIELDS)
        q = (
            f'SELECT {cols} FROM "vehicle" WHERE "device_id" = {quote_str(device_id)} '
            f"AND time >= {int(start_ns)} AND time < {int(end_ns)}"
        )
        rows = [
            tuple(v)
            for s in _series(self.query(q))
            for v in s["values"]
            if v[1] is not None and v[2] is not None
        ]
        return pl.DataFrame(rows, schema=TRACK_SCHEMA, orient="row").sort("ts")

    def alarm_history(self, start_ns: int, end_ns: int) -> pl.DataFrame:
        """Alarm transitions with start_ns <= updated_ns < end_ns, oldest first."""
        q = (
            f'SELECT "doc" FROM {quote_ident(ALARM_MEASUREMENT)} '
            f"WHERE time >= {int(start_ns)} AND time < {int(end_ns)}"
        )
        docs = [json.loads(v[1]) for s in _series(self.query(q)) for v in s["values"]]
        return alarm_frame(docs)

    def close(self) -> None:
        """Close the client (and cut short any backoff sleep)."""
        self._closed.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._write_api.close()
        self._client.close()


def _series(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for r in results for s in r.get("series", [])]


def _alarm_line(frame: pl.DataFrame) -> str:
    tags = ["alarm_id", "device_id", "domain", "severity", "state"]
    doc = (
        pl.col("doc")
        .str.replace_all("\\", "\\\\", literal=True)
        .str.replace_all('"', '\\"', literal=True)
    )
    parts: list[pl.Expr] = [pl.lit(ALARM_MEASUREMENT)]
    for t in tags:
        parts += [pl.lit(f",{t}="), escape_tag(pl.col(t))]
    parts += [pl.lit(' doc="'), doc, pl.lit('" '), pl.col("ts").cast(pl.Utf8)]
    return frame.select(pl.concat_str(parts)).to_series().str.join("\n").item()


def _is_client_error(exc: Exception) -> bool:
    """A 4xx answer (bad data, no database) is not fixed by retrying, except 429."""
    status = getattr(exc, "status", None)
    return isinstance(status, int) and 400 <= status < 500 and status != 429


def _short(exc: Exception) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= 300 else text[:297] + "..."
