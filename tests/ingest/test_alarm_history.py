"""Alarm history in both real stores (the embedded SQLite file and InfluxDB 1.6.7 behind
nginx): records carry the storm parent, and one alarm's history is a query by its id."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from contracts.alarms import AlarmEvent, Severity
from ingest.store import ALARM_SCHEMA, EmbeddedStore
from tests.alarmstorm import record_storm

S = 1_000_000_000
T0 = 1_763_942_400 * S
WIDE = (0, 2**62)  # every record: processing times are "now", event times T0


@pytest.fixture(params=["embedded", pytest.param("influx", marks=pytest.mark.servers)])
def store(request, tmp_path) -> Iterator[object]:
    if request.param == "embedded":
        s: object = EmbeddedStore(tmp_path / "store.db")
    else:
        from ingest.store.influx import InfluxStore

        s = InfluxStore(request.getfixturevalue("influx"), retries=2)
    yield s
    s.close()  # type: ignore[attr-defined]


def _event(alarm_id: str, ts: int, **extra: object) -> AlarmEvent:
    return AlarmEvent(alarm_id=alarm_id, rule_id="r", domain="lighting", device_id="LC-1",
                      subject="LC-1", field="door_open", severity=Severity.MAJOR,
                      raised_ns=ts, updated_ns=ts, extra=dict(extra))  # fmt: skip


def test_every_record_of_a_storm_child_names_its_parent(store, tmp_path):
    storm = record_storm(tmp_path, store, T0)
    hist = store.alarm_history(*WIDE)
    assert hist.schema == ALARM_SCHEMA
    parents = dict(hist.select("alarm_id", "parent").unique().iter_rows())
    assert parents == {storm.parent: None, storm.lone: None,
                       **{c: storm.parent for c in storm.children}}  # fmt: skip
    # the book hands a child to the store once, already grouped: no ungrouped record of it
    first = [e for e in storm.events if e.alarm_id in storm.children]
    assert all(e.extra.get("parent") == storm.parent for e in first)
    # the parent's records list its children, as the live alarm does
    last = json.loads(hist.filter(hist["alarm_id"] == storm.parent)["extra"][-1])
    assert last["children"] == storm.children and last["comments"][0]["text"].startswith("已派人")


def test_one_alarms_history_is_a_query_by_its_id(store, tmp_path):
    storm = record_storm(tmp_path, store, T0)
    hist = store.alarm_history(*WIDE)
    for alarm_id in (storm.parent, storm.children[2], storm.lone):
        got = store.alarm_events(alarm_id)
        assert got.schema == ALARM_SCHEMA
        assert got.equals(hist.filter(hist["alarm_id"] == alarm_id))  # the same, by id
        assert got["ts"].is_sorted() and got.height >= 1
    states = store.alarm_events(storm.parent)["state"].to_list()
    assert states[0] == "open" and "acknowledged" in states and states[-1] == "resolved"
    assert store.alarm_events("no-such-alarm").height == 0


def test_an_id_that_needs_quoting_is_found_exactly(store):
    odd, plain = 'it\'s "A 1", ok', "it"
    store.write_alarm(_event(odd, T0))
    store.write_alarm(_event(plain, T0 + S))
    assert store.alarm_events(odd)["alarm_id"].to_list() == [odd]
    assert store.alarm_events(plain)["alarm_id"].to_list() == [plain]


def test_an_ungrouped_record_at_the_same_instant_folds_into_the_grouped_one(store):
    # What an older book wrote: the child first alone, then grouped, at one update time
    # (in InfluxDB two series, the parent tag differing; in SQLite one row replaced).
    store.write_alarm(_event("K-2", T0 + S))
    store.write_alarm(_event("K-2", T0 + S, parent="K-1"))
    store.write_alarm(_event("K-2", T0 + 2 * S, parent="K-1"))
    got = store.alarm_events("K-2")
    assert got.select("ts", "parent").rows() == [(T0 + S, "K-1"), (T0 + 2 * S, "K-1")]
    assert store.alarm_history(T0, T0 + 3 * S)["parent"].to_list() == ["K-1", "K-1"]


@pytest.mark.servers
def test_influx_tags_the_parent_and_leaves_it_off_others(influx, tmp_path):
    from ingest.store.influx import InfluxStore

    store = InfluxStore(influx, retries=2)
    try:
        storm = record_storm(tmp_path, store, T0)
        (res,) = store.query('SHOW TAG VALUES FROM "alarm_events" WITH KEY = "parent"')
        assert [v[1] for v in res["series"][0]["values"]] == [storm.parent]
        # the tag filters: a storm's children in one indexed query
        (res,) = store.query(
            f'SELECT "doc" FROM "alarm_events" WHERE "parent" = \'{storm.parent}\''
        )
        kids = {json.loads(v[1])["alarm_id"] for v in res["series"][0]["values"]}
        assert kids == set(storm.children)
        # a child's series all carry the tag (one alarm id -> one parent: no extra series)
        (res,) = store.query(
            f'SHOW SERIES FROM "alarm_events" WHERE "alarm_id" = \'{storm.children[0]}\''
        )
        assert all(f"parent={storm.parent}" in v[0] for v in res["series"][0]["values"])
        (res,) = store.query(f'SHOW SERIES FROM "alarm_events" WHERE "alarm_id" = \'{storm.lone}\'')
        assert all("parent=" not in v[0] for v in res["series"][0]["values"])
        # no parent tag: storm parents and lone alarms, as docs/influx-schema.md says
        (res,) = store.query('SELECT "doc" FROM "alarm_events" WHERE "parent" = \'\'')
        heads = {json.loads(v[1])["alarm_id"] for v in res["series"][0]["values"]}
        assert heads == {storm.parent, storm.lone}
    finally:
        store.close()


def test_an_answer_cut_off_midway_is_reported_as_unavailable():
    # A real local HTTP server whose answer stops short of its announced length.
    import socket
    import threading

    from contracts.config import InfluxConfig
    from ingest.store import StoreUnavailable
    from ingest.store.influx import InfluxStore

    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def answer() -> None:
        conn, _ = srv.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n{"results": [')

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    cfg = InfluxConfig(url=f"http://127.0.0.1:{port}", token="t", org="o", bucket="b")
    store = InfluxStore(cfg, retries=1)
    try:
        with pytest.raises(StoreUnavailable):
            store.alarm_events("A-1")
    finally:
        store.close()
        srv.close()
        t.join(10)
