"""The alarm book: one alarm per (rule, subject) at a time, its lifecycle, persisted in SQLite.

Every change is committed first, then handed to ``publish`` (MQTT for the dashboard) and
``store_hook`` (history). Operator actions and case receipts go through the same path.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

from contracts.alarms import ACTIVE_STATES, AlarmEvent, AlarmState, CaseReceipt
from contracts.config import DeviceConfig, RuleConfig
from rules.transition import Transition

__all__ = ["AlarmBook", "AlarmActionError", "Action", "ACTIONS"]

log = logging.getLogger(__name__)

Action = Literal["acknowledge", "comment", "shelve", "resolve", "close"]
ACTIONS: tuple[str, ...] = ("acknowledge", "comment", "shelve", "resolve", "close")

# action -> (states it may start from, state it leads to; None keeps the state)
_MOVES: dict[str, tuple[frozenset[AlarmState], AlarmState | None]] = {
    "acknowledge": (frozenset({AlarmState.OPEN, AlarmState.SHELVED}), AlarmState.ACKNOWLEDGED),
    "comment": (frozenset(AlarmState) - {AlarmState.CLOSED}, None),
    "shelve": (
        frozenset({AlarmState.OPEN, AlarmState.ACKNOWLEDGED, AlarmState.IN_PROGRESS}),
        AlarmState.SHELVED,
    ),
    "resolve": (frozenset(ACTIVE_STATES), AlarmState.RESOLVED),
    "close": (frozenset(AlarmState) - {AlarmState.CLOSED}, AlarmState.CLOSED),
}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alarms (
    alarm_id TEXT PRIMARY KEY, rule_id TEXT NOT NULL, subject TEXT NOT NULL,
    state TEXT NOT NULL, updated_ns INTEGER NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS alarms_state ON alarms(state);
CREATE TABLE IF NOT EXISTS alarm_log (
    id INTEGER PRIMARY KEY, alarm_id TEXT NOT NULL, ts_ns INTEGER NOT NULL,
    user TEXT, action TEXT NOT NULL, text TEXT);
"""


class AlarmActionError(ValueError):
    """An operator action that cannot apply (unknown alarm or action, wrong state)."""


