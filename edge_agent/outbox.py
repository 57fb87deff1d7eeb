"""Telemetry batching and the ordered, acknowledged path from disk to broker.

    supervisors ──rows──► batcher ──TelemetryBatch per partition──► DiskBuffer (SQLite)
                                                                        │ oldest first,
                                                 PUBACK deletes ◄── paho (QoS 1, window)

Batches are flushed every ``max_delay_s`` or at ``max_rows``. At most ``window`` batches
are handed to paho and not yet acknowledged, so paho's 16-bit packet ids never wrap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict

from contracts import topics
from contracts.config import BatchConfig
from contracts.telemetry import TelemetryBatch, TelemetryRow
from contracts.telemetry_arrow import encode_batch
from edge_agent.buffer import DiskBuffer
from edge_agent.link import MqttLink

__all__ = ["Outbox"]

log = logging.getLogger(__name__)


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
        self.counters = {
            "rows": 0,
            "batches": 0,
            "batches_published": 0,
            "batches_buffered": 0,
            "batches_replayed": 0,
        }
        link.on_puback = self._on_puback
        link.on_connected.append(self._wake.set)

    def add(self, rows: list[TelemetryRow]) -> None:
        """Queue rows for the next batch (flushing at once when ``max_rows`` is reached)."""
        if not rows:
            return
        if not self._rows:
            self._first_row_t = time.monotonic()
        self._rows.extend(rows)
        self.counters["rows"] += len(rows)
        if len(self._rows) >= self.batch.max_rows:
            self.flush()

    def flush(self) -> None:
        """Turn the queued rows into batches (one per partition) on disk."""
        rows, self._rows = self._rows, []
        while rows:
            chunk, rows = rows[: self.batch.max_rows], rows[self.batch.max_rows :]
            groups: dict[int, list[TelemetryRow]] = defaultdict(list)
            for r in chunk:
                part = (
                    topics.partition_of(r.device_id, self.partitions) if self.partitions > 1 else 0
                )
                groups[part].append(r)
            for part, part_rows in sorted(groups.items()):
                self._store(part, part_rows)
        self._wake.set()

    def _store(self, partition: int, rows: list[TelemetryRow]) -> None:
        batch = TelemetryBatch(
            agent=self.agent_id, seq=self.buffer.next_seq(), sent_ns=time.time_ns()
        )
        batch.extend(rows)
        offline = not self.link.connected.is_set()
        kept = self.buffer.put(
            topics.telemetry(partition, self.agent_id),
            encode_batch(batch),  # wire v2 (Arrow IPC); receivers also accept v1 JSON
            offline=offline,
            keep_after=self._cursor,
        )
        self.counters["batches"] += 1
        if offline and kept:
            self.counters["batches_buffered"] += 1
        if not kept or self.buffer.dropped:
            log.debug("buffer full: %d batches dropped so far", self.buffer.dropped)

    def _on_puback(self, mid: int) -> None:
        entry = self._inflight.pop(mid, None)
        if entry is None:
            return  # status or availability messages
        row_id, offline = entry
        self.buffer.delete(row_id)
        self.counters["batches_published"] += 1
        if offline:
            self.counters["batches_replayed"] += 1
        self._wake.set()

    def _send(self) -> None:
        """Hand the oldest unsent batches to paho, up to the window."""
        room = self.window - len(self._inflight)
        if room <= 0 or not self.link.connected.is_set():
            return
        for item in self.buffer.after(self._cursor, room):
            mid = self.link.publish(item.topic, item.payload, qos=1)
            self._inflight[mid] = (item.id, item.offline)
            self._cursor = item.id

    async def run(self, stop: asyncio.Event) -> None:
        """Flush on time and send whenever there is room; returns when ``stop`` is set."""
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
            self._send()

    async def drain(self, timeout_s: float) -> None:
        """On stop: store what is queued and give in-flight batches a moment to be acked."""
        self.flush()
        self._send()
        deadline = time.monotonic() + timeout_s
        while self._inflight and self.link.connected.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            self._send()

    def stats(self) -> dict[str, int | float]:
        """Counters plus buffer depth, age and drops."""
        return {
            **self.counters,
            "batches_dropped": self.buffer.dropped,
            "batches_inflight": len(self._inflight),
            "buffer_depth": self.buffer.depth(),
            "buffer_oldest_age_s": round(self.buffer.oldest_age_s(), 3),
            "batches_recovered": self.buffer.recovered,
        }
