"""Case routing: every opened alarm becomes one case, through a persistent outbox.

The record is written to the outbox (SQLite) before anything is sent; a worker thread
delivers due records to the sink, retrying with exponential backoff, and marks them
delivered only after the sink answered with a receipt. Delivery is at least once; the
sink files at most once per idempotency key (the alarm id): exactly one case per alarm.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from contracts.alarms import AlarmEvent, CaseReceipt, CaseRecord, Severity
from contracts.config import RuleConfig
from rules.sinks import CaseDeliveryError, CaseSink, EmbeddedCaseInbox, HttpCaseSink

__all__ = [
    "case_record",
    "CaseOutbox",
    "OutboxWorker",
    "CaseSink",
    "CaseDeliveryError",
    "EmbeddedCaseInbox",
    "HttpCaseSink",
]

log = logging.getLogger(__name__)

# how long the case system has to handle a case, by severity
_DEADLINE_H = {Severity.CRITICAL: 2, Severity.MAJOR: 24, Severity.MINOR: 72, Severity.WARNING: 168}


def case_record(ev: AlarmEvent, rule: RuleConfig) -> CaseRecord:
    """The case for an alarm, with the rule's category codes and the alarm's evidence."""
    # the geofence a vehicle alarm is about (disposal site, route, nearest approved site...)
    place = {
        k: ev.extra[k] for k in ("geofence", "geofence_name", "geofence_kind") if k in ev.extra
    }
    return CaseRecord(
        idempotency_key=ev.alarm_id,
        category_major=rule.category.major,
        category_minor=rule.category.minor,
        title=f"{ev.message} · {ev.subject}",
        description=(
            f"{ev.message}。设备 {ev.device_id}，{ev.field} = {ev.value:g}"
            f"（阈值 {ev.threshold:g}），规则 {rule.id}，级别 {ev.severity.value}。"
            if ev.value is not None and ev.threshold is not None
            else f"{ev.message}。设备 {ev.device_id}，规则 {rule.id}。"
        )
        + (f"关联区域 {place.get('geofence_name', place['geofence'])}。" if place else ""),
        device_id=ev.device_id,
        lat=ev.lat,
        lon=ev.lon,
        grid=ev.extra.get("grid"),
        evidence={
            "rule_id": rule.id,
            "alarm_id": ev.alarm_id,
            "subject": ev.subject,
            "field": ev.field,
            "value": ev.value,
            "threshold": ev.threshold,
            "raised_ns": ev.raised_ns,
            "severity": ev.severity.value,
            "deadline_ns": ev.raised_ns + _DEADLINE_H[ev.severity] * 3600 * 10**9,
            **place,
        },
    )


class CaseOutbox:
    """Case records waiting for (or done with) delivery, in SQLite."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (key TEXT PRIMARY KEY, record TEXT NOT NULL,"
            " enqueued_ns INTEGER NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
            " next_try_ns INTEGER NOT NULL DEFAULT 0, last_error TEXT,"
            " case_no TEXT, case_status TEXT, delivered_ns INTEGER)"
        )
        self.wake = threading.Event()

    def enqueue(self, record: CaseRecord) -> bool:
        """Add a record unless its key is already there; True when it was new."""
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO outbox (key, record, enqueued_ns) VALUES (?, ?, ?)",
                (record.idempotency_key, record.model_dump_json(), time.time_ns()),
            )
        self.wake.set()
        return cur.rowcount == 1

    def due(self, now_ns: int, limit: int = 100) -> list[tuple[CaseRecord, int]]:
        """Undelivered records whose retry time has come, oldest first, with their attempts."""
        with self._lock:
            rows = self._db.execute(
                "SELECT record, attempts FROM outbox WHERE delivered_ns IS NULL AND next_try_ns <= ?"
                " ORDER BY enqueued_ns LIMIT ?",
                (now_ns, limit),
            ).fetchall()
        return [(CaseRecord.model_validate_json(r), a) for r, a in rows]

    def next_due_ns(self) -> int | None:
        """When the next undelivered record is due, or None when all are delivered."""
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(next_try_ns) FROM outbox WHERE delivered_ns IS NULL"
            ).fetchone()
        return row[0]

    def delivered(self, key: str, receipt: CaseReceipt) -> None:
        """Mark a record delivered with the case system's receipt."""
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET delivered_ns = ?, case_no = ?, case_status = ? WHERE key = ?",
                (time.time_ns(), receipt.case_no, receipt.status, key),
            )

    def failed(self, key: str, error: str, next_try_ns: int) -> None:
        """Count a failed attempt and schedule the next one."""
        with self._lock:
            self._db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_try_ns = ? WHERE key = ?",
                (error, next_try_ns, key),
            )

    def stats(self) -> dict[str, int]:
        """Pending and delivered records, and failed attempts so far."""
        with self._lock:
            pending, delivered, attempts = self._db.execute(
                "SELECT COALESCE(SUM(delivered_ns IS NULL), 0), COALESCE(SUM(delivered_ns IS NOT NULL), 0),"
                " COALESCE(SUM(attempts), 0) FROM outbox"
            ).fetchone()
        return {"pending": pending, "delivered": delivered, "failed_attempts": attempts}

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


class OutboxWorker:
    """A thread delivering the outbox to a sink with exponential backoff."""

    def __init__(
        self,
        outbox: CaseOutbox,
        sink: CaseSink,
        on_receipt: Callable[[str, CaseReceipt], None],
        base_s: float = 0.5,
        max_s: float = 60.0,
    ):
        self.outbox = outbox
        self.sink = sink
        self.on_receipt = on_receipt
        self.base_s = base_s
        self.max_s = max_s
        self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> OutboxWorker:
        """Start delivering in a daemon thread."""
        self._thread = threading.Thread(target=self._loop, name="case-outbox", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop after the delivery in progress (undelivered records stay in the outbox)."""
        self._stop.set()
        self.outbox.wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def deliver_due(self) -> int:
        """Try every due record once; return how many were delivered."""
        done = 0
        for record, attempts in self.outbox.due(time.time_ns()):
            if self._stop.is_set():
                break
            try:
                receipt = self.sink.file(record)
            except CaseDeliveryError as exc:
                self._retry_later(record, attempts, str(exc))
                continue
            except Exception as exc:  # a sink bug must not kill the worker or lose the record
                log.exception("case sink failed")
                self._retry_later(record, attempts, f"{type(exc).__name__}: {exc}")
                continue
            self.outbox.delivered(record.idempotency_key, receipt)
            done += 1
            try:
                self.on_receipt(record.idempotency_key, receipt)
            except Exception:
                log.exception("case receipt callback failed for %s", record.idempotency_key)
        return done

    def _retry_later(self, record: CaseRecord, attempts: int, error: str) -> None:
        self.errors += 1
        delay = min(self.max_s, self.base_s * 2**attempts)
        log.warning(
            "case %s not delivered (attempt %d): %s; retry in %.1f s",
            record.idempotency_key,
            attempts + 1,
            error,
            delay,
        )
        self.outbox.failed(record.idempotency_key, error, time.time_ns() + int(delay * 1e9))

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.outbox.wake.clear()
            try:
                self.deliver_due()
                nxt = self.outbox.next_due_ns()
            except sqlite3.Error:
                log.exception("case outbox database error")
                nxt = time.time_ns() + int(self.max_s * 1e9)
            wait = self.max_s if nxt is None else max(0.0, (nxt - time.time_ns()) / 1e9)
            self.outbox.wake.wait(min(wait, self.max_s))
