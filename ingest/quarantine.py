"""The quarantine: a bounded SQLite table of refused rows and payloads, with the reason.

Operators look here to see what ingest refused and why. It is bounded: past
``max_rows`` the oldest entries are dropped, and ``dropped`` counts them. Counts per
reason are kept separately and survive both the drop and a restart.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import polars as pl

__all__ = ["Quarantine", "BAD_BATCH"]

#: Reason for a whole MQTT payload that could not be decoded into a batch.
BAD_BATCH = "bad_batch"

_MAX_PAYLOAD_CHARS = 64 * 1024  # a garbage payload can be huge; keep enough to diagnose

_SCHEMA = """
CREATE TABLE IF NOT EXISTS quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    reason TEXT NOT NULL,
    topic TEXT NOT NULL,
    received_ns INTEGER NOT NULL,
    payload TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine_counts (
    reason TEXT PRIMARY KEY,
    n INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine_meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


class Quarantine:
    """Bounded store of refused telemetry (drop-oldest past ``max_rows``)."""

    def __init__(self, path: str | Path, max_rows: int = 100_000) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be >= 1")
        self.max_rows = max_rows
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()  # ingest's prepare and writer threads both add

    def add_rows(self, bad: pl.DataFrame, topic: str, received_ns: int | None = None) -> int:
        """Quarantine the rows of a frame carrying a ``reason`` column; returns how many."""
        if bad.height == 0:
            return 0
        received_ns = time.time_ns() if received_ns is None else received_ns
        # JSON per row, built by polars in one pass rather than a Python loop over rows.
        text = bad.select(
            pl.col("reason"),
            pl.struct(pl.exclude("reason")).struct.json_encode().alias("payload"),
        )
        self._insert(
            [(r, topic, received_ns, p) for r, p in text.iter_rows()],
            bad.group_by("reason").len().iter_rows(),
        )
        return bad.height

    def add_payload(
        self, reason: str, topic: str, payload: bytes, received_ns: int | None = None
    ) -> None:
        """Quarantine a whole payload (e.g. a batch that failed to decode)."""
        received_ns = time.time_ns() if received_ns is None else received_ns
        text = payload.decode("utf-8", errors="backslashreplace")[:_MAX_PAYLOAD_CHARS]
        self._insert([(reason, topic, received_ns, text)], [(reason, 1)])

    def _insert(self, rows: list[tuple], counts) -> None:
        with self._lock, self._db:
            self._db.executemany(
                "INSERT INTO quarantine (reason, topic, received_ns, payload) VALUES (?,?,?,?)",
                rows,
            )
            self._db.executemany(
                "INSERT INTO quarantine_counts VALUES (?, ?) "
                "ON CONFLICT(reason) DO UPDATE SET n = n + excluded.n",
                list(counts),
            )
            # Ids only grow and only the oldest are deleted, so max(id) - max_rows is the cut.
            cur = self._db.execute(
                "DELETE FROM quarantine WHERE id <= (SELECT max(id) FROM quarantine) - ?",
                (self.max_rows,),
            )
            if cur.rowcount > 0:
                self._db.execute(
                    "INSERT INTO quarantine_meta VALUES ('dropped', ?) "
                    "ON CONFLICT(key) DO UPDATE SET value = value + excluded.value",
                    (cur.rowcount,),
                )

    def counts(self) -> dict[str, int]:
        """Rows ever quarantined, per reason (including those since dropped)."""
        return dict(self._db.execute("SELECT reason, n FROM quarantine_counts").fetchall())

    @property
    def dropped(self) -> int:
        """Entries removed to keep the table within ``max_rows``."""
        row = self._db.execute("SELECT value FROM quarantine_meta WHERE key='dropped'").fetchone()
        return int(row[0]) if row else 0

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM quarantine").fetchone()[0])

    def recent(self, limit: int = 100, reason: str | None = None) -> pl.DataFrame:
        """The newest entries, newest first."""
        sql = "SELECT id, reason, topic, received_ns, payload FROM quarantine"
        args: tuple = ()
        if reason is not None:
            sql += " WHERE reason = ?"
            args = (reason,)
        rows = self._db.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        schema = {
            "id": pl.Int64,
            "reason": pl.Utf8,
            "topic": pl.Utf8,
            "received_ns": pl.Int64,
            "payload": pl.Utf8,
        }
        return pl.DataFrame(rows, schema=schema, orient="row")

    def close(self) -> None:
        """Close the database."""
        self._db.close()
