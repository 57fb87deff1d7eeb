"""Persistent command memory: the latest ack of every command id seen, and an audit trail.

Two tables in the agent's buffer file (SQLite, synchronous FULL):

    command_state  command_id -> latest ack (idempotency across restarts)
    command_audit  one row per state transition: when, who (issued_by, role, reason),
                   what (device, action, params), result (state, detail)

Both are bounded: states by count (``max_ids``) and age (``max_age_s``), audit rows by
count (``max_audit``) and age (``max_audit_age_s``); what the bounds remove is counted.
A disk error is counted and logged and never stops a command: the executor keeps its
in-memory window of recent ids either way.

Under an agent the log shares the buffer's connection and its thread (``io``): the
executor runs every call through :meth:`CommandLog.later`, in order with the buffer's
writes and off the event loop.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from typing import Any, TypeVar

from contracts.commands import TERMINAL_STATES, Command, CommandAck
from drivers.base import RateLimitedLog

__all__ = ["CommandLog"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS command_state (
    command_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    state TEXT NOT NULL,
    ack TEXT NOT NULL,
    updated_ns INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS command_state_updated ON command_state(updated_ns);
CREATE TABLE IF NOT EXISTS command_audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts_ns INTEGER NOT NULL,
    agent TEXT NOT NULL,
    command_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    state TEXT NOT NULL,
    detail TEXT NOT NULL,
    issued_by TEXT NOT NULL,
    role TEXT NOT NULL,
    reason TEXT NOT NULL,
    action TEXT NOT NULL,
    params TEXT NOT NULL
);
"""
_PRUNE_EVERY = 200  # writes between two prunings
T = TypeVar("T")


class CommandLog:
    """Latest ack per command id and the audit trail, kept on disk across restarts."""

    def __init__(
        self,
        db: sqlite3.Connection,
        agent_id: str,
        *,
        max_ids: int = 100_000,
        max_age_s: float = 7 * 86400.0,
        max_audit: int = 1_000_000,
        max_audit_age_s: float = 90 * 86400.0,
        io: Executor | None = None,
    ):
        self.db = db
        self.io = io  # the one thread that uses ``db`` (None: the caller's)
        self.agent_id = agent_id
        self.max_ids, self.max_age_s = max_ids, max_age_s
        self.max_audit, self.max_audit_age_s = max_audit, max_audit_age_s
        self.counters = {"ids_pruned": 0, "audit_pruned": 0, "log_errors": 0}
        self._writes = 0
        self._error_log = RateLimitedLog(log, 30.0)
        self.db.executescript(_SCHEMA)
        self.prune()

    def later(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run one of this log's methods on ``io`` (without one: now); a future either way."""
        loop = asyncio.get_running_loop()
        if self.io is not None:
            return loop.run_in_executor(self.io, partial(fn, *args))
        fut: asyncio.Future[T] = loop.create_future()
        try:
            fut.set_result(fn(*args))
        except Exception as exc:
            fut.set_exception(exc)
        return fut

    def _error(self, what: str, exc: sqlite3.Error) -> None:
        self.counters["log_errors"] += 1
        self._error_log(  # a full disk fails every write
            "command log: %s failed: %s (%d failures so far)",
            what,
            exc,
            self.counters["log_errors"],
        )

    def get(self, command_id: str) -> CommandAck | None:
        """The latest ack recorded for ``command_id`` (in any earlier run), or None."""
        try:
            row = self.db.execute(
                "SELECT ack FROM command_state WHERE command_id = ?", (command_id,)
            ).fetchone()
        except sqlite3.Error as exc:
            self._error("reading a command state", exc)
            return None
        return None if row is None else CommandAck.model_validate_json(row[0])

    def record(self, ack: CommandAck, cmd: Command | None = None) -> None:
        """Store ``ack`` as the command's latest state and append its audit row."""
        self.audit(ack.command_id, ack.device_id, ack.state.value, ack.detail, cmd, ack=ack)

    def audit(
        self,
        command_id: str,
        device_id: str,
        event: str,
        detail: str,
        cmd: Command | None = None,
        *,
        ack: CommandAck | None = None,
    ) -> None:
        """Append an audit row (and, with ``ack``, update the command's latest state)."""
        now = time.time_ns()
        who: dict[str, Any] = (
            {"by": cmd.issued_by, "role": cmd.role, "reason": cmd.reason, "action": cmd.action}
            if cmd is not None
            else {"by": "", "role": "", "reason": "", "action": ""}
        )
        params = json.dumps(cmd.params, sort_keys=True) if cmd is not None else "{}"
        try:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                if ack is not None:
                    self.db.execute(
                        "INSERT OR REPLACE INTO command_state VALUES (?, ?, ?, ?, ?)",
                        (command_id, device_id, event, ack.model_dump_json(), now),
                    )
                self.db.execute(
                    "INSERT INTO command_audit(ts_ns, agent, command_id, device_id, state, "
                    "detail, issued_by, role, reason, action, params) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (now, self.agent_id, command_id, device_id, event, detail,
                     who["by"], who["role"], who["reason"], str(who["action"]), params),
                )  # fmt: skip
        except sqlite3.Error as exc:
            self._error(f"recording command {command_id} {event}", exc)
            return
        self._writes += 1
        if self._writes % _PRUNE_EVERY == 0:
            self.prune()

    def unfinished(self) -> list[CommandAck]:
        """Commands whose latest state is not final (a previous run stopped mid-way)."""
        terminal = tuple(s.value for s in TERMINAL_STATES)
        marks = ",".join("?" * len(terminal))
        try:
            rows = self.db.execute(
                f"SELECT ack FROM command_state WHERE state NOT IN ({marks})", terminal
            ).fetchall()
        except sqlite3.Error as exc:
            self._error("reading unfinished commands", exc)
            return []
        return [CommandAck.model_validate_json(r[0]) for r in rows]

    def trail(self, command_id: str) -> list[dict[str, Any]]:
        """The audit rows of one command, oldest first."""
        cur = self.db.execute(
            "SELECT * FROM command_audit WHERE command_id = ? ORDER BY id", (command_id,)
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur]

    def prune(self) -> None:
        """Apply the count and age bounds (counted)."""
        now = time.time_ns()
        try:
            with self.db:
                self.db.execute("BEGIN IMMEDIATE")
                n = self.db.execute(
                    "DELETE FROM command_state WHERE updated_ns < ? OR command_id IN ("
                    " SELECT command_id FROM command_state ORDER BY updated_ns DESC"
                    " LIMIT -1 OFFSET ?)",
                    (now - int(self.max_age_s * 1e9), self.max_ids),
                ).rowcount
                self.counters["ids_pruned"] += max(0, n)
                n = self.db.execute(
                    "DELETE FROM command_audit WHERE ts_ns < ? OR id <= ("
                    " SELECT COALESCE(MAX(id), 0) - ? FROM command_audit)",
                    (now - int(self.max_audit_age_s * 1e9), self.max_audit),
                ).rowcount
                self.counters["audit_pruned"] += max(0, n)
        except sqlite3.Error as exc:
            self._error("pruning", exc)
