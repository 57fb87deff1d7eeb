"""Ingest metrics: counters, write-latency percentiles, batch sizes, lag; one log line."""

from __future__ import annotations

import threading
from collections import Counter, deque

__all__ = ["IngestMetrics", "COUNTERS"]

#: Counters every snapshot carries (0 until first counted).
COUNTERS = (
    "batches_in",
    "batches_done",
    "rows_in",
    "rows_good",
    "rows_written",
    "rows_quarantined",
    "rows_not_mine",
    "writes",
    "write_errors",
    "queue_waits",
    "hook_errors",
    "connects",
    "disconnects",
    "tracker_messages",
)


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


class IngestMetrics:
    """Thread-safe counters and recent samples (the last ``window`` writes and batches)."""

    def __init__(self, window: int = 2048) -> None:
        self.c: Counter[str] = Counter()
        self.quarantined: Counter[str] = Counter()
        self._lat_ms: deque[float] = deque(maxlen=window)
        self._batch_rows: deque[int] = deque(maxlen=window)
        self._write_rows: deque[int] = deque(maxlen=window)
        self.lag_s = 0.0
        self.max_latency_ms = 0.0
        self.latency_sum_s = 0.0  # every write, for a Prometheus summary
        self._lock = threading.Lock()

    def add(self, name: str, n: int = 1) -> None:
        """Increment a counter."""
        with self._lock:
            self.c[name] += n

    def count(self, name: str) -> int:
        """One counter's value: cheap enough to poll, unlike :meth:`snapshot`."""
        return self.c[name]  # one dict read is atomic; a Counter reads a missing name as 0

    def bad(self, reason: str, n: int) -> None:
        """Count refused rows (or payloads) under a reason."""
        with self._lock:
            self.quarantined[reason] += n

    def batch(self, rows: int) -> None:
        """One decoded message of ``rows`` rows."""
        with self._lock:
            self._batch_rows.append(rows)

    def write(self, rows: int, ms: float) -> None:
        """One successful store write."""
        with self._lock:
            self.c["writes"] += 1
            self.c["rows_written"] += rows
            self._lat_ms.append(ms)
            self._write_rows.append(rows)
            self.max_latency_ms = max(self.max_latency_ms, ms)
            self.latency_sum_s += ms / 1000

    def snapshot(self) -> dict:
        """The figures as plain values."""
        with self._lock:
            lat = list(self._lat_ms)
            br = list(self._batch_rows)
            wr = list(self._write_rows)
            c = dict(self.c)
            q = dict(self.quarantined)
        return {
            "counters": c,
            "quarantined": q,
            "write_latency_ms": {
                "p50": round(_pct(lat, 0.50), 2),
                "p95": round(_pct(lat, 0.95), 2),
                "max": round(self.max_latency_ms, 2),
                "last": round(lat[-1], 2) if lat else 0.0,
                "mean": round(sum(lat) / len(lat), 2) if lat else 0.0,
                "sum_s": self.latency_sum_s,
            },
            "batch_rows": {
                "mean": round(sum(br) / len(br), 1) if br else 0.0,
                "max": max(br, default=0),
            },
            "write_rows": {
                "mean": round(sum(wr) / len(wr), 1) if wr else 0.0,
                "max": max(wr, default=0),
            },
            "lag_s": round(self.lag_s, 3),
        }

    def flat(self) -> dict:
        """The snapshot with :data:`COUNTERS` at the top level (other counters dropped)."""
        snap = self.snapshot()
        c = snap.pop("counters")
        return {**{k: c.get(k, 0) for k in COUNTERS}, **snap}


def log_line(m: dict) -> str:
    """The metrics as one log line (key=value)."""
    q = ",".join(f"{k}:{v}" for k, v in sorted(m["quarantined"].items())) or "-"
    sp = m.get("spill", {})
    return (
        f"ingest rows_in={m['rows_in']} rows_written={m['rows_written']} "
        f"quarantined={m['rows_quarantined']} ({q}) batches={m['batches_done']} "
        f"write_p50_ms={m['write_latency_ms']['p50']} write_p95_ms={m['write_latency_ms']['p95']} "
        f"batch_rows_mean={m['batch_rows']['mean']} lag_s={m['lag_s']} "
        f"spill_rows={sp.get('depth_rows', 0)} spilled={sp.get('spilled', 0)} "
        f"replayed={sp.get('replayed', 0)} dropped={sp.get('dropped', 0)} "
        f"write_errors={m['write_errors']} queue={m['queue_depth']}"
    )


__all__ += ["log_line"]
