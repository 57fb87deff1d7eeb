"""Preparing a group of MQTT messages: decode, keep this worker's rows, validate, quarantine.

A message that is not a batch at all is quarantined whole as ``bad_batch``; rows of the
wrong type are refused one by one (``wrong_type``) and the rest of the message goes on.
Third-party tracker messages reach every worker (their topic has no partition): each
keeps the rows of the devices its partition owns (``topics.partition_of``) and counts
the others as ``rows_not_mine`` (neither stored nor quarantined: their owner does that).
"""

from __future__ import annotations

import logging

import polars as pl
import pyarrow as pa

from contracts import clock, topics
from contracts.telemetry import BatchError
from contracts.telemetry_arrow import WIRE_V2, decode_table, wire_version
from ingest.frames import arrow_frames, coded, decode_rows
from ingest.metrics import IngestMetrics
from ingest.quarantine import BAD_BATCH, Quarantine
from ingest.tracker import TrackerFormat
from ingest.validate import validate

__all__ = ["prepare", "Owner"]

log = logging.getLogger(__name__)

_AGENT_PREFIX = f"{topics.ROOT}/tele/"

#: (this worker's partition, the deployment's partition count).
Owner = tuple[int, int]


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
    owner: Owner | None = None,
    coded_good: bool = False,
) -> pl.DataFrame | None:
    """The good rows of (topic, payload, received_ns) messages; None if there were none.

    Agent batches arrive on the telemetry topics; anything else is third-party tracker
    JSON (only subscribed to when ``tracker`` is set). All messages of the group are
    validated in one pass, their names as categorical codes (a per-message index
    scopes duplicates); timestamps more than ``max_future_s`` ahead of or
    ``max_past_s`` behind now are quarantined. With an ``owner``, tracker rows of other
    partitions' devices are left to their owner. With ``coded_good`` the good rows
    keep their names as categorical codes (see :func:`ingest.validate.validate`).
    """
    frames: list[pl.DataFrame] = []
    run: list[tuple[int, pa.Table]] = []  # consecutive agent batches in Arrow: one import

    def bad_batch(i: int, exc: Exception) -> None:
        topic, payload, received_ns = items[i]
        if not isinstance(exc, BatchError):
            log.warning("ingest: decoder failed on %s: %r", topic, exc)
        else:
            log.info("ingest: bad batch on %s: %s", topic, exc)
        m.bad(BAD_BATCH, 1)
        if quarantine is not None:
            quarantine.add_payload(BAD_BATCH, topic, payload, received_ns)

    def flush_run() -> None:
        if run:
            frame, failed = arrow_frames([t for _, t in run], [i for i, _ in run], "_msg")
            for i, exc in failed:
                bad_batch(i, exc)
            frames.append(frame)
            run.clear()

    # Data time is the deployment's clock; the windows allow for wall-time latency (clock
    # skew, batching, replays after an outage), so they widen with the clock's speed.
    now = clock.now_ns()
    for i, (topic, payload, received_ns) in enumerate(items):
        m.add("batches_in")
        is_tracker = not topic.startswith(_AGENT_PREFIX) and tracker is not None
        if not is_tracker and wire_version(payload) == WIRE_V2:
            try:
                table, _meta = decode_table(payload, dictionaries=True)
            except Exception as exc:  # decoding is a function of the payload: its fault
                bad_batch(i, exc)
                continue
            m.batch(table.num_rows)
            run.append((i, table))
            continue
        flush_run()  # keeps the messages' order: a later message's rewrite stays later
        try:
            if is_tracker:
                m.add("tracker_messages")
                frame, wrong = tracker.decode_rows(payload)  # type: ignore[union-attr]
            else:
                frame, wrong = decode_rows(payload, codes=True)
        except Exception as exc:  # decoding is a function of the payload: any failure is its fault
            bad_batch(i, exc)
            continue
        if is_tracker and owner is not None:
            frame, wrong = _mine(frame, owner, m), _mine(wrong, owner, m)
        if wrong.height:
            _refuse(wrong, topic, received_ns, m, quarantine)
        m.batch(frame.height + wrong.height)
        frame = coded(frame)  # tracker rows come as strings (agent batches already coded)
        frames.append(frame.with_columns(pl.lit(i, dtype=pl.UInt32).alias("_msg")))
    flush_run()
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
        coded_good=coded_good,
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


def _refuse(
    wrong: pl.DataFrame, topic: str, received_ns: int, m: IngestMetrics, q: Quarantine | None
) -> None:
    """Count and quarantine rows refused at decode (they carry their reason and raw)."""
    for reason, n in wrong.group_by("reason").len().iter_rows():
        m.bad(reason, n)
    m.add("rows_in", wrong.height)
    m.add("rows_quarantined", wrong.height)
    if q is not None:
        q.add_rows(wrong, topic, received_ns)


def _mine(frame: pl.DataFrame, owner: Owner, m: IngestMetrics) -> pl.DataFrame:
    """The rows of devices this partition owns; a row without a device id goes to 0."""
    part, n = owner
    if n <= 1 or frame.height == 0:
        return frame
    ids = frame.get_column("device_id").fill_null("").unique().to_list()
    # A tracker message carries one or a few devices: hashing the distinct ids is cheap.
    own = [d for d in ids if (topics.partition_of(d, n) if d else 0) == part]
    keep = frame.filter(pl.col("device_id").fill_null("").is_in(own))
    if keep.height < frame.height:
        m.add("rows_not_mine", frame.height - keep.height)
    return keep
