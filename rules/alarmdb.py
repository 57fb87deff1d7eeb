"""Where the alarm book keeps its alarms: one SQLite file, the current document of every
alarm and a log of everything that happened to it. The book serialises access (its lock)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from contracts.alarms import ACTIVE_STATES, AlarmEvent

__all__ = ["AlarmDB"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alarms (
    alarm_id TEXT PRIMARY KEY, rule_id TEXT NOT NULL, subject TEXT NOT NULL,
    state TEXT NOT NULL, updated_ns INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alarms_state ON alarms(state);
CREATE TABLE IF NOT EXISTS alarm_log (
    id INTEGER PRIMARY KEY, alarm_id TEXT NOT NULL, ts_ns INTEGER NOT NULL,
    user TEXT, action TEXT NOT NULL, text TEXT);
"""


class AlarmDB:
    """Alarms as JSON documents keyed by id, and their log (autocommit, WAL)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)

    def save(self, ev: AlarmEvent, user: str | None, action: str, text: str | None) -> None:
        """Store the alarm's new state and log the action, in one transaction."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT OR REPLACE INTO alarms (alarm_id, rule_id, subject, state, updated_ns, doc)"
                " VALUES (?,?,?,?,?,?)",
                (ev.alarm_id, ev.rule_id, ev.subject, ev.state.value, ev.updated_ns,
                 ev.model_dump_json()),
            )  # fmt: skip
            self._db.execute(
                "INSERT INTO alarm_log (alarm_id, ts_ns, user, action, text) VALUES (?,?,?,?,?)",
                (ev.alarm_id, ev.updated_ns, user, action, text),
            )

    def get(self, alarm_id: str) -> AlarmEvent | None:
        """One alarm by id."""
        row = self._db.execute("SELECT doc FROM alarms WHERE alarm_id = ?", (alarm_id,)).fetchone()
        return AlarmEvent.model_validate_json(row[0]) if row else None

    def active(self) -> list[AlarmEvent]:
        """Alarms in an active state (open, acknowledged, in progress, shelved)."""
        marks = ",".join("?" * len(ACTIVE_STATES))
        rows = self._db.execute(
            f"SELECT doc FROM alarms WHERE state IN ({marks})", [s.value for s in ACTIVE_STATES]
        )
        return [AlarmEvent.model_validate_json(doc) for (doc,) in rows]

    def recent(self, limit: int) -> list[AlarmEvent]:
        """The most recently changed alarms in any state."""
        rows = self._db.execute(
            "SELECT doc FROM alarms ORDER BY updated_ns DESC LIMIT ?", (limit,)
        ).fetchall()
        return [AlarmEvent.model_validate_json(r[0]) for r in rows]

    def without_case(self) -> list[AlarmEvent]:
        """Alarms that have no case number yet."""
        rows = self._db.execute("SELECT doc FROM alarms").fetchall()
        return [
            e for e in (AlarmEvent.model_validate_json(r[0]) for r in rows) if e.case_no is None
        ]

    def history(self, alarm_id: str) -> list[tuple[int, str | None, str, str | None]]:
        """(ts_ns, user, action, text) of everything that happened to an alarm."""
        return self._db.execute(
            "SELECT ts_ns, user, action, text FROM alarm_log WHERE alarm_id = ? ORDER BY id",
            (alarm_id,),
        ).fetchall()

    def close(self) -> None:
        """Close the database."""
        self._db.close()
