"""A full disk under a running agent: counted, logged, and fresh data keeps flowing.

The disk is made full for real SQLite writes: the buffer file may not grow
(``PRAGMA max_page_count``) and its free room is taken (see ``_fill``), again on every
check, as other writers on a full disk would. The test's SQL runs on the buffer's own
thread (``io``), between the agent's writes, never inside one of its transactions. The agent must count the refused
writes, say so in its log, keep publishing new batches from memory, and go back to the
disk once there is room again.
"""

from __future__ import annotations

import sqlite3

import pytest

from tests.edge_agent.test_agent import _run, until

pytestmark = pytest.mark.servers


def _fill(db: sqlite3.Connection) -> None:
    """Take every free byte of the file (it may not grow): the disk is full.

    Free pages go to a filler table; the room left in the outbox's own pages (a deleted
    batch leaves some) to rows with negative ids, which are never sent nor evicted.
    """
    for size in (65536, 4096, 512, 64, 1):
        while True:
            try:
                db.execute("INSERT INTO filler VALUES (zeroblob(?))", (size,))
            except sqlite3.OperationalError:
                break
    for size in (4096, 512, 64, 1):
        while True:
            low = min(0, db.execute("SELECT COALESCE(MIN(id), 0) FROM outbox").fetchone()[0])
            try:
                db.execute(
                    "INSERT INTO outbox(id, topic, payload, created_ns) VALUES (?, '', zeroblob(?), 0)",
                    (low - 1, size),
                )
            except sqlite3.OperationalError:
                break


def test_disk_full_is_counted_and_fresh_data_keeps_flowing(mqtt_broker, tmp_path, caplog):
    async def body(agent, city, watcher, devices):
        outbox = agent._outbox
        db = outbox.buffer.db

        def on_io(fn, *args):
            return outbox.buffer.io.submit(fn, *args).result()

        def sql(stmt: str):
            return on_io(lambda: db.execute(stmt).fetchall())

        await until(lambda: agent.metrics()["batches_published"] >= 3, 15, "first batches")
        sql("CREATE TABLE filler (x BLOB)")
        pages = sql("PRAGMA page_count")[0][0]
        sql(f"PRAGMA max_page_count={pages}")

        def still_full(cond):
            def check():
                on_io(_fill, db)
                return cond()

            return check

        await until(still_full(lambda: agent.metrics()["disk_errors"] >= 2), 40, "disk errors")
        seq_at_error = max(b.seq for b in watcher.unique())
        await until(
            still_full(lambda: len([b for b in watcher.unique() if b.seq > seq_at_error]) >= 5),
            40,
            "fresh batches while the disk is full",
        )
        m = agent.metrics()
        assert m["batches_spilled"] >= 2 and m["buffer_disk_errors"] >= 2
        fresh = [b for b in watcher.unique() if b.seq > seq_at_error]
        assert sum(len(b) for b in fresh) > 0
        assert any("disk buffer" in r.getMessage() and "failed" in r.getMessage()
                   for r in caplog.records)  # fmt: skip
        # room again: the buffer takes the batches again, the memory queue empties
        sql("DROP TABLE filler")
        sql("DELETE FROM outbox WHERE id < 0")
        sql("PRAGMA max_page_count=1073741823")
        await until(lambda: agent.metrics()["batches_in_memory"] == 0, 20, "memory queue drained")
        spilled = agent.metrics()["batches_spilled"]
        published = agent.metrics()["batches_published"]
        await until(lambda: agent.metrics()["batches_published"] >= published + 3, 40, "more")
        assert agent.metrics()["batches_spilled"] == spilled  # stored on disk again

    with caplog.at_level("ERROR", logger="edge_agent.outbox"):
        _run(mqtt_broker, tmp_path, body, max_delay_s=1.0)
