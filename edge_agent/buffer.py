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

Every commit waits for the disk (fsync), so under an agent all calls go through
:meth:`DiskBuffer.call`, on one thread of the buffer's own (``io``): the event loop keeps
polling while the disk works, and one thread keeps the calls in order (and SQLite's
connection on one thread at a time). Direct calls suit tests and tools without a loop.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

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
_SAVE_SEQ = (
    "INSERT INTO meta(key, value) VALUES ('seq', ?) "
    "ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)"
)
T = TypeVar("T")


class _Refused(Exception):
    """The quota cannot make room: roll back the evictions of this attempt."""


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
        # one thread at a time: the constructor's, then only ``io``'s (see call())
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rg-buffer")
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(_SCHEMA)
        self._depth, self._bytes = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
        ).fetchone()
        row = self.db.execute("SELECT value FROM meta WHERE key='seq'").fetchone()
        self._seq = row[0] if row else 0
        self._session = self._load_session()
        self._oldest_ns = 0
        self._refresh_oldest()
        self.dropped = 0
        self.disk_errors = 0
        self._closed = False
        self.recovered = self._depth  # batches left over from a previous run

    def call(self, fn: Callable[..., T], *args: Any, **kw: Any) -> asyncio.Future[T]:
        """Run ``fn(*args, **kw)`` (a method of this buffer or of its file's users) on ``io``."""
        return asyncio.get_running_loop().run_in_executor(self.io, partial(fn, *args, **kw))

    def next_seq(self) -> int:
        """A batch sequence number, increasing across restarts (stored by :meth:`put`)."""
        self._seq += 1
        return self._seq

    def _load_session(self) -> str:
        row = self.db.execute("SELECT value FROM meta WHERE key='session'").fetchone()
        if row is None:
            row = (secrets.randbits(48),)
            self.db.execute("INSERT INTO meta(key, value) VALUES ('session', ?)", row)
        return f"{row[0]:012x}"

    def session_id(self) -> str:
        """A random token made with the file and kept in it: names the broker sessions whose
        unacknowledged messages belong with this buffer (see drivers.mqtt_tracker.hub)."""
        return self._session

    def _refresh_oldest(self) -> None:
        row = self.db.execute("SELECT created_ns FROM outbox ORDER BY id LIMIT 1").fetchone()
        self._oldest_ns = 0 if row is None else row[0]

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

    def put(
        self, topic: str, payload: bytes, *, offline: bool, keep_after: int = 0, seq: int = 0
    ) -> bool:
        """Store a batch; False when the policy dropped it. ``keep_after``: ids <= it are in
        flight; ``seq``: the batch's sequence number, stored in the same transaction.

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
                            raise _Refused  # rolls back: nothing evicted for a batch refused
                    self.db.execute(
                        "INSERT INTO outbox(topic, payload, created_ns, offline) VALUES (?, ?, ?, ?)",
                        (topic, payload, time.time_ns(), int(offline)),
                    )
                    if seq:
                        self.db.execute(_SAVE_SEQ, (seq,))
                self._depth += 1
                self._bytes += len(payload)
                self._refresh_oldest()
                return True
            except _Refused:
                self._depth, self._bytes = depth, size
                self.dropped = dropped + 1
                return False
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
                done = self._evict(keep_after)
        except sqlite3.Error:
            return False
        self._refresh_oldest()
        return done

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
            self._refresh_oldest()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def depth(self) -> int:
        """Batches stored and not yet acknowledged."""
        return self._depth

    def size_bytes(self) -> int:
        """Summed payload bytes of the stored batches."""
        return self._bytes

    def oldest_age_s(self) -> float:
        """Age of the oldest stored batch in seconds (0 when empty)."""
        if self._closed or not self._oldest_ns:
            return 0.0
        return (time.time_ns() - self._oldest_ns) / 1e9

    def close(self) -> None:
        """Close the file once the calls queued on ``io`` are done; the batches stay."""
        if self._closed:
            return
        self._closed = True
        self.io.submit(self.db.close)
        self.io.shutdown(wait=True)
