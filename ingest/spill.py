"""The spill: a bounded on-disk queue (SQLite) of validated frames the store could not take.

While the history store is down or refusing to keep up, ingest spills each batch here
and only then acknowledges it to the broker, so the broker's own queue (capped by
Mosquitto's ``max_queued_messages``) never silently overflows. When the store returns,
frames replay oldest first; new batches queue behind them, so the store sees them in
order. Frames are kept as Arrow IPC (zstd): exact dtypes, nulls and NaN, compact.

Full (``max_rows``) policy:

    block        refuse the new frame: ingest stops acking and taking, so the broker
                 holds the rest (default: nothing acknowledged is ever dropped)
    drop_oldest  drop the oldest spilled frames to make room (counted in ``dropped``)
    drop_newest  drop the new frame, but acknowledge it (counted in ``dropped``)
"""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path
from typing import Literal

import polars as pl

__all__ = ["Spill", "SpillPolicy"]

SpillPolicy = Literal["block", "drop_oldest", "drop_newest"]

_DDL = """
CREATE TABLE IF NOT EXISTS spill (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rows INTEGER NOT NULL,
    frame BLOB NOT NULL
);
"""


class Spill:
    """Bounded FIFO of telemetry frames on disk; survives restarts."""

    def __init__(
        self, path: str | Path, max_rows: int = 5_000_000, policy: SpillPolicy = "block"
    ) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be >= 1")
        if policy not in ("block", "drop_oldest", "drop_newest"):
            raise ValueError(f"unknown spill policy {policy!r}")
        self.max_rows = max_rows
        self.policy = policy
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, timeout=30, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a frame is acknowledged to the broker right after it is spilled.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_DDL)
        row = self._db.execute("SELECT count(*), coalesce(sum(rows), 0) FROM spill").fetchone()
        self.depth_batches, self.depth_rows = int(row[0]), int(row[1])
        self.spilled = 0  # frames taken
        self.replayed = 0  # frames handed back to the store
        self.dropped = 0  # frames dropped by the policy
        self.dropped_rows = 0
        self.refused = 0  # frames refused under "block"

    def __len__(self) -> int:
        return self.depth_batches

    def put(self, frame: pl.DataFrame) -> bool:
        """Keep the frame; False if it was not kept and must not be acknowledged."""
        n = frame.height
        if self.depth_rows + n > self.max_rows and self.depth_batches:
            if self.policy == "block":
                self.refused += 1
                return False
            if self.policy == "drop_newest":
                self.dropped += 1
                self.dropped_rows += n
                return True
            while self.depth_batches and self.depth_rows + n > self.max_rows:
                oldest = self.peek()
                assert oldest is not None
                self._delete(oldest[0])
                self.dropped += 1
                self.dropped_rows += oldest[1].height
        buf = io.BytesIO()
        frame.write_ipc(buf, compression="zstd")
        with self._db:
            self._db.execute("INSERT INTO spill (rows, frame) VALUES (?, ?)", (n, buf.getvalue()))
        self.depth_batches += 1
        self.depth_rows += n
        self.spilled += 1
        return True

    def peek(self) -> tuple[int, pl.DataFrame] | None:
        """The oldest frame and its id, or None when empty."""
        row = self._db.execute("SELECT id, frame FROM spill ORDER BY id LIMIT 1").fetchone()
        if row is None:
            return None
        return int(row[0]), pl.read_ipc(io.BytesIO(row[1]))

    def done(self, spill_id: int) -> None:
        """The frame ``spill_id`` reached the store: forget it."""
        if self._delete(spill_id):
            self.replayed += 1

    def _delete(self, spill_id: int) -> bool:
        with self._db:
            row = self._db.execute(
                "DELETE FROM spill WHERE id = ? RETURNING rows", (spill_id,)
            ).fetchone()
        if row is None:
            return False
        self.depth_batches -= 1
        self.depth_rows -= int(row[0])
        return True

    def metrics(self) -> dict[str, int]:
        """Depth and counters."""
        return {
            "depth_batches": self.depth_batches,
            "depth_rows": self.depth_rows,
            "spilled": self.spilled,
            "replayed": self.replayed,
            "dropped": self.dropped,
            "dropped_rows": self.dropped_rows,
            "refused": self.refused,
        }

    def close(self) -> None:
        """Close the database."""
        self._db.close()