class AlarmBook:
    """All alarms, persisted; thread-safe (ingest hook, MQTT callbacks and the case worker)."""

    def __init__(
        self,
        path: Path,
        publish: Callable[[AlarmEvent], None],
        store_hook: Callable[[AlarmEvent], None] | None = None,
        devices: Mapping[str, DeviceConfig] | None = None,
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._publish = publish
        self._store_hook = store_hook
        self._devices = dict(devices or {})
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._open: dict[tuple[str, str], AlarmEvent] = {}
        placeholders = ",".join("?" * len(ACTIVE_STATES))
        for (doc,) in self._db.execute(
            f"SELECT doc FROM alarms WHERE state IN ({placeholders})",
            [s.value for s in ACTIVE_STATES],
        ):
            ev = AlarmEvent.model_validate_json(doc)
            self._open[(ev.rule_id, ev.subject)] = ev
        self.counters = {"raised": 0, "updated": 0, "cleared": 0, "actions": 0, "publish_errors": 0}

    def on_transition(self, tr: Transition, rule: RuleConfig) -> tuple[AlarmEvent, bool] | None:
        """Apply a raise or clear; return (the alarm, whether it was newly opened), or None."""
        with self._lock:
            ev = self._open.get((tr.rule_id, tr.subject))
            now = time.time_ns()
            if tr.kind == "raise":
                if ev is not None:  # still open: one alarm per (rule, subject)
                    ev = ev.model_copy(
                        update={
                            "condition_active": True,
                            "cleared_ns": None,
                            "value": tr.value,
                            "threshold": tr.threshold,
                            "updated_ns": now,
                        }
                    )
                    self.counters["updated"] += 1
                    self._save(ev, None, "reraise", None)
                    return ev, False
                ev = self._new(tr, rule, now)
                self.counters["raised"] += 1
                self._save(ev, None, "raise", None)
                return ev, True
            if ev is None:
                return None  # already resolved or closed by an operator
            update = {
                "condition_active": False,
                "cleared_ns": tr.ts,
                "value": tr.value,
                "updated_ns": now,
            }
            if ev.state == AlarmState.OPEN:
                update["state"] = AlarmState.RESOLVED
            ev = ev.model_copy(update=update)
            self.counters["cleared"] += 1
            self._save(ev, None, "clear", None)
            return ev, False

    def apply_action(self, alarm_id: str, action: str, user: str, text: str = "") -> AlarmEvent:
        """An operator action; raises :class:`AlarmActionError` when it does not apply."""
        if action not in _MOVES:
            raise AlarmActionError(
                f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}"
            )
        with self._lock:
            ev = self.get(alarm_id)
            if ev is None:
                raise AlarmActionError(f"no alarm {alarm_id!r}")
            allowed, target = _MOVES[action]
            if ev.state not in allowed:
                raise AlarmActionError(
                    f"cannot {action} alarm {alarm_id} in state {ev.state.value}"
                )
            now = time.time_ns()
            extra = dict(ev.extra)
            if action == "comment" or text:
                extra["comments"] = [
                    *extra.get("comments", []),
                    {"user": user, "text": text, "ts_ns": now, "action": action},
                ]
            update: dict = {"extra": extra, "updated_ns": now}
            if target is not None:
                update["state"] = target
            if action == "acknowledge":
                extra["acknowledged_by"] = user
            ev = ev.model_copy(update=update)
            self.counters["actions"] += 1
            self._save(ev, user, action, text)
            return ev

    def set_case(self, alarm_id: str, receipt: CaseReceipt) -> AlarmEvent | None:
        """Record the case number and status the case system gave this alarm."""
        with self._lock:
            ev = self.get(alarm_id)
            if ev is None:
                return None
            if ev.case_no == receipt.case_no and ev.case_status == receipt.status:
                return ev
            ev = ev.model_copy(
                update={
                    "case_no": receipt.case_no,
                    "case_status": receipt.status,
                    "updated_ns": time.time_ns(),
                }
            )
            self._save(ev, None, "case", receipt.case_no)
            return ev

    def get(self, alarm_id: str) -> AlarmEvent | None:
        """One alarm by id."""
        with self._lock:
            row = self._db.execute(
                "SELECT doc FROM alarms WHERE alarm_id = ?", (alarm_id,)
            ).fetchone()
        return AlarmEvent.model_validate_json(row[0]) if row else None

    def active(self) -> list[AlarmEvent]:
        """Alarms that are open, acknowledged, in progress or shelved, newest first."""
        with self._lock:
            return sorted(self._open.values(), key=lambda e: e.raised_ns, reverse=True)

    def recent(self, limit: int = 200) -> list[AlarmEvent]:
        """The most recently changed alarms in any state."""
        with self._lock:
            rows = self._db.execute(
                "SELECT doc FROM alarms ORDER BY updated_ns DESC LIMIT ?", (limit,)
            ).fetchall()
        return [AlarmEvent.model_validate_json(r[0]) for r in rows]

    def without_case(self) -> list[AlarmEvent]:
        """Alarms that have no case number yet (to re-enqueue after a crash)."""
        with self._lock:
            rows = self._db.execute("SELECT doc FROM alarms").fetchall()
        return [
            e for e in (AlarmEvent.model_validate_json(r[0]) for r in rows) if e.case_no is None
        ]

    def history(self, alarm_id: str) -> list[tuple[int, str | None, str, str | None]]:
        """(ts_ns, user, action, text) of everything that happened to an alarm."""
        with self._lock:
            return self._db.execute(
                "SELECT ts_ns, user, action, text FROM alarm_log WHERE alarm_id = ? ORDER BY id",
                (alarm_id,),
            ).fetchall()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def _new(self, tr: Transition, rule: RuleConfig, now: int) -> AlarmEvent:
        dev = self._devices.get(tr.device_id)
        extra: dict = {}
        if dev is not None:
            extra = {"device_name": dev.name, **dev.attrs}
        return AlarmEvent(
            alarm_id=uuid.uuid4().hex[:12],
            rule_id=rule.id,
            domain=rule.domain,
            device_id=tr.device_id,
            subject=tr.subject,
            field=tr.field,
            severity=rule.severity,
            raised_ns=tr.ts,
            updated_ns=now,
            value=tr.value,
            threshold=tr.threshold,
            message=rule.message or rule.id,
            lat=dev.location.lat if dev is not None and dev.location else None,
            lon=dev.location.lon if dev is not None and dev.location else None,
            extra=extra,
        )

    def _save(self, ev: AlarmEvent, user: str | None, action: str, text: str | None) -> None:
        with self._db:
            self._db.execute("BEGIN")
            self._db.execute(
                "INSERT OR REPLACE INTO alarms (alarm_id, rule_id, subject, state, updated_ns, doc) VALUES (?,?,?,?,?,?)",
                (
                    ev.alarm_id,
                    ev.rule_id,
                    ev.subject,
                    ev.state.value,
                    ev.updated_ns,
                    ev.model_dump_json(),
                ),
            )
            self._db.execute(
                "INSERT INTO alarm_log (alarm_id, ts_ns, user, action, text) VALUES (?,?,?,?,?)",
                (ev.alarm_id, ev.updated_ns, user, action, text),
            )
        key = (ev.rule_id, ev.subject)
        if ev.state in ACTIVE_STATES:
            self._open[key] = ev
        elif key in self._open and self._open[key].alarm_id == ev.alarm_id:
            del self._open[key]
        for hook in (self._publish, self._store_hook):
            if hook is None:
                continue
            try:
                hook(ev)
            except Exception:  # a broken subscriber must not lose the alarm (it is persisted)
                self.counters["publish_errors"] += 1
                log.exception("alarm hook failed for %s", ev.alarm_id)
