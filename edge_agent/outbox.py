"""Telemetry batching and the ordered, acknowledged path from disk to broker.

    supervisors ──rows──► batcher ──TelemetryBatch per partition──► DiskBuffer (SQLite)
                                                                        │ oldest first,
                                                 PUBACK deletes ◄── paho (QoS 1, window)

Batches are flushed every ``max_delay_s`` or at ``max_rows``. At most ``window`` batches
are handed to paho and not yet acknowledged, so paho's 16-bit packet ids never wrap.

Pushing devices are answered only once their rows are on disk: :meth:`Outbox.commit`
returns a future that is True once the rows are in a committed batch (group commit
within ``COMMIT_DELAY_S``), False when the buffer refused them (quota with drop_newest,
disk error) - the device then gets no reply and resends. At most ``MAX_WAITERS`` such
futures wait at a time; more are refused at once (counted).

New batches wait in a bounded memory queue (``SPILL_MAX``, oldest dropped, counted) for
the writer, which stores them in order on the buffer's own thread (``DiskBuffer.call``:
the fsyncs never stall the event loop). When the disk refuses a batch (full, I/O error)
it is counted and logged, and the queued batches are published from memory after the
stored ones, so fresh data keeps flowing while the disk is unusable; each new batch
tries the disk again, and once it takes one the queue goes to disk first, in order.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections import defaultdict, deque
from dataclasses import dataclass

from contracts import topics
from contracts.config import BatchConfig
from contracts.telemetry import TelemetryBatch, TelemetryRow
from contracts.telemetry_arrow import encode_batch
from drivers.base import RateLimitedLog
from edge_agent.buffer import DiskBuffer, StoreError
from edge_agent.link import MqttLink

__all__ = ["Outbox", "COMMIT_DELAY_S", "MAX_WAITERS", "SPILL_MAX"]

log = logging.getLogger(__name__)

COMMIT_DELAY_S = 0.02  # group commit: rows waiting for a reply are flushed this soon
MAX_WAITERS = 10_000  # commit futures pending at once (one per frame awaiting its reply)
SPILL_MAX = 1_000  # batches kept in memory (waiting for the writer, or refused by the disk)
_LOG_EVERY_S = 30.0


@dataclass(slots=True)
class _Group:
    """The commit futures of one flush: True once every batch of it is on disk."""

    waiters: list[asyncio.Future[bool]]
    left: int = 0
    ok: bool = True


@dataclass(slots=True)
class _Batch:
    """An encoded batch not on disk: waiting for the writer, or refused (``spilled``)."""

    topic: str
    payload: bytes
    offline: bool
    seq: int
    group: _Group | None = None
    spilled: bool = False


class Outbox:
    """Batches rows, stores them, and publishes them in order as the broker allows."""

    def __init__(
        self,
        agent_id: str,
        batch: BatchConfig,
        buffer: DiskBuffer,
        link: MqttLink,
        *,
        partitions: int = 1,
        window: int = 100,
    ):
        self.agent_id = agent_id
        self.batch = batch
        self.buffer = buffer
        self.link = link
        self.partitions = partitions
        self.window = max(1, min(window, link.broker.max_inflight))
        self._rows: list[TelemetryRow] = []
        self._first_row_t = 0.0
        self._inflight: dict[int, tuple[int, bool]] = {}  # mid -> (row id, stored offline)
        self._cursor = 0  # highest row id handed to paho
        self._wake = asyncio.Event()
        self._waiters: list[asyncio.Future[bool]] = []
        self._commit_timer: asyncio.TimerHandle | None = None
        self._queue: deque[_Batch] = deque()  # not on disk yet, oldest first
        self._writing: _Batch | None = None  # the batch the buffer's thread is storing
        self._retry = False  # a new batch came: try the disk again
        self._stopped = False
        self._log_error = RateLimitedLog(log, _LOG_EVERY_S)
        self.counters = {
            "rows": 0,
            "batches": 0,
            "batches_published": 0,
            "batches_buffered": 0,
            "batches_replayed": 0,
            "disk_errors": 0,  # writes, reads or deletes the disk refused
            "batches_spilled": 0,  # kept in memory (not crash-safe) because the disk refused
            "spill_dropped": 0,
            "commits_waited": 0,  # commit futures handed out
            "commits_refused": 0,  # ... answered False (not stored, or too many waiting)
            "rows_after_stop": 0,  # handed in after drain(): not sent (a device resends)
        }
        link.on_puback = self._on_puback
        link.on_connected.append(self._wake.set)

    def add(self, rows: list[TelemetryRow]) -> None:
        """Queue rows for the next batch (flushing at once when ``max_rows`` is reached)."""
        if not rows:
            return
        if self._stopped:
            self.counters["rows_after_stop"] += len(rows)
            return
        if not self._rows:
            self._first_row_t = time.monotonic()
        self._rows.extend(rows)
        self.counters["rows"] += len(rows)
        if len(self._rows) >= self.batch.max_rows:
            self.flush()

    def commit(self, rows: list[TelemetryRow]) -> asyncio.Future[bool]:
        """Queue rows; the future is True once they are in a committed batch on disk."""
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.counters["commits_waited"] += 1
        if self._stopped or len(self._waiters) >= MAX_WAITERS:
            self.add(rows)  # the rows still travel (unless stopped); only the promise is refused
            self.counters["commits_refused"] += 1
            fut.set_result(False)
            return fut
        self._waiters.append(fut)  # before add(): a flush inside add() covers these rows
        self.add(rows)
        if self._waiters and self._commit_timer is None:
            self._commit_timer = asyncio.get_running_loop().call_later(
                min(COMMIT_DELAY_S, self.batch.max_delay_s), self._commit_due
            )
        return fut

    def _commit_due(self) -> None:
        self._commit_timer = None
        if self._waiters:
            self.flush()

    def flush(self) -> None:
        """Turn the queued rows into batches (one per partition) for the writer."""
        rows, self._rows = self._rows, []
        group = _Group(self._waiters)
        self._waiters = []
        offline = not self.link.connected.is_set()
        while rows:
            chunk, rows = rows[: self.batch.max_rows], rows[self.batch.max_rows :]
            groups: dict[int, list[TelemetryRow]] = defaultdict(list)
            for r in chunk:
                part = (
                    topics.partition_of(r.device_id, self.partitions) if self.partitions > 1 else 0
                )
                groups[part].append(r)
            for part, part_rows in sorted(groups.items()):
                self._queue_batch(part, part_rows, offline, group)
        if group.left == 0:
            self._settle(group, True)
        self._wake.set()

    def _queue_batch(
        self, partition: int, rows: list[TelemetryRow], offline: bool, group: _Group
    ) -> None:
        seq = self.buffer.next_seq()
        batch = TelemetryBatch(agent=self.agent_id, seq=seq, sent_ns=time.time_ns())
        batch.extend(rows)
        payload = encode_batch(batch)  # wire v2 (Arrow IPC); receivers also accept v1 JSON
        topic = topics.telemetry(partition, self.agent_id)
        self.counters["batches"] += 1
        if len(self._queue) >= SPILL_MAX:
            # the oldest not being written right now goes (its waiters are told "not stored")
            at = 1 if self._queue[0] is self._writing else 0
            if at < len(self._queue):
                gone = self._queue[at]
                del self._queue[at]
                self.counters["spill_dropped"] += 1
                self._settle_one(gone, False)
        item = _Batch(topic, payload, offline, seq, group)
        group.left += 1
        self._queue.append(item)
        self._retry = True  # the writer tries the disk again, for the oldest first

    def _settle_one(self, item: _Batch, stored: bool) -> None:
        group, item.group = item.group, None
        if group is None:
            return
        group.ok = group.ok and stored
        group.left -= 1
        if group.left == 0:
            self._settle(group, group.ok)

    def _settle(self, group: _Group, durable: bool) -> None:
        # One refused batch fails every waiter of its flush: a device told nothing resends,
        # which at worst duplicates rows, never loses them.
        for fut in group.waiters:
            if not fut.done():
                fut.set_result(durable)
                if not durable:
                    self.counters["commits_refused"] += 1

    def _disk_error(self, what: str, exc: Exception) -> None:
        self.counters["disk_errors"] += 1
        self._log_error(  # a full disk fails every batch
            "disk buffer %s: %s failed (%d disk errors so far; batches kept in memory, "
            "not crash-safe, until the disk takes writes again): %s",
            self.buffer.path,
            what,
            self.counters["disk_errors"],
            exc,
        )

    async def _write(self) -> None:
        """Store the queued batches in order, on the buffer's thread."""
        retry, self._retry = self._retry, False
        while self._queue:
            item = self._queue[0]
            if item.spilled and not retry:
                return  # the disk refused it; a new batch makes the writer try again
            self._writing = item
            try:
                kept = await self.buffer.call(
                    self.buffer.put,
                    item.topic,
                    item.payload,
                    offline=item.offline,
                    keep_after=self._cursor,
                    seq=item.seq,
                )
            except StoreError as exc:
                self._disk_error("storing a batch", exc)
                for queued in self._queue:  # all of them wait in memory now, in order
                    if not queued.spilled:
                        queued.spilled = True
                        self.counters["batches_spilled"] += 1
                    self._settle_one(queued, False)
                return
            finally:
                self._writing = None
            retry = True  # the disk takes writes: the rest of the memory queue follows
            if self._queue and self._queue[0] is item:
                self._queue.popleft()
            if item.offline and kept:
                self.counters["batches_buffered"] += 1
            if not kept:
                log.debug("buffer full: %d batches dropped so far", self.buffer.dropped)
            self._settle_one(item, kept)

    def _on_puback(self, mid: int) -> None:
        entry = self._inflight.pop(mid, None)
        if entry is None:
            return  # status or availability messages
        row_id, offline = entry
        if row_id and not self.buffer.closed:  # 0: from the memory queue, not on disk
            self.buffer.call(self.buffer.delete, row_id).add_done_callback(self._deleted)
        self.counters["batches_published"] += 1
        if offline:
            self.counters["batches_replayed"] += 1
        self._wake.set()

    def _deleted(self, fut: asyncio.Future[None]) -> None:
        exc = None if fut.cancelled() else fut.exception()
        if exc is not None:  # it is sent again after a restart: a duplicate
            self._disk_error("deleting an acknowledged batch", exc)

    async def _send(self) -> None:
        """Hand the oldest unsent batches to paho, up to the window."""
        room = self.window - len(self._inflight)
        if room <= 0 or not self.link.connected.is_set():
            return
        try:
            items = await self.buffer.call(self.buffer.after, self._cursor, room)
        except sqlite3.Error as exc:
            self._disk_error("reading batches", exc)
            return  # not the memory queue either: it must go after the stored batches
        for item in items:
            mid = self.link.publish(item.topic, item.payload, qos=1)
            self._inflight[mid] = (item.id, item.offline)
            self._cursor = item.id
        room -= len(items)
        if items and room <= 0:
            return
        # only once every stored batch is on its way; refused ones precede any fresh one
        while room > 0 and self._queue and self._queue[0].spilled:
            item = self._queue.popleft()
            self._inflight[self.link.publish(item.topic, item.payload, qos=1)] = (0, False)
            room -= 1

    async def run(self, stop: asyncio.Event) -> None:
        """Flush on time, store, and send whenever there is room; returns when ``stop`` is set."""
        while not stop.is_set():
            timeout = self.batch.max_delay_s
            if self._rows:
                timeout = max(0.0, self._first_row_t + self.batch.max_delay_s - time.monotonic())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
            self._wake.clear()
            if self._rows and time.monotonic() - self._first_row_t >= self.batch.max_delay_s:
                self.flush()
                self._wake.clear()
            await self._write()
            await self._send()

    async def drain(self, timeout_s: float) -> None:
        """On stop: store what is queued and give in-flight batches a moment to be acked."""
        if self._commit_timer is not None:  # no flush may run after the buffer is closed
            self._commit_timer.cancel()
            self._commit_timer = None
        self._stopped = True
        self.flush()
        await self._write()
        await self._send()
        deadline = time.monotonic() + timeout_s
        while self._inflight and self.link.connected.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), left)  # a PUBACK wakes it
            except TimeoutError:
                break
            await self._send()
        if self._queue:
            log.error("outbox: %d batches not stored on disk are lost at stop", len(self._queue))

    def stats(self) -> dict[str, int | float]:
        """Counters plus buffer depth, age and drops."""
        return {
            **self.counters,
            "batches_dropped": self.buffer.dropped,
            "buffer_bytes": self.buffer.size_bytes(),
            "buffer_disk_errors": self.buffer.disk_errors,
            "batches_in_memory": len(self._queue),
            "commits_waiting": len(self._waiters),
            "batches_inflight": len(self._inflight),
            "buffer_depth": self.buffer.depth(),
            "buffer_oldest_age_s": round(self.buffer.oldest_age_s(), 3),
            "batches_recovered": self.buffer.recovered,
        }
