"""InfluxDB history: writes through influxdb-client's v2 write API (reads: influxql.py).

Writes send line protocol built by :mod:`ingest.store.lineproto` (polars expressions,
no ``Point`` objects) in bodies of ``chunk_lines`` lines, gzip-compressed when the config
says so, retried with exponential backoff; after ``retries`` failed attempts
:class:`StoreUnavailable` is raised and the caller keeps the data (ingest does not
acknowledge the MQTT message until it is stored).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor

import polars as pl
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from contracts.alarms import AlarmEvent
from contracts.config import InfluxConfig
from ingest.store.base import StoreError, StoreUnavailable
from ingest.store.influxql import ALARM_MEASUREMENT, InfluxReads, quote_ident, quote_str
from ingest.store.lineproto import escape_tag, line_chunks

__all__ = ["InfluxStore", "ALARM_MEASUREMENT", "quote_ident", "quote_str"]

log = logging.getLogger(__name__)


class InfluxStore(InfluxReads):
    """Telemetry and alarm history in InfluxDB: writes here, InfluxQL reads inherited."""

    #: Sends a frame's lines encoded ahead (``lineproto.with_lines``) as they are.
    takes_lines = True

    def __init__(
        self,
        cfg: InfluxConfig,
        *,
        chunk_lines: int = 5000,
        retries: int = 5,
        backoff_s: float = 0.2,
        max_backoff_s: float = 5.0,
        gzip: bool | None = None,
        connections: int | None = None,
    ) -> None:
        self.cfg = cfg
        self.chunk_lines = chunk_lines
        # Bodies of one write posted side by side: influxd parses one while the next arrives.
        n = cfg.write_connections if connections is None else connections
        self._pool = ThreadPoolExecutor(n, "influx-write") if n > 1 else None
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
            enable_gzip=cfg.gzip if gzip is None else gzip,
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
        parent = event.extra.get("parent")
        if parent:  # a storm child; lone alarms and parents carry no parent tag at all
            tags["parent"] = str(parent)
        frame = pl.DataFrame({k: [v] for k, v in tags.items()}).with_columns(
            pl.lit(event.model_dump_json()).alias("doc"), pl.lit(event.updated_ns).alias("ts")
        )
        self._write_body(_alarm_line(frame, sorted(tags)))  # in key order, as influxd keeps them

    def close(self) -> None:
        """Close the client (and cut short any backoff sleep)."""
        self._closed.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        self._write_api.close()
        self._client.close()


def _alarm_line(frame: pl.DataFrame, tags: list[str]) -> str:
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
