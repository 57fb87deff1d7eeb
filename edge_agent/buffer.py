"""Store-and-forward on disk: every batch is written here before it is published.

A SQLite file (WAL, synchronous FULL) holds the outgoing batches in order; a batch is
deleted only when the broker has acknowledged it (PUBACK), so a crash or a kill loses
nothing that was not yet acknowledged. The buffer is bounded by ``max_batches``; when
full, ``drop_oldest`` discards the oldest batch not yet handed to the broker client,
``drop_newest`` refuses the new one. Either way the drop is counted.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DiskBuffer", "Stored"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_ns INTEGER NOT NULL,
    offline INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class Stored:
    """One stored batch: row id (publish order), topic, payload, stored while offline."""

    id: int
    topic: str
    payload: bytes
    offline: bool


class DiskBuffer:
    """The bounded, crash-safe queue of outgoing batches."""

    def __init__(self, path: str | Path, max_batches: int, policy: str = "drop_oldest"):
        if policy not in ("drop_oldest", "drop_newest"):
            raise ValueError(f"unknown drop policy {policy!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_batches = max_batches
        self.policy = policy
        self._db = sqlite3.connect(self.path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._depth = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        self.dropped = 0
        self._closed = False
        self.recovered = self._depth  # batches left over from a previous run

    def next_seq(self) -> int:
        """A batch sequence number, increasing across restarts."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute("SELECT value FROM meta WHERE key='seq'").fetchone()
            seq = (row[0] if row else 0) + 1
            self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('seq', ?)", (seq,))
        return seq

    def put(self, topic: str, payload: bytes, *, offline: bool, keep_after: int = 0) -> bool:
        """Store a batch; False when the policy dropped it. ``keep_after``: ids <= it are in flight."""
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            if self._depth >= self.max_batches:
                victim = None
                if self.policy == "drop_oldest":
                    victim = self._db.execute(
                        "SELECT id FROM outbox WHERE id > ? ORDER BY id LIMIT 1", (keep_after,)
                    ).fetchone()
                if victim is None:
                    self.dropped += 1
                    return False
                self._db.execute("DELETE FROM outbox WHERE id = ?", (victim[0],))
                self._depth -= 1
                self.dropped += 1
            self._db.execute(
                "INSERT INTO outbox(topic, payload, created_ns, offline) VALUES (?, ?, ?, ?)",
                (topic, payload, time.time_ns(), int(offline)),
            )
            self._depth += 1
        return True

    def after(self, last_id: int, limit: int) -> list[Stored]:
        """Up to ``limit`` batches with id > last_id, oldest first."""
        cur = self._db.execute(
            "SELECT id, topic, payload, offline FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
            (last_id, limit),
        )
        return [Stored(i, t, bytes(p), bool(o)) for i, t, p, o in cur]

    def delete(self, row_id: int) -> None:
        """Forget a batch the broker acknowledged."""
        cur = self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))
        self._depth -= cur.rowcount

    def depth(self) -> int:
        """Batches stored and not yet acknowledged."""
        return self._depth

    def oldest_age_s(self) -> float:
        """Age of the oldest stored batch in seconds (0 when empty)."""
        if self._closed:
            return 0.0
        row = self._db.execute("SELECT MIN(created_ns) FROM outbox").fetchone()
        return 0.0 if row[0] is None else (time.time_ns() - row[0]) / 1e9

    def close(self) -> None:
        """Close the file; the batches stay for the next run."""
        self._closed = True
        self._db.close()
