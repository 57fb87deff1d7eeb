"""The ingest service: MQTT telemetry batches -> validate -> quarantine / store -> hooks.

Flow and bounds::

    paho network thread --put--> queue (bounded) --get--> worker (thread) --> store
                                                                   └--> hooks (event loop)

Messages are acknowledged to the broker (QoS 1, manual acks) only after their rows are
stored and the hooks ran, on a persistent session: a crash or a store outage loses
nothing the broker handed over, it is redelivered. The broker's in-flight window bounds
unacknowledged messages; if the queue still fills, the network thread blocks
(backpressure, counted in ``queue_waits``). While the store is unreachable the worker
retries with backoff and takes nothing new.

A rules-only worker (``write_store=False``) still validates and counts, but neither
writes history nor quarantines (the storing worker of the same partition does both).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import polars as pl

from contracts import topics
from contracts.config import DeploymentConfig
from contracts.mqtt import make_client
from contracts.telemetry import BatchError, TelemetryBatch
from ingest.frames import batch_to_frame
from ingest.quarantine import BAD_BATCH, Quarantine
from ingest.store import TelemetryStore, open_store
from ingest.validate import validate

__all__ = ["IngestService", "Hook"]

log = logging.getLogger(__name__)

Hook = Callable[[pl.DataFrame], None]


@dataclass(slots=True)
class _Msg:
    topic: str
    payload: bytes
    mid: int
    qos: int
    received_ns: int


class IngestService:
    """Consumes one partition's (or all) telemetry and stores it; hands batches to hooks."""

    def __init__(
        self,
        cfg: DeploymentConfig,
        *,
        hooks: Sequence[Hook] = (),
        write_store: bool = True,
        partition: int | None = None,
        queue_size: int = 256,
        max_rows_per_write: int = 50_000,
        retry_max_s: float = 5.0,
        client_id: str | None = None,
    ) -> None:
        self.cfg = cfg
        self.hooks = list(hooks)
        self.write_store = write_store
        self.partition = partition
        self.max_rows_per_write = max_rows_per_write
        self.retry_max_s = retry_max_s
        self.client_id = client_id
        self.devices: dict[str, str] | None = {
            dev_id: str(dev.kind) for dev_id, (_agent, dev) in cfg.devices().items()
        } or None  # a config without an inventory accepts every device
        self._queue: queue.Queue[_Msg] = queue.Queue(maxsize=queue_size)
        self._halt = threading.Event()
        self._connected = threading.Event()
        self.store: TelemetryStore | None = None
        self.quarantine: Quarantine | None = None
        self._client: mqtt.Client | None = None
        self._m: Counter[str] = Counter()
        self._quarantined: Counter[str] = Counter()
        self._latency = {"last_ms": 0.0, "max_ms": 0.0, "total_ms": 0.0, "n": 0}
        self._lag_s = 0.0

    # -- lifecycle ------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; then disconnect and close the store."""
        if self.write_store:
            self.store = await asyncio.to_thread(open_store, self.cfg)
            self.quarantine = Quarantine(self.cfg.path("quarantine.db"))
        self._client = self._make_client()
        self._client.connect_async(
            self.cfg.broker.host, self.cfg.broker.port, self.cfg.broker.keepalive_s
        )
        self._client.loop_start()
        try:
            while not stop.is_set():
                msgs = await asyncio.to_thread(self._take, 0.2)
                if msgs:
                    await self._handle(msgs, stop)
        finally:
            self._halt.set()
            self._client.disconnect()
            self._client.loop_stop()
            if self.store is not None:
                self.store.close()
            if self.quarantine is not None:
                self.quarantine.close()

    def wait_subscribed(self, timeout_s: float = 10.0) -> bool:
        """Block until the subscription is in place (for tests and start-up ordering)."""
        return self._connected.wait(timeout_s)

    def _make_client(self) -> mqtt.Client:
        role = "ingest" if self.write_store else "rules"
        part = "all" if self.partition is None else str(self.partition)
        cid = self.client_id or f"rg-{role}-{part}"
        # A fixed id and a persistent session: the broker keeps what we have not acked.
        client = make_client(self.cfg.broker, cid, clean_start=False)
        client.manual_ack_set(True)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        return client

    def _on_connect(self, client: mqtt.Client, _ud, _flags, reason, _props) -> None:
        if reason.is_failure:
            log.warning("ingest: broker refused connection: %s", reason)
            return
        client.subscribe(topics.telemetry_filter(self.partition), qos=1)
        self._m["connects"] += 1
        self._connected.set()

    def _on_disconnect(self, _client, _ud, _flags, reason, _props) -> None:
        self._connected.clear()
        self._m["disconnects"] += 1
        log.info("ingest: disconnected from broker: %s", reason)

    def _on_message(self, _client, _ud, msg: mqtt.MQTTMessage) -> None:
        item = _Msg(msg.topic, msg.payload, msg.mid, msg.qos, time.time_ns())
        while not self._halt.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                # Blocking the network thread is the backpressure: the broker holds the rest.
                self._m["queue_waits"] += 1

    # -- the worker -----------------------------------------------------------

    def _take(self, timeout_s: float) -> list[_Msg]:
        """Up to a write's worth of queued messages (waiting for the first)."""
        try:
            msgs = [self._queue.get(timeout=timeout_s)]
        except queue.Empty:
            return []
        # Payload size is a cheap proxy for rows; merging messages makes bigger writes.
        budget = self.max_rows_per_write * 40
        size = len(msgs[0].payload)
        while size < budget:
            try:
                m = self._queue.get_nowait()
            except queue.Empty:
                break
            msgs.append(m)
            size += len(m.payload)
        return msgs

    async def _handle(self, msgs: list[_Msg], stop: asyncio.Event) -> None:
        good = await asyncio.to_thread(self._process, msgs, stop)
        if good is None:
            return  # stopping before the rows were stored: do not ack, they come back
        if good.height:
            for hook in self.hooks:
                try:
                    hook(good)
                except Exception:
                    self._m["hook_errors"] += 1
                    log.exception("ingest: hook %r failed", hook)
        for m in msgs:
            if m.qos > 0 and self._client is not None:
                self._client.ack(m.mid, m.qos)
        self._m["batches_done"] += len(msgs)

    def _process(self, msgs: list[_Msg], stop: asyncio.Event) -> pl.DataFrame | None:
        frames = []
        now = time.time_ns()
        for m in msgs:
            self._m["batches_in"] += 1
            try:
                frame = batch_to_frame(TelemetryBatch.decode(m.payload))
            except BatchError as exc:
                self._count_bad(BAD_BATCH, 1)
                if self.quarantine is not None:
                    self.quarantine.add_payload(BAD_BATCH, m.topic, m.payload, m.received_ns)
                log.info("ingest: bad batch on %s: %s", m.topic, exc)
                continue
            self._m["rows_in"] += frame.height
            good, bad = validate(frame, self.devices, now)
            if bad.height:
                for reason, n in bad.group_by("reason").len().iter_rows():
                    self._count_bad(reason, n)
                if self.quarantine is not None:
                    self.quarantine.add_rows(bad, m.topic, m.received_ns)
            frames.append(good)
        if not frames:
            return pl.DataFrame()
        good = pl.concat(frames)
        if good.height:
            self._lag_s = (now - int(good.get_column("ts").max())) / 1e9  # type: ignore[arg-type]
            self._m["rows_good"] += good.height
        if self.store is not None and good.height:
            if not self._write(good, stop):
                return None
        return good

    def _write(self, good: pl.DataFrame, stop: asyncio.Event) -> bool:
        """Write, retrying until it succeeds or the service stops."""
        delay = 0.2
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                assert self.store is not None
                self._m["rows_written"] += self.store.write(good)
            except Exception as exc:  # the store boundary: count, wait, retry
                self._m["write_errors"] += 1
                log.warning("ingest: store write failed, retrying in %.1f s: %s", delay, exc)
                self._halt.wait(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            ms = (time.perf_counter() - t0) * 1000
            lat = self._latency
            lat["last_ms"] = ms
            lat["max_ms"] = max(lat["max_ms"], ms)
            lat["total_ms"] += ms
            lat["n"] += 1
            self._m["writes"] += 1
            return True
        return False

    def _count_bad(self, reason: str, n: int) -> None:
        self._quarantined[reason] += n
        self._m["rows_quarantined"] += n if reason != BAD_BATCH else 0

    # -- metrics --------------------------------------------------------------

    def metrics(self) -> dict:
        """Counters and gauges of this worker (a snapshot; safe from any thread)."""
        m = dict(self._m)
        lat = self._latency
        return {
            "batches_in": m.get("batches_in", 0),
            "batches_done": m.get("batches_done", 0),  # stored, handed to hooks and acked
            "rows_in": m.get("rows_in", 0),
            "rows_good": m.get("rows_good", 0),
            "rows_written": m.get("rows_written", 0),
            "rows_quarantined": m.get("rows_quarantined", 0),
            "quarantined": dict(self._quarantined),
            "writes": m.get("writes", 0),
            "write_errors": m.get("write_errors", 0),
            "write_latency_ms": {
                "last": lat["last_ms"],
                "max": lat["max_ms"],
                "mean": lat["total_ms"] / lat["n"] if lat["n"] else 0.0,
            },
            "lag_s": self._lag_s,
            "queue_depth": self._queue.qsize(),
            "queue_waits": m.get("queue_waits", 0),
            "hook_errors": m.get("hook_errors", 0),
            "connects": m.get("connects", 0),
            "disconnects": m.get("disconnects", 0),
            "quarantine_dropped": self.quarantine.dropped if self.quarantine else 0,
        }
