"""The ingest service: MQTT telemetry batches -> validate -> quarantine / store -> hooks.

Flow and bounds::

    paho network thread --put--> queue (bounded) --get--> prepare (thread): decode,
        validate, quarantine --> hooks (event loop) --put--> writes (bounded)
        --get--> writer (thread): store, or spill when the store is down --> ack

Messages are acknowledged to the broker (QoS 1, manual acks, persistent session) only
after their rows are stored or safely spilled (:mod:`ingest.spill`). Preparing the
next messages overlaps with writing the previous ones, so on two cores the CPU work
and the database work run side by side. Every queue is bounded: when the writer is
behind, preparing blocks, then the network thread blocks (``queue_waits``), and the
broker's in-flight window holds the rest. While the store is down, batches go to the
spill (acked once spilled) and replay in order when it returns. A 4xx refusal (e.g. a
field type conflict) is not retried forever: the refused rows are isolated by halving
and quarantined as ``store_refused``.

A slow store (answers within its timeout) is not an outage: the writer waits, the
queues fill and ``queue_waits`` rises; nothing is spilled. Only a failed write spills.

Duplicates: a repeat of (device, field, ts) inside one message is quarantined as
``duplicate`` (the first is kept); a later message with the same point rewrites it, so the
last write wins, as InfluxDB and the embedded store both do (replays are harmless).

Scale-out: a worker given ``partition`` consumes that partition's telemetry topic and
keeps its own ``spill-p<N>.db`` and ``quarantine-p<N>.db``; tracker topics carry no
partition, so every worker receives them and keeps only its own devices' rows
(:mod:`ingest.prepare`). Not an MQTT 5 shared subscription: that would hand a device's
fixes to whichever worker is free, not to the one that owns its state. With
``ingest.metrics_port`` set, a storing worker serves /metrics (:mod:`ingest.prometheus`)
on that port plus its partition.

A rules-only worker (``write_store=False``) still validates and counts, but neither
writes history nor quarantines (the storing worker of the same partition does both).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import polars as pl

from contracts import topics
from contracts.config import DeploymentConfig
from contracts.mqtt import make_client
from contracts.prometheus import MetricsServer
from ingest.frames import empty_frame, strings
from ingest.limits import Limits, config_limits, limits_frame
from ingest.metrics import IngestMetrics, log_line
from ingest.prepare import Owner, prepare
from ingest.prometheus import ingest_text
from ingest.quarantine import Quarantine
from ingest.spill import Spill, SpillPolicy
from ingest.store import TelemetryStore, open_store
from ingest.store.lineproto import LINE, with_lines
from ingest.tracker import TrackerFormat
from ingest.validate import inventory_frame
from ingest.writer import Writer

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
        max_rows_per_write: int = 100_000,
        retry_max_s: float = 5.0,
        client_id: str | None = None,
        store: TelemetryStore | None = None,
        spill_max_rows: int | None = None,
        spill_policy: SpillPolicy | None = None,
        limits: Limits | None = None,
        tracker_topic: str | None = None,
        tracker_format: TrackerFormat | None = None,
        max_future_s: float | None = None,
        max_past_s: float | None = None,
        log_every_s: float = 60.0,
        gil_switch_s: float | None = 0.0005,
    ) -> None:
        self.cfg = cfg
        ing = cfg.ingest  # the deployment's ``ingest:`` section; arguments override it
        self.hooks = list(hooks)
        self.write_store = write_store
        self.partition = partition
        self.max_rows_per_write = max_rows_per_write
        self.retry_max_s = retry_max_s
        self.client_id = client_id
        self.spill_max_rows = ing.spill_max_rows if spill_max_rows is None else spill_max_rows
        self.spill_policy: SpillPolicy = spill_policy or ing.spill_policy
        self.limits = limits_frame({**config_limits(ing.limits), **(limits or {})})
        self.max_future_s = ing.max_future_s if max_future_s is None else max_future_s
        self.max_past_s = ing.max_past_s if max_past_s is None else max_past_s
        #: Third-party trackers' JSON topic filter (e.g. ``trackers/+/gps``); None: off.
        self.tracker_topic = tracker_topic or ing.tracker_topic
        self.tracker_format = tracker_format or TrackerFormat()
        self.log_every_s = log_every_s
        self.gil_switch_s = gil_switch_s
        # Devices and the agents themselves (their self-monitoring rows, kind ``agent``).
        # A config without devices accepts every device.
        devices = cfg.inventory() if cfg.devices() else {}
        self.devices: dict[str, str] | None = devices or None
        self._queue: queue.Queue[_Msg] = queue.Queue(maxsize=queue_size)
        self._halt = threading.Event()
        self._subscribed = threading.Event()  # set on SUBACK, not on CONNACK
        self._pending_subs: set[int] = set()
        self._given_store = store  # e.g. a benchmark's InfluxStore alone; closed by run()
        self.store: TelemetryStore | None = None
        self.quarantine: Quarantine | None = None
        self.spill: Spill | None = None
        self._writer: Writer | None = None
        self._client: mqtt.Client | None = None
        self.m = IngestMetrics()
        cfg.check_partition(partition)
        self.owner: Owner | None = None if partition is None else (partition, cfg.partitions)
        port = ing.metrics_port
        if port and partition:
            port += partition
            if port > 65535:
                raise ValueError(
                    f"ingest.metrics_port {ing.metrics_port} + partition {partition} > 65535"
                )
        # Only the storing worker serves: a rules-only worker of the same partition would
        # take the same port (and its counters repeat the storing worker's).
        serve = port is not None and write_store
        self.metrics_server = MetricsServer(self.prometheus, port) if serve else None

    def prometheus(self) -> str:
        """The metrics in Prometheus text format (what /metrics serves)."""
        return ingest_text(self.metrics())

    def _file(self, name: str) -> str:
        """A per-partition file name: two workers never share a spill or quarantine."""
        return name if self.partition is None else name.replace(".db", f"-p{self.partition}.db")

    # -- lifecycle ------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; then disconnect and close the store."""
        if self.gil_switch_s is not None:
            # The writer waits on the database and must get the GIL back at once when the
            # answer comes, not after the decoding thread's 5 ms slice: measured +25 %
            # rows/s on 2 cores (bench/ingest.py). Process-wide; None leaves it alone.
            sys.setswitchinterval(min(sys.getswitchinterval(), self.gil_switch_s))
        if self.metrics_server is not None:
            await self.metrics_server.start()  # first: a taken port fails before anything runs
        if self.write_store:
            store = self._given_store
            if store is None:
                store = await asyncio.to_thread(open_store, self.cfg, influx_retries=2)
            self.store = store
            self._encode_ahead = getattr(store, "takes_lines", False)
            self.quarantine = Quarantine(self.cfg.path(self._file("quarantine.db")))
            self.spill = Spill(
                self.cfg.path(self._file("spill.db")), self.spill_max_rows, self.spill_policy
            )
            self._writer = Writer(
                store, self.spill, self.quarantine, self.m, self._halt, self.retry_max_s
            )
            self._writer.start()
        self._client = self._make_client()
        self._client.connect_async(
            self.cfg.broker.host, self.cfg.broker.port, self.cfg.broker.keepalive_s
        )
        self._client.loop_start()
        next_log = time.monotonic() + self.log_every_s
        try:
            while not stop.is_set():
                msgs = await asyncio.to_thread(self._take, 0.2)
                if msgs:
                    await self._handle(msgs)
                if time.monotonic() >= next_log:
                    next_log = time.monotonic() + self.log_every_s
                    log.info(log_line(self.metrics()))
        finally:
            self._halt.set()
            if self._writer is not None:
                await asyncio.to_thread(self._writer.join, 30)
            self._client.disconnect()
            self._client.loop_stop()
            if self.metrics_server is not None:
                await self.metrics_server.stop()
            for closable in (self.store, self.quarantine, self.spill):
                if closable is not None:
                    closable.close()

    def wait_subscribed(self, timeout_s: float = 10.0) -> bool:
        """Block until the broker has confirmed the subscriptions (start-up ordering).

        Set on SUBACK: a message published between CONNACK and SUBACK would not reach
        a new session, so callers that publish right after must wait for this.
        """
        return self._subscribed.wait(timeout_s)

    def _make_client(self) -> mqtt.Client:
        role = "ingest" if self.write_store else "rules"
        part = "all" if self.partition is None else str(self.partition)
        cid = self.client_id or f"rg-{role}-{part}"
        # A fixed id and a persistent session: the broker keeps what we have not acked.
        client = make_client(self.cfg.broker, cid, clean_start=False, manual_ack=True)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.on_disconnect = self._on_disconnect
        return client

    def _on_connect(self, client: mqtt.Client, _ud, _flags, reason, _props) -> None:
        if reason.is_failure:
            log.warning("ingest: broker refused connection: %s", reason)
            return
        filters = [topics.telemetry_filter(self.partition)]
        if self.tracker_topic:
            filters.append(self.tracker_topic)
        for f in filters:
            _rc, mid = client.subscribe(f, qos=1)
            if mid is not None:
                self._pending_subs.add(mid)
        self.m.add("connects")

    def _on_subscribe(self, _client, _ud, mid: int, reasons, _props) -> None:
        if any(r.is_failure for r in reasons):
            log.error("ingest: broker refused subscription (mid %d): %s", mid, reasons)
            return
        self._pending_subs.discard(mid)
        if not self._pending_subs:
            self._subscribed.set()

    def _on_disconnect(self, _client, _ud, _flags, reason, _props) -> None:
        self._subscribed.clear()
        self._pending_subs.clear()
        self.m.add("disconnects")
        log.info("ingest: disconnected from broker: %s", reason)

    def _on_message(self, _client, _ud, msg: mqtt.MQTTMessage) -> None:
        item = _Msg(msg.topic, bytes(msg.payload), msg.mid, msg.qos, time.time_ns())
        while not self._halt.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return
            except queue.Full:
                # Blocking the network thread is the backpressure: the broker holds the rest.
                self.m.add("queue_waits")

    # -- the pipeline ---------------------------------------------------------

    def _take(self, timeout_s: float) -> list[_Msg]:
        """Up to a write's worth of queued messages (waiting for the first)."""
        try:
            msgs = [self._queue.get(timeout=timeout_s)]
        except queue.Empty:
            return []
        # Payload size is a cheap proxy for rows (v1 JSON takes ~40 bytes a row, v2 ~31,
        # so ~130k rows); merging messages makes bigger writes, and a group pays polars'
        # per-call costs once: 100k rows instead of 50k took 4 % less of ingest's CPU on
        # the full path (bench/ingest.py). Under a light load a group is whatever has
        # arrived, so this adds no latency then.
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

    async def _handle(self, msgs: list[_Msg]) -> None:
        good, to_store = await asyncio.to_thread(self._prepare, msgs)
        if good.height:
            for hook in self.hooks:
                try:
                    hook(good)
                except Exception:
                    self.m.add("hook_errors")
                    log.exception("ingest: hook %r failed", hook)
        if self._writer is not None and good.height:
            # Blocks while the writer is behind: that is the backpressure.
            await asyncio.to_thread(self._writer.submit, to_store, lambda: self._ack(msgs))
        else:
            self._ack(msgs)

    def _prepare(self, msgs: list[_Msg]) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The good rows, for the hooks and for the store (with lines encoded ahead)."""
        if self._inventory is None and self.devices is not None:
            self._inventory = inventory_frame(self.devices)
        good = prepare(
            [(m.topic, m.payload, m.received_ns) for m in msgs],
            self._inventory if self.devices is not None else None,
            self.limits,
            self.m,
            self.quarantine,
            self.tracker_format if self.tracker_topic else None,
            max_future_s=self.max_future_s,
            max_past_s=self.max_past_s,
            owner=self.owner,
            coded_good=True,
        )
        if good is None:
            return empty_frame(), empty_frame()
        if self._encode_ahead and good.height:
            # Encoding here, beside the writer rather than on its thread, keeps InfluxDB's
            # connections busy: idle 19 % of a write while the writer encoded, 6 % now.
            # The encoder takes the names as codes and gives them back as strings.
            to_store = with_lines(good)
            return to_store.drop(LINE), to_store
        good = strings(good)
        return good, good

    _inventory: pl.DataFrame | None = None
    _encode_ahead = False

    def _ack(self, msgs: list[_Msg]) -> None:
        for m in msgs:
            if m.qos > 0 and self._client is not None:
                self._client.ack(m.mid, m.qos)
        self.m.add("batches_done", len(msgs))

    # -- metrics --------------------------------------------------------------

    def metrics(self) -> dict:
        """Counters and gauges of this worker (a snapshot; safe from any thread)."""
        out = self.m.flat()
        out["queue_depth"] = self._queue.qsize()
        out["quarantine_dropped"] = self.quarantine.dropped if self.quarantine is not None else 0
        out["spill"] = self.spill.metrics() if self.spill is not None else {}
        out["spill_depth_rows"] = out["spill"].get("depth_rows", 0)
        return out
