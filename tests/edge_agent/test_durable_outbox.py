"""The outbox's disk work, without a broker: off the event loop, in order, across a disk
that refuses writes for a while, and nothing flushed after drain().

A stand-in link (connected or not on cue, publishes recorded) replaces MQTT; the buffer
is a real SQLite file, refused on cue by a wrapper around its ``put``.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from contracts.config import BatchConfig, BrokerConfig
from contracts.telemetry import TelemetryRow
from contracts.telemetry_arrow import decode_batch
from edge_agent.buffer import DiskBuffer, StoreError
from edge_agent.outbox import Outbox


class FakeLink:
    """What the outbox uses of MqttLink: connected, publish, PUBACK and connect hooks."""

    def __init__(self) -> None:
        self.broker = BrokerConfig()
        self.connected = asyncio.Event()
        self.on_puback: Any = None
        self.on_connected: list[Any] = []
        self.published: list[bytes] = []

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> int:
        self.published.append(payload)
        return len(self.published)


def _row(i: int) -> list[TelemetryRow]:
    return [TelemetryRow("LC-1", "lighting_cabinet", 1_000 + i, "voltage_a", float(i))]


def _seqs(payloads: list[bytes]) -> list[int]:
    return [decode_batch(p).seq for p in payloads]


class Refusing:
    """Wraps a buffer's put: raises StoreError while ``on``; notes the threads it ran on."""

    def __init__(self, buf: DiskBuffer) -> None:
        self.on = False
        self.threads: set[str] = set()
        self._put = buf.put
        buf.put = self  # type: ignore[method-assign]

    def __call__(self, *args: Any, **kw: Any) -> bool:
        self.threads.add(threading.current_thread().name)
        if self.on:
            raise StoreError("disk full (test)")
        return self._put(*args, **kw)


def test_batches_refused_by_the_disk_go_back_to_it_first_and_in_order(tmp_path):
    async def main() -> None:
        buf = DiskBuffer(tmp_path / "b.db", 1000)
        link = FakeLink()  # the broker is away: nothing can be published meanwhile
        ob = Outbox("a1", BatchConfig(max_rows=1000, max_delay_s=60), buf, link)
        put = Refusing(buf)
        put.on = True
        refused = []
        for i in range(3):
            refused.append(ob.commit(_row(i)))
            ob.flush()
            await ob._write()
        assert [await f for f in refused] == [False] * 3  # not durable: the device resends
        assert ob.stats()["batches_in_memory"] == 3 and buf.depth() == 0
        assert ob.counters["batches_spilled"] == 3 and ob.counters["disk_errors"] >= 3
        put.on = False  # the disk takes writes again, the broker still away
        fresh = ob.commit(_row(3))
        ob.flush()
        await ob._write()
        assert await fresh
        assert ob.stats()["batches_in_memory"] == 0 and buf.depth() == 4
        assert _seqs([s.payload for s in buf.after(0, 10)]) == [1, 2, 3, 4]
        link.connected.set()
        await ob._send()
        assert _seqs(link.published) == [1, 2, 3, 4]
        # every SQLite call ran on the buffer's own thread, never on the event loop's
        assert put.threads and all(t.startswith("rg-buffer") for t in put.threads)
        assert threading.current_thread().name not in put.threads
        buf.close()

    asyncio.run(main())


def test_refused_batches_are_published_from_memory_after_the_stored_ones(tmp_path):
    async def main() -> None:
        buf = DiskBuffer(tmp_path / "b.db", 1000)
        link = FakeLink()
        ob = Outbox("a1", BatchConfig(max_rows=1000, max_delay_s=60), buf, link)
        put = Refusing(buf)
        ob.add(_row(0))
        ob.flush()
        await ob._write()  # seq 1 on disk
        put.on = True
        for i in (1, 2):
            ob.add(_row(i))
            ob.flush()
            await ob._write()
        link.connected.set()
        await ob._send()
        assert _seqs(link.published) == [1, 2, 3]
        assert ob.stats()["batches_in_memory"] == 0
        buf.close()

    asyncio.run(main())


def test_drain_cancels_the_group_commit_and_refuses_later_commits(tmp_path):
    async def main() -> None:
        buf = DiskBuffer(tmp_path / "b.db", 1000)
        link = FakeLink()
        ob = Outbox("a1", BatchConfig(max_rows=1000, max_delay_s=60), buf, link)
        waiting = ob.commit(_row(0))
        assert ob._commit_timer is not None
        await ob.drain(0.0)
        assert ob._commit_timer is None and await waiting and buf.depth() == 1
        buf.close()
        late = ob.commit(_row(1))  # a push that raced the stop: no promise, no flush
        assert late.done() and not late.result() and ob._commit_timer is None
        assert ob.counters["rows_after_stop"] == 1

    asyncio.run(main())
