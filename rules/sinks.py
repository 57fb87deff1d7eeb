"""Case sinks: the embedded case inbox (a real SQLite case database) and the HTTP case system.

Both file a case at most once per idempotency key, so the outbox may retry freely.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Protocol

from contracts.alarms import CaseReceipt, CaseRecord

__all__ = ["CaseSink", "CaseDeliveryError", "EmbeddedCaseInbox", "HttpCaseSink"]

_CST = dt.timezone(dt.timedelta(hours=8))  # case numbers carry Beijing time dates


class CaseDeliveryError(RuntimeError):
    """A case could not be delivered this time; the outbox retries it."""


class CaseSink(Protocol):
    """Somewhere cases are filed."""

    def file(self, record: CaseRecord) -> CaseReceipt:
        """File a case (idempotent on ``record.idempotency_key``) and return its receipt."""
        ...


class EmbeddedCaseInbox:
    """The default case system: cases in a SQLite file, one per idempotency key."""

    def __init__(self, path: Path, prefix: str = "CD"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.prefix = prefix
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS cases (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
            " idempotency_key TEXT NOT NULL UNIQUE, case_no TEXT, status TEXT NOT NULL,"
            " filed_ns INTEGER NOT NULL, record TEXT NOT NULL)"
        )

    def file(self, record: CaseRecord) -> CaseReceipt:
        """File the case unless its key was filed before; return the case's receipt."""
        with self._lock, self._db:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute(
                "SELECT case_no, status FROM cases WHERE idempotency_key = ?",
                (record.idempotency_key,),
            ).fetchone()
            if row is None:
                now = time.time_ns()
                cur = self._db.execute(
                    "INSERT INTO cases (idempotency_key, status, filed_ns, record) VALUES (?, 'filed', ?, ?)",
                    (record.idempotency_key, now, record.model_dump_json()),
                )
                day = dt.datetime.fromtimestamp(now / 1e9, _CST).strftime("%Y%m%d")
                case_no = f"{self.prefix}{day}-{cur.lastrowid:06d}"
                self._db.execute(
                    "UPDATE cases SET case_no = ? WHERE seq = ?", (case_no, cur.lastrowid)
                )
                row = (case_no, "filed")
        return CaseReceipt(case_no=row[0], status=row[1])

    def cases(self) -> list[tuple[str, str, CaseRecord]]:
        """(case_no, status, record) of every case, in filing order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT case_no, status, record FROM cases ORDER BY seq"
            ).fetchall()
        return [(c, s, CaseRecord.model_validate_json(r)) for c, s, r in rows]

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()


class HttpCaseSink:
    """The city's case system: ``POST <url>/cases`` with an ``Idempotency-Key`` header."""

    def __init__(self, url: str, timeout_s: float = 5.0):
        self.url = url.rstrip("/") + "/cases"
        self.timeout_s = timeout_s

    def file(self, record: CaseRecord) -> CaseReceipt:
        """POST the case; 200/201 with ``{case_no, status}`` is success, anything else retries."""
        body = record.model_dump_json().encode()
        req = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Idempotency-Key": record.idempotency_key},
        )
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                status, payload = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            raise CaseDeliveryError(f"{self.url}: HTTP {exc.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise CaseDeliveryError(f"{self.url}: {getattr(exc, 'reason', exc)}") from None
        if status not in (200, 201):
            raise CaseDeliveryError(f"{self.url}: HTTP {status}")
        try:
            doc = json.loads(payload)
            return CaseReceipt(case_no=str(doc["case_no"]), status=str(doc.get("status", "filed")))
        except (ValueError, KeyError, TypeError) as exc:
            raise CaseDeliveryError(f"{self.url}: bad answer {payload[:100]!r}: {exc}") from None
