"""Store-and-forward buffer: order, bounds, drop policies, survival across reopen."""

from __future__ import annotations

import random

import pytest

from edge_agent.buffer import DiskBuffer, StoreError
from edge_agent.supervisor import backoff_s


def test_order_and_delete(tmp_path):
    buf = DiskBuffer(tmp_path / "b.db", 10)
    for i in range(5):
        assert buf.put("t", f"m{i}".encode(), offline=i % 2 == 0)
    items = buf.after(0, 3)
    assert [i.payload for i in items] == [b"m0", b"m1", b"m2"] and [i.offline for i in items] == [
        True,
        False,
        True,
    ]
    assert [i.payload for i in buf.after(items[-1].id, 10)] == [b"m3", b"m4"]
    buf.delete(items[0].id)
    assert buf.depth() == 4


def test_drop_oldest_keeps_in_flight(tmp_path):
    buf = DiskBuffer(tmp_path / "b.db", 3, "drop_oldest")
    for i in range(3):
        buf.put("t", b"%d" % i, offline=True)
    first = buf.after(0, 1)[0]
    # batch 0 is in flight (handed to the client): the oldest *unsent* one goes instead
    assert buf.put("t", b"3", offline=True, keep_after=first.id)
    assert [i.payload for i in buf.after(0, 10)] == [b"0", b"2", b"3"]
    assert buf.dropped == 1 and buf.depth() == 3


def test_drop_newest(tmp_path):
    buf = DiskBuffer(tmp_path / "b.db", 2, "drop_newest")
    assert buf.put("t", b"a", offline=True) and buf.put("t", b"b", offline=True)
    assert not buf.put("t", b"c", offline=True)
    assert [i.payload for i in buf.after(0, 10)] == [b"a", b"b"] and buf.dropped == 1


def test_survives_reopen_and_seq_keeps_increasing(tmp_path):
    buf = DiskBuffer(tmp_path / "b.db", 10)
    seqs = [buf.next_seq() for _ in range(3)]
    buf.put("t", b"x", offline=True, seq=seqs[-1])  # the seq is stored with the batch
    buf.next_seq()  # taken by a batch that was never stored: need not survive
    buf.close()
    again = DiskBuffer(tmp_path / "b.db", 10)
    assert again.recovered == 1 and [i.payload for i in again.after(0, 10)] == [b"x"]
    assert again.next_seq() == seqs[-1] + 1 == 4


def test_bad_policy(tmp_path):
    with pytest.raises(ValueError, match="policy"):
        DiskBuffer(tmp_path / "b.db", 1, "drop_random")


def test_backoff_doubles_with_jitter_and_cap():
    rng = random.Random(1)
    delays = [backoff_s(n, 5.0, rng) for n in range(1, 10)]
    assert 0.8 <= delays[0] <= 1.2 and 1.6 <= delays[1] <= 2.4 and 3.2 <= delays[2] <= 4.8
    assert max(delays) <= 30 * 1.2
    assert len({round(d, 6) for d in delays[-3:]}) == 3  # jitter: capped delays still differ


def test_byte_quota_drops_oldest_with_counters(tmp_path):
    buf = DiskBuffer(tmp_path / "b.db", 100, "drop_oldest", max_bytes=350)
    for i in range(5):
        assert buf.put("t", bytes([i]) * 100, offline=True)
    assert [s.payload[0] for s in buf.after(0, 10)] == [2, 3, 4]
    assert buf.dropped == 2 and buf.depth() == 3 and buf.size_bytes() == 300
    buf.delete(buf.after(0, 1)[0].id)
    assert buf.size_bytes() == 200
    buf.close()
    assert DiskBuffer(tmp_path / "b.db", 100, max_bytes=350).size_bytes() == 200  # reopened


def test_a_batch_the_quota_cannot_make_room_for_evicts_nothing(tmp_path):
    buf = DiskBuffer(tmp_path / "b.db", 100, "drop_oldest", max_bytes=1000)
    for i in range(5):
        assert buf.put("t", bytes([i]) * 150, offline=True)
    in_flight = buf.after(0, 3)[-1].id  # three handed to the broker: only two may go
    # 750 + 600 B needs 350 B evicted; the two evictable hold 300: refused as a whole
    assert not buf.put("t", b"z" * 600, offline=True, keep_after=in_flight)
    assert [s.payload[0] for s in buf.after(0, 10)] == [0, 1, 2, 3, 4]
    assert buf.dropped == 1 and buf.depth() == 5 and buf.size_bytes() == 750
    buf.close()
    again = DiskBuffer(tmp_path / "b.db", 100, max_bytes=1000)  # nothing evicted on disk
    assert again.depth() == 5 and again.size_bytes() == 750
    # one that eviction can make room for evicts only what it needs (the two oldest unsent)
    assert again.put("t", b"y" * 500, offline=True, keep_after=in_flight)
    assert [s.payload[0] for s in again.after(0, 10)] == [0, 1, 2, ord("y")]
    assert again.dropped == 2 and again.size_bytes() == 950


def test_byte_quota_drop_newest_and_oversized(tmp_path):
    buf = DiskBuffer(tmp_path / "b.db", 100, "drop_newest", max_bytes=250)
    assert buf.put("t", b"a" * 100, offline=True) and buf.put("t", b"b" * 100, offline=True)
    assert not buf.put("t", b"c" * 100, offline=True)  # would pass 250 bytes: refused
    assert not buf.put("t", b"d" * 300, offline=True)  # can never fit
    assert [s.payload[:1] for s in buf.after(0, 10)] == [b"a", b"b"] and buf.dropped == 2


def _disk_full(buf: DiskBuffer) -> None:
    """Simulate a full disk: the file may not grow by a single page."""
    pages = buf.db.execute("PRAGMA page_count").fetchone()[0]
    buf.db.execute(f"PRAGMA max_page_count={pages}")


def test_disk_full_evicts_oldest_then_counts_and_raises(tmp_path):
    buf = DiskBuffer(tmp_path / "b.db", 100, "drop_oldest")
    for i in range(3):
        buf.put("t", bytes([i]) * 5000, offline=True)
    _disk_full(buf)
    # the oldest batch not in flight makes room: the new one is stored, both counted
    first = buf.after(0, 1)[0].id
    assert buf.put("t", b"z" * 5000, offline=True, keep_after=first)
    assert [s.payload[:1] for s in buf.after(0, 10)] == [b"\x00", b"\x02", b"z"]
    assert buf.dropped == 1 and buf.disk_errors >= 1
    # nothing left that may go (all in flight): a clear error, counted, the buffer intact
    last = buf.after(0, 10)[-1].id
    errors = buf.disk_errors
    with pytest.raises(StoreError, match="disk full"):
        buf.put("t", b"w" * 20000, offline=True, keep_after=last)
    assert buf.disk_errors > errors and buf.depth() == 3 and buf.size_bytes() == 15000
    buf.db.execute("PRAGMA max_page_count=1000000")  # space again: writes work again
    assert buf.put("t", b"w" * 20000, offline=True) and buf.depth() == 4


def test_disk_full_with_drop_newest_raises(tmp_path):
    buf = DiskBuffer(tmp_path / "b.db", 100, "drop_newest")
    buf.put("t", b"a" * 5000, offline=True)
    _disk_full(buf)
    with pytest.raises(StoreError, match="disk full"):
        buf.put("t", b"b" * 5000, offline=True)
    assert buf.depth() == 1 and buf.disk_errors == 1
