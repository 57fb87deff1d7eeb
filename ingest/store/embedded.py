"""The embedded store: telemetry history in one SQLite file (WAL mode).

Why SQLite: it is a real, crash-safe engine in the standard library (the demo needs
nothing but ``pip``); WAL mode lets the dashboard and rules processes read while the one
ingest process writes, without a server; a ``WITHOUT ROWID`` table keyed by
(device_id, field, ts) is a clustered index, so a device/field time range is one
contiguous scan and rewriting the same point (``INSERT OR REPLACE``) is harmless. A
separate ``latest`` table, updated in the same transaction, answers "current value of
everything" without scanning history. It is not InfluxDB: no compression or retention,
so it suits the demo and a single site, while InfluxDB carries a city's history.

Writes go through SQLite's JSON functions (one JSON document per frame, produced by
polars), so no Python loop runs per row. Beside InfluxDB (``history=False``) the file
keeps only ``latest`` and alarms: a full copy costs ~6–12 µs/row of one core (`rongguan
bench ingest`), more than a 2-core machine has to spare at a city's rate, so history
then lives in InfluxDB alone, and ``latest`` is upserted from a de-duplicated buffer at
most every ``latest_every_s`` (one row per series instead of one per sample).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import polars as pl

from contracts.alarms import AlarmEvent
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

__all__ = ["EmbeddedStore"]

_DDL = """
CREATE TABLE IF NOT EXISTS telemetry (
    device_id TEXT NOT NULL, field TEXT NOT NULL, ts INTEGER NOT NULL,
    kind TEXT NOT NULL, value REAL,
    PRIMARY KEY (device_id, field, ts)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latest (
    device_id TEXT NOT NULL, field TEXT NOT NULL, kind TEXT NOT NULL,
    ts INTEGER NOT NULL, value REAL,
    PRIMARY KEY (device_id, field)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS alarm_events (
    alarm_id TEXT NOT NULL, updated_ns INTEGER NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (alarm_id, updated_ns)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS alarm_events_time ON alarm_events (updated_ns);
"""

_ROWS = """
SELECT json_extract(j.value, '$.device_id') AS device_id,
       json_extract(j.value, '$.field') AS field,
       json_extract(j.value, '$.ts') AS ts,
       json_extract(j.value, '$.kind') AS kind,
       json_extract(j.value, '$.value') AS value
FROM json_each(?) AS j
"""
_INSERT = f"INSERT OR REPLACE INTO telemetry (device_id, field, ts, kind, value) {_ROWS}"
# "WHERE true" resolves the parser ambiguity of INSERT ... SELECT ... ON CONFLICT.
_LATEST = f"""
INSERT INTO latest (device_id, field, ts, kind, value)
SELECT device_id, field, ts, kind, value FROM ({_ROWS}) WHERE true
ON CONFLICT (device_id, field) DO UPDATE
SET ts = excluded.ts, kind = excluded.kind, value = excluded.value
WHERE excluded.ts >= latest.ts
"""
_NS = 1_000_000_000
_KEY = ["device_id", "field"]
# A latest flush may take 1/40 of the time between flushes. The dashboard reads these
# values only when it starts (then it follows MQTT), so a city's 250k series may be half
# a minute behind; on 2 cores ingest's CPU is InfluxDB's throughput.
_FLUSH_SPACING = 40


class EmbeddedStore:
    """Telemetry and alarm history in a SQLite file; one writer, many readers.

    ``history=False`` keeps only the latest value per series (and alarms): the rows are
    buffered and upserted, newest per series, every ``latest_every_s`` or, when a flush
    takes longer than 1/40 of that, 40 flush-durations apart; a buffer of
    ``compact_rows`` rows is reduced to the newest per series (memory), and flushed at
    once when that holds ``max_pending`` series. The newest per series is picked for
    many frames at a time (per frame it cost 3× the CPU).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        read_only: bool = False,
        history: bool = True,
        latest_every_s: float = 1.0,
        max_pending: int = 1_000_000,
        compact_rows: int = 200_000,
    ) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.history = history
        self.latest_every_s = latest_every_s
        self.max_pending = max_pending
        self.compact_rows = min(compact_rows, max_pending)
        self._pending: pl.DataFrame | None = None  # newest per series (a failed flush's)
        self._frames: list[pl.DataFrame] = []  # written since, as they came
        self._frame_rows = 0
        self._pending_lock = threading.Lock()
        self._next_flush = time.monotonic() + latest_every_s
        self.latest_flushes = 0  # for metrics and tests
        self.latest_rows_flushed = 0
        if not self.path.exists() or not read_only:
            # A reader may start before the writer: create the (empty) schema once.
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with sqlite3.connect(self.path, timeout=30) as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.executescript(_DDL)
            db.close()
        if read_only:
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
        else:
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints
            # Inserts touch pages all over the index; 2 MB of cache (the default) re-reads
            # them from disk: 64 MB measured -25 % per row on a district's day.
            self._db.execute("PRAGMA cache_size=-65536")

    def write(self, frame: pl.DataFrame) -> int:
        """Insert or replace the frame's rows; returns rows written."""
        if self.read_only:
            raise StoreError(f"{self.path} is open read-only")
        if frame.height == 0:
            return 0
        if not self.history:
            self._buffer_latest(frame)
            return frame.height
        # In key order, inserts walk the clustered index instead of jumping (-15 %).
        doc = frame.select(list(SCHEMA)).sort(_KEY + ["ts"]).write_json()
        with self._db:
            self._db.execute(_INSERT, (doc,))
            self._db.execute(_LATEST, (doc,))
        return frame.height

    def _buffer_latest(self, frame: pl.DataFrame) -> None:
        with self._pending_lock:
            self._frames.append(frame.select(list(SCHEMA)))
            self._frame_rows += frame.height
            if self._frame_rows >= self.compact_rows:
                self._pending = self._newest_locked()  # compacted: one row per series
            due = time.monotonic() >= self._next_flush
            pending = self._pending.height if self._pending is not None else 0
            if due or pending >= self.max_pending:
                self._flush_locked()

    def flush(self) -> None:
        """Upsert buffered latest values now (reads and close do this themselves)."""
        with self._pending_lock:
            self._flush_locked()

    def _newest_locked(self) -> pl.DataFrame | None:
        """The buffered rows reduced to the newest per series (the buffer is emptied)."""
        frames = ([self._pending] if self._pending is not None else []) + self._frames
        self._pending, self._frames, self._frame_rows = None, [], 0
        if not frames:
            return None
        # The newest per series; ties on ts go to the later row, as a rewrite would.
        return (
            pl.concat(frames)
            .sort("ts", maintain_order=True)
            .unique(_KEY, keep="last", maintain_order=False)
        )

    def _flush_locked(self) -> None:
        t0 = time.monotonic()
        pending = self._newest_locked()
        if pending is None or pending.height == 0:
            return
        try:
            with self._db:
                # In key order the upsert walks the primary key instead of jumping (-65 %).
                self._db.execute(_LATEST, (pending.sort(_KEY).write_json(),))
        except sqlite3.Error as exc:
            self._pending = pending  # kept (bounded by series) for the next flush
            raise StoreUnavailable(f"{self.path}: latest values not written: {exc}") from exc
        # A flush costs ~2.6 µs per series: a city's 250k series would take most of every
        # second, so flushes are spaced to take at most ~2.5 % of the time.
        took = time.monotonic() - t0
        self._next_flush = t0 + max(self.latest_every_s, took * _FLUSH_SPACING)
        self.latest_flushes += 1
        self.latest_rows_flushed += pending.height

    def latest(self, kind: str | None = None) -> pl.DataFrame:
        """The last value per (device_id, field), optionally of one kind."""
        self.flush()  # buffered values first (nothing to do when there are none)
        sql = "SELECT device_id, kind, ts, field, value FROM latest"
        args: tuple = ()
        if kind is not None:
            sql += " WHERE kind = ?"
            args = (kind,)
        return self._frame(sql + " ORDER BY device_id, field", args, SCHEMA)

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
        where = "FROM telemetry WHERE device_id = ? AND field = ? AND ts >= ? AND ts < ?"
        args: tuple = (device_id, field, int(start_ns), int(end_ns))
        if every_s is None:
            return self._frame(f"SELECT ts, value {where} ORDER BY ts", args, RANGE_SCHEMA)
        fn = {"mean": "avg", "max": "max"}.get(agg)
        if fn is None:
            raise ValueError(f"agg must be 'mean' or 'max', not {agg!r}")
        step = int(every_s * _NS)
        if step <= 0:
            raise ValueError("every_s must be positive")
        sql = f"SELECT (ts / ?) * ? AS b, {fn}(value) {where} GROUP BY b ORDER BY b"
        return self._frame(sql, (step, step, *args), RANGE_SCHEMA)

    def track(self, device_id: str, start_ns: int, end_ns: int) -> pl.DataFrame:
        """A vehicle's fixes in time order; a fix needs lat and lon, speed/heading may be null."""
        cols = ", ".join(
            f"max(CASE WHEN field = '{f}' THEN value END) AS {f}" for f in TRACK_FIELDS
        )
        fields = ", ".join(f"'{f}'" for f in TRACK_FIELDS)
        sql = (
            f"SELECT ts, {cols} FROM telemetry WHERE device_id = ? AND field IN ({fields}) "
            "AND ts >= ? AND ts < ? GROUP BY ts HAVING lat IS NOT NULL AND lon IS NOT NULL "
            "ORDER BY ts"
        )
        return self._frame(sql, (device_id, int(start_ns), int(end_ns)), TRACK_SCHEMA)

    def write_alarm(self, event: AlarmEvent) -> None:
        """Record one alarm transition (the same transition twice is stored once)."""
        if self.read_only:
            raise StoreError(f"{self.path} is open read-only")
        with self._db:
            self._db.execute(
                "INSERT OR REPLACE INTO alarm_events VALUES (?, ?, ?)",
                (event.alarm_id, event.updated_ns, event.model_dump_json()),
            )

    def alarm_history(self, start_ns: int, end_ns: int) -> pl.DataFrame:
        """Alarm transitions with start_ns <= updated_ns < end_ns, oldest first."""
        rows = self._db.execute(
            "SELECT doc FROM alarm_events WHERE updated_ns >= ? AND updated_ns < ? "
            "ORDER BY updated_ns",
            (int(start_ns), int(end_ns)),
        ).fetchall()
        return alarm_frame([json.loads(r[0]) for r in rows])

    def alarm_events(self, alarm_id: str) -> pl.DataFrame:
        """Every stored transition of one alarm, oldest first (a primary-key prefix scan)."""
        rows = self._db.execute(
            "SELECT doc FROM alarm_events WHERE alarm_id = ? ORDER BY updated_ns", (alarm_id,)
        ).fetchall()
        return alarm_frame([json.loads(r[0]) for r in rows])

    def _frame(self, sql: str, args: tuple, schema: dict) -> pl.DataFrame:
        rows = self._db.execute(sql, args).fetchall()
        return pl.DataFrame(rows, schema=schema, orient="row")

    def close(self) -> None:
        """Write buffered latest values, then close the database connection."""
        try:
            self.flush()
        finally:
            self._db.close()
