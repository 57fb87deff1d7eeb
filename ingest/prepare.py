"""Preparing a group of MQTT messages: decode, validate once, quarantine, count."""

from __future__ import annotations

import logging

import polars as pl

from contracts import clock, topics
from contracts.telemetry import BatchError
from ingest.frames import decode_frame
from ingest.metrics import IngestMetrics
from ingest.quarantine import BAD_BATCH, Quarantine
from ingest.tracker import TrackerFormat
from ingest.validate import validate

__all__ = ["prepare"]

log = logging.getLogger(__name__)

_AGENT_PREFIX = f"{topics.ROOT}/tele/"


def prepare(
    items: list[tuple[str, bytes, int]],
    inventory: pl.DataFrame | None,
    limits: pl.DataFrame | None,
    m: IngestMetrics,
    quarantine: Quarantine | None,
    tracker: TrackerFormat | None = None,
    *,
    max_future_s: float = 300.0,
    max_past_s: float = 7 * 86400.0,
) -> pl.DataFrame | None:
    """The good rows of (topic, payload, received_ns) messages; None if there were none.

    Agent batches arrive on the telemetry topics; anything else is third-party tracker
    JSON (only subscribed to when ``tracker`` is set). All messages of the group are
    validated in one pass (a per-message index scopes duplicates); timestamps more than
    ``max_future_s`` ahead of or ``max_past_s`` behind now are quarantined.
    """
    frames = []
    # Data time is the deployment's clock; the windows allow for wall-time latency (clock
    # skew, batching, replays after an outage), so they widen with the clock's speed.
    now = clock.now_ns()
    for i, (topic, payload, received_ns) in enumerate(items):
        m.add("batches_in")
        try:
            if topic.startswith(_AGENT_PREFIX) or tracker is None:
                frame = decode_frame(payload)
            else:
                m.add("tracker_messages")
                frame = tracker.decode(payload)
        except BatchError as exc:
            m.bad(BAD_BATCH, 1)
            if quarantine is not None:
                quarantine.add_payload(BAD_BATCH, topic, payload, received_ns)
            log.info("ingest: bad batch on %s: %s", topic, exc)
            continue
        m.batch(frame.height)
        frames.append(frame.with_columns(pl.lit(i, dtype=pl.UInt32).alias("_msg")))
    if not frames:
        return None
    frame = pl.concat(frames)
    m.add("rows_in", frame.height)
    good, bad = validate(
        frame,
        inventory,
        now,
        limits=limits,
        keep=["_msg"],
        max_future_s=clock.scaled(max_future_s),
        max_past_s=clock.scaled(max_past_s),
    )
    if bad.height:
        counts = bad.group_by("reason").len().iter_rows()
        n_bad = 0
        for reason, n in counts:
            m.bad(reason, n)
            n_bad += n
        m.add("rows_quarantined", n_bad)
        if quarantine is not None:
            for (msg,), part in bad.group_by("_msg", maintain_order=True):
                topic, _payload, received_ns = items[int(msg)]  # type: ignore[call-overload]
                quarantine.add_rows(part.drop("_msg"), topic, received_ns)
    if good.height:
        lag_ns = now - int(good.get_column("ts").max())  # type: ignore[arg-type]
        m.lag_s = clock.current().wall_s(lag_ns / 1e9)  # a pipeline figure: wall seconds
        m.add("rows_good", good.height)
    return good.drop("_msg")
