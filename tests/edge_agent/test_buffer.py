"""Store-and-forward buffer: order, bounds, drop policies, survival across reopen."""

from __future__ import annotations

import random

import pytest

from edge_agent.buffer import DiskBuffer
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
    buf.put("t", b"x", offline=True)
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
