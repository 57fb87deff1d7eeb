"""Store-and-forward on disk: every batch is written here before it is published.

A SQLite file (WAL, synchronous FULL) holds the outgoing batches in order; a batch is
deleted only when the broker has acknowledged it (PUBACK), so a crash or a kill loses
nothing that was not yet acknowledged. The buffer is bounded by ``max_batches`` and by
``max_bytes`` (summed payload sizes; 0: no byte quota); when either is reached,
``drop_oldest`` discards the oldest batches not yet handed to the broker client,
``drop_newest`` refuses the new one. Either way the drop is counted.

A full disk (SQLITE_FULL, also what ``PRAGMA max_page_count`` simulates) is handled like
the quota: ``drop_oldest`` evicts and retries; when nothing can be evicted, or on any
other SQLite error, :class:`StoreError` is raised and counted in ``disk_errors``.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DiskBuffer", "Stored", "StoreError"]

log = logging.getLogger(__name__)

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
_FULL_RETRIES = 8  # evictions tried per batch when the disk is full


class StoreError(RuntimeError):
    """The disk refused a write (full disk, I/O error); the message says which."""


@dataclass(frozen=True, slots=True)
class Stored:
    """One stored batch: row id (publish order), topic, payload, stored while offline."""

    id: int
    topic: str
    payload: bytes
    offline: bool


def _is_full(exc: sqlite3.Error) -> bool:
    return "full" in str(exc).lower() or getattr(exc, "sqlite_errorname", "") == "SQLITE_FULL"


class DiskBuffer:
    """The bounded, crash-safe queue of outgoing batches."""

    def __init__(
        self,
        path: str | Path,
        max_batches: int,
        policy: str = "drop_oldest",
        max_bytes: int = 0,
    ):
        if policy not in ("drop_oldest", "drop_newest"):
            raise ValueError(f"unknown drop policy {policy!r}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.max_batches = max_batches
        self.max_bytes = max_bytes
        self.policy = policy
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        self._depth, self._bytes = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
        ).fetchone()
        row = self.db.execute("SELECT value FROM meta WHERE key='seq'").fetchone()
        self._seq = row[0] if row else 0
        self.dropped = 0
        self.disk_errors = 0
        self._closed = False
        self.recovered = self._depth  # batches left over from a previous run

    def next_seq(self) -> int:
        """A batch sequence number, increasing across restarts (in memory if the disk fails)."""
        self._seq += 1
        try:
            self.db.execute(
                "INSERT OR REPLACE INTO meta(key, value) VALUES ('seq', ?)", (self._seq,)
            )
        except sqlite3.Error as exc:
            self.disk_errors += 1
            log.error("buffer %s: cannot store the batch sequence: %s", self.path, exc)
        return self._seq

    def session_id(self) -> str:
        """A random token made with the file and kept in it: names the broker sessions whose
        unacknowledged messages belong with this buffer (see drivers.mqtt_tracker.hub)."""
        row = self.db.execute("SELECT value FROM meta WHERE key='session'").fetchone()
        if row is None:
            row = (secrets.randbits(48),)
            self.db.execute("INSERT INTO meta(key, value) VALUES ('session', ?)", row)
        return f"{row[0]:012x}"

    def _evict(self, keep_after: int) -> bool:
        """Delete the oldest batch not in flight (drop_oldest); False when there is none."""
        if self.policy != "drop_oldest":
            return False
        victim = self.db.execute(
            "SELECT id, LENGTH(payload) FROM outbox WHERE id > ? ORDER BY id LIMIT 1",
            (keep_after,),
        ).fetchone()
        if victim is None:
            return False
        self.db.execute("DELETE FROM outbox WHERE id = ?", (victim[0],))
        self._depth -= 1
        self._bytes -= victim[1]
        self.dropped += 1
        return True

    def _over(self, size: int) -> bool:
        return self._depth >= self.max_batches or (
            self.max_bytes > 0 and self._bytes + size > self.max_bytes
        )

    def put(self, topic: str, payload: bytes, *, offline: bool, keep_after: int = 0) -> bool:
        """Store a batch; False when the policy dropped it. ``keep_after``: ids <= it are in flight.

        Raises StoreError when the disk refuses the write and nothing can be evicted.
        """
        if self.max_bytes > 0 and len(payload) > self.max_bytes:
            self.dropped += 1  # could never fit, whatever is evicted
            return False
        for _attempt in range(_FULL_RETRIES):
            depth, size, dropped = self._depth, self._bytes, self.dropped
            try:
                with self.db:
                    self.db.execute("BEGIN IMMEDIATE")
                    while self._over(len(payload)):
                        if not self._evict(keep_after):
                            self.dropped += 1
                            return False
                    self.db.execute(
                        "INSERT INTO outbox(topic, payload, created_ns, offline) VALUES (?, ?, ?, ?)",
                        (topic, payload, time.time_ns(), int(offline)),
                    )
                self._depth += 1
                self._bytes += len(payload)
                return True
            except sqlite3.Error as exc:
                # rolled back: the evictions of this attempt did not happen
                self._depth, self._bytes, self.dropped = depth, size, dropped
                self.disk_errors += 1
                if not _is_full(exc):
                    raise StoreError(f"buffer {self.path}: {exc}") from exc
                if not self._evict_committed(keep_after):
                    raise StoreError(f"buffer {self.path}: disk full: {exc}") from exc
        raise StoreError(f"buffer {self.path}: disk full after {_FULL_RETRIES} evictions")

    def _evict_committed(self, keep_after: int) -> bool:
        try:
            with self.db:
                return self._evict(keep_after)
        except sqlite3.Error:
            return False

    def after(self, last_id: int, limit: int) -> list[Stored]:
        """Up to ``limit`` batches with id > last_id, oldest first."""
        cur = self.db.execute(
            "SELECT id, topic, payload, offline FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
            (last_id, limit),
        )
        return [Stored(i, t, bytes(p), bool(o)) for i, t, p, o in cur]

    def delete(self, row_id: int) -> None:
        """Forget a batch the broker acknowledged."""
        row = self.db.execute(
            "DELETE FROM outbox WHERE id = ? RETURNING LENGTH(payload)", (row_id,)
        ).fetchone()
        if row is not None:
            self._depth -= 1
            self._bytes -= row[0]

    def depth(self) -> int:
        """Batches stored and not yet acknowledged."""
        return self._depth

    def size_bytes(self) -> int:
        """Summed payload bytes of the stored batches."""
        return self._bytes

    def oldest_age_s(self) -> float:
        """Age of the oldest stored batch in seconds (0 when empty)."""
        if self._closed:
            return 0.0
        row = self.db.execute("SELECT MIN(created_ns) FROM outbox").fetchone()
        return 0.0 if row[0] is None else (time.time_ns() - row[0]) / 1e9

    def close(self) -> None:
        """Close the file; the batches stay for the next run."""
        self._closed = True
        self.db.close()
