"""Cases: the embedded inbox is idempotent; the HTTP sink survives a flaky case system."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from contracts.alarms import AlarmEvent, CaseRecord
from rules.alarms import AlarmBook
from rules.cases import CaseOutbox, EmbeddedCaseInbox, HttpCaseSink, OutboxWorker, case_record
from rules.transition import Transition
from tests.rules._helpers import S, pm10


def _record(key: str) -> CaseRecord:
    return CaseRecord(idempotency_key=key, category_major="05", category_minor="0503", title="t",
                      description="d", device_id="D1")  # fmt: skip


def _wait(pred, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def test_embedded_inbox_files_once_per_key(tmp_path) -> None:
    inbox = EmbeddedCaseInbox(tmp_path / "cases.db")
    a = inbox.file(_record("a1"))
    assert inbox.file(_record("a1")) == a
    b = inbox.file(_record("b2"))
    assert a.status == "filed" and a.case_no != b.case_no
    assert (
        a.case_no.startswith("CD")
        and a.case_no.endswith("-000001")
        and len(a.case_no) == len("CD20261124-000123")
    )
    inbox.close()
    again = EmbeddedCaseInbox(tmp_path / "cases.db")  # it is a real database file
    assert again.file(_record("a1")) == a and len(again.cases()) == 2
    again.close()


class _FlakyCaseSystem(BaseHTTPRequestHandler):
    """Answers 500 to the first requests, stalls past the client's timeout once (after
    filing the case!), then works; files one case per Idempotency-Key."""

    state: dict

    def do_POST(self) -> None:  # noqa: N802
        st = self.state
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        key = self.headers["Idempotency-Key"]
        with st["lock"]:
            st["requests"] += 1
            n = st["requests"]
            if self.path != "/cases" or key != body["idempotency_key"]:
                st["bad"] += 1
            if n <= st["fail_first"]:
                self.send_error(500)
                return
            st["cases"].setdefault(key, f"SZ-{len(st['cases']) + 1:05d}")
            case_no = st["cases"][key]
            stall = not st["stalled"]
            st["stalled"] = True
        if stall:
            st["release"].wait(10)  # the client gives up first
            return
        data = json.dumps({"case_no": case_no, "status": "accepted"}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def case_system():
    state = {"lock": threading.Lock(), "requests": 0, "fail_first": 3, "stalled": False, "bad": 0,
             "cases": {}, "release": threading.Event()}  # fmt: skip
    handler = type("H", (_FlakyCaseSystem,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=server.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", state
    state["release"].set()
    server.shutdown()
    server.server_close()


def test_every_alarm_becomes_exactly_one_case(tmp_path, case_system) -> None:
    url, state = case_system
    published: list[AlarmEvent] = []
    book = AlarmBook(tmp_path / "alarms.db", published.append)
    outbox = CaseOutbox(tmp_path / "outbox.db")
    alarms = []
    for i in range(8):
        tr = Transition("pm10", f"D{i}", f"D{i}", "pm10", "raise", S, 250.0, 200.0)
        ev, new = book.on_transition(tr, pm10())
        assert new and outbox.enqueue(case_record(ev, pm10()))
        assert not outbox.enqueue(case_record(ev, pm10()))  # the outbox itself dedupes too
        alarms.append(ev.alarm_id)
    worker = OutboxWorker(
        outbox, HttpCaseSink(url, timeout_s=0.5), book.set_case, base_s=0.05, max_s=0.2
    ).start()
    try:
        _wait(lambda: all(book.get(a).case_no for a in alarms))
    finally:
        worker.stop()
    assert state["bad"] == 0 and state["stalled"] and worker.errors >= 4
    assert sorted(state["cases"]) == sorted(alarms)  # one case per alarm, none twice
    assert {book.get(a).case_no for a in alarms} == set(state["cases"].values())
    assert all(book.get(a).case_status == "accepted" for a in alarms)
    assert outbox.stats()["pending"] == 0 and outbox.stats()["delivered"] == 8
    assert any(e.case_no for e in published)  # the case number was republished
    record = json.loads(outbox._db.execute("SELECT record FROM outbox LIMIT 1").fetchone()[0])
    assert (record["category_major"], record["category_minor"]) == ("00", "0000")


def test_undelivered_records_survive_a_restart(tmp_path) -> None:
    outbox = CaseOutbox(tmp_path / "outbox.db")
    outbox.enqueue(_record("k1"))
    dead = OutboxWorker(
        outbox, HttpCaseSink("http://127.0.0.1:9", timeout_s=0.2), lambda k, r: None, base_s=0.01
    )
    assert dead.deliver_due() == 0 and outbox.stats() == {
        "pending": 1,
        "delivered": 0,
        "failed_attempts": 1,
    }
    outbox.close()

    outbox = CaseOutbox(tmp_path / "outbox.db")
    got = []
    worker = OutboxWorker(
        outbox, EmbeddedCaseInbox(tmp_path / "cases.db"), lambda k, r: got.append((k, r))
    )
    _wait(lambda: outbox.next_due_ns() is not None and outbox.next_due_ns() <= time.time_ns())
    assert worker.deliver_due() == 1 and got[0][0] == "k1"
