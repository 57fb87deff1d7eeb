"""An ingest worker's figures in Prometheus text exposition (served at /metrics).

    rg_ingest_rows_total{stage}                 in / good / written / quarantined / not_mine
    rg_ingest_quarantined_total{reason}         refused rows (payloads for bad_batch) by reason
    rg_ingest_messages_total{stage}             in / done (acknowledged to the broker)
    rg_ingest_writes_total, _write_errors_total store writes and failed attempts
    rg_ingest_write_latency_seconds             summary: p50/p95 of recent writes, _sum, _count
    rg_ingest_lag_seconds                       now minus the newest good row's event time
    rg_ingest_spill_depth_rows / _batches       waiting on disk for the store
    rg_ingest_spill_total{event}                spilled / replayed / dropped / refused frames
    rg_ingest_queue_depth, _queue_waits_total   backpressure: the hand-over queue is full
    rg_ingest_quarantine_dropped_total          quarantine entries dropped by its bound

The HTTP side is :class:`contracts.prometheus.MetricsServer`, shared with the agent.
"""

from __future__ import annotations

from contracts.prometheus import Figure, render

__all__ = ["ingest_figures", "ingest_text"]


def ingest_figures(m: dict) -> list[Figure]:
    """The figures of one :meth:`IngestService.metrics` snapshot."""
    out: list[Figure] = []

    def add(name: str, typ: str, value: float, **labels: str) -> None:
        out.append((name, typ, labels, float(value)))

    for stage in ("in", "good", "written", "quarantined", "not_mine"):
        add("rg_ingest_rows_total", "counter", m.get(f"rows_{stage}", 0), stage=stage)
    for reason, n in sorted(m.get("quarantined", {}).items()):
        add("rg_ingest_quarantined_total", "counter", n, reason=reason)
    add("rg_ingest_messages_total", "counter", m.get("batches_in", 0), stage="in")
    add("rg_ingest_messages_total", "counter", m.get("batches_done", 0), stage="done")
    add("rg_ingest_tracker_messages_total", "counter", m.get("tracker_messages", 0))
    add("rg_ingest_writes_total", "counter", m.get("writes", 0))
    add("rg_ingest_write_errors_total", "counter", m.get("write_errors", 0))
    lat = m.get("write_latency_ms", {})
    # quantile samples first: they carry the family's TYPE line (summary)
    for q, key in (("0.5", "p50"), ("0.95", "p95")):
        add("rg_ingest_write_latency_seconds", "summary", lat.get(key, 0.0) / 1000, quantile=q)
    add("rg_ingest_write_latency_seconds_sum", "counter", lat.get("sum_s", 0.0))
    add("rg_ingest_write_latency_seconds_count", "counter", m.get("writes", 0))
    add("rg_ingest_lag_seconds", "gauge", m.get("lag_s", 0.0))
    spill = m.get("spill", {})
    add("rg_ingest_spill_depth_rows", "gauge", spill.get("depth_rows", 0))
    add("rg_ingest_spill_depth_batches", "gauge", spill.get("depth_batches", 0))
    for event in ("spilled", "replayed", "dropped", "refused"):
        add("rg_ingest_spill_total", "counter", spill.get(event, 0), event=event)
    add("rg_ingest_queue_depth", "gauge", m.get("queue_depth", 0))
    add("rg_ingest_queue_waits_total", "counter", m.get("queue_waits", 0))
    add("rg_ingest_quarantine_dropped_total", "counter", m.get("quarantine_dropped", 0))
    add("rg_ingest_hook_errors_total", "counter", m.get("hook_errors", 0))
    add("rg_ingest_broker_connects_total", "counter", m.get("connects", 0))
    add("rg_ingest_broker_disconnects_total", "counter", m.get("disconnects", 0))
    return out


def ingest_text(m: dict) -> str:
    """The exposition text of one metrics snapshot."""
    return render(ingest_figures(m))
