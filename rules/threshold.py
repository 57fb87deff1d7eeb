"""The threshold rules of the engine: id mapping, state arrays and the kernels of
:mod:`rules.kernels` (semantics there), the clock's confirmations, snapshot state."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from contracts.config import DeviceConfig, RuleConfig
from rules import kernels as K
from rules.compile import compile_rules
from rules.series import SeriesIndex
from rules.transition import Transition, subject_of

__all__ = ["ThresholdEngine"]


class ThresholdEngine:
    """Threshold rules over telemetry frames; state as struct-of-arrays across batches."""

    def __init__(
        self,
        rules: list[RuleConfig],
        devices: Mapping[str, DeviceConfig] | None = None,
        out_capacity: int = 1024,
    ):
        self.rules = list(rules)
        self.devices = devices
        self.arr = compile_rules(self.rules)
        self.index = SeriesIndex(self.rules, devices)
        self._reset_state()
        self._cap = max(16, out_capacity)
        self._alloc_out(self._cap)
        self.counters = np.zeros(K.N_COUNTERS, dtype=np.int64)
        K.warm_up()
        self.index._ids.warm_up()

    def _reset_state(self) -> None:
        self.ser_val = np.zeros(0, dtype=np.float64)
        self.ser_ts = np.zeros(0, dtype=np.int64)
        self.dev_ts = np.zeros(0, dtype=np.int64)
        self.since = np.zeros(0, dtype=np.int64)
        self.active = np.zeros(0, dtype=np.uint8)
        self.last = np.zeros(0, dtype=np.float64)

    def process(self, frame: pl.DataFrame, hashes: np.ndarray | None) -> list[Transition]:
        """Evaluate the threshold rules on a batch in arrival order."""
        sids = self.index.lookup(frame, hashes)
        self.grow()
        ts = frame.get_column("ts")
        if ts.dtype != pl.Int64:
            ts = ts.cast(pl.Int64)
        vals = frame.get_column("value")
        if vals.dtype != pl.Float64:
            vals = vals.cast(pl.Float64)
        # to_numpy turns float nulls into NaN by itself; fill_null would cost a copy
        sid_a = K.readonly(np.ascontiguousarray(sids, dtype=np.int32))
        ts_a = K.readonly(np.ascontiguousarray(ts.to_numpy(), dtype=np.int64))
        val_a = K.readonly(np.ascontiguousarray(vals.to_numpy(), dtype=np.float64))
        return self.run(sid_a, ts_a, val_a)

    def run(self, sids: np.ndarray, ts: np.ndarray, vals: np.ndarray) -> list[Transition]:
        """Run the kernel over prepared arrays (ids already mapped)."""
        ptr, feed = self.index.feeds()
        s_rule, _, s_guard, s_set, s_clear, ser_dev = self.index.slot_arrays()
        # the output must hold at least one row's worth of transitions to make progress
        max_feed = self.index.max_feed()
        if max_feed > self._cap:
            self._alloc_out(max_feed)
        a = self.arr
        out: list[Transition] = []
        start, n = 0, len(sids)
        while True:
            nxt, k = K.run_batch(
                sids, ts, vals, start,
                ptr, feed, s_rule, s_guard, s_set, s_clear, ser_dev,
                a.op, a.for_ns, a.guard_op, a.guard_val,
                self.ser_val, self.ser_ts, self.dev_ts, self.since, self.active, self.last,
                *self._out, self.counters,
            )  # fmt: skip
            out.extend(self._transitions(k))
            if nxt >= n:
                return out
            start = nxt
            self._alloc_out(self._cap * 2)

    def tick(self, now_ns: int) -> list[Transition]:
        """Raise latched subjects the clock confirms at ``now_ns``, at their due times."""
        if not self.rules:
            return []
        self.grow()
        s_rule, s_dev, s_guard, _, _, _ = self.index.slot_arrays()
        a = self.arr
        out: list[Transition] = []
        q = 0
        while q < len(s_rule):
            q, k = K.confirm(
                int(now_ns), q, s_rule, s_dev, s_guard, a.for_ns, a.silence_ns,
                a.guard_op, a.guard_val, self.ser_val, self.dev_ts, self.since, self.active,
                self.last, *self._out,
            )  # fmt: skip
            out.extend(self._transitions(k))
            if q < len(s_rule):
                self._alloc_out(self._cap * 2)
        return out

    def _transitions(self, k: int) -> list[Transition]:
        if k == 0:
            return []
        ix = self.index
        q, ts, kind, val = (a[:k] for a in self._out)
        s_rule, _, _, s_set, s_clear, _ = ix.slot_arrays()
        raise_ = kind == K.KIND_RAISE
        thr = np.where(raise_, s_set[q], s_clear[q]).tolist()
        devs, fields = ix.ser_devs, ix.ser_fields
        out = []
        for r, s, up, t, v, th in zip(
            s_rule[q].tolist(), ix.slot_series[q].tolist(), raise_.tolist(), ts.tolist(),
            val.tolist(), thr,
        ):  # fmt: skip
            rule, dev, field = self.rules[r], devs[s], fields[s]
            subject = subject_of(dev, field, "*" in rule.field)
            out.append(Transition(rule.id, dev, subject, field, "raise" if up else "clear",
                                  t, v, th))  # fmt: skip
        return out

    def _alloc_out(self, cap: int) -> None:
        self._cap = cap
        self._out = (
            np.zeros(cap, dtype=np.int32),
            np.zeros(cap, dtype=np.int64),
            np.zeros(cap, dtype=np.int8),
            np.zeros(cap, dtype=np.float64),
        )

    def grow(self) -> None:
        """Extend state arrays to the index's current size (new series, devices, slots)."""

        def ext(a: np.ndarray, n: int, fill: float | int) -> np.ndarray:
            if n <= len(a):
                return a
            return np.concatenate([a, np.full(n - len(a), fill, dtype=a.dtype)])

        ix = self.index
        self.ser_val = ext(self.ser_val, ix.n_series, np.nan)
        self.ser_ts = ext(self.ser_ts, ix.n_series, K.NO_TS)
        self.dev_ts = ext(self.dev_ts, ix.n_devices, K.NO_TS)
        self.since = ext(self.since, ix.n_slots, K.NO_TS)
        self.active = ext(self.active, ix.n_slots, 0)
        self.last = ext(self.last, ix.n_slots, np.nan)

    def stats(self) -> dict[str, int]:
        """Counters and sizes; ``unrated_subjects`` are subjects a relative rule skips."""
        c = self.counters
        return {
            "rows": int(c[K.C_ROWS]),
            "nan_rows": int(c[K.C_NAN]),
            "late_rows": int(c[K.C_LATE]),
            "unused_rows": int(c[K.C_UNUSED]),
            "series": self.index.n_series,
            "subjects": self.index.n_slots,
            "unrated_subjects": sum(self.index.unrated.values()),
            "active": int(self.active.sum()),
            "pending": int(((self.since != K.NO_TS) & (self.active == 0)).sum()),
        }

    def state(self) -> dict[str, np.ndarray]:
        """Series and slot state keyed for a snapshot (slots by (rule, device, field))."""
        self.grow()
        ix = self.index
        slots = [ix.slot_key(q) for q in range(ix.n_slots)]
        return {
            "ser_dev": np.array(ix.ser_devs, dtype=str),
            "ser_kind": np.array(ix.ser_kinds, dtype=str),
            "ser_field": np.array(ix.ser_fields, dtype=str),
            "ser_val": self.ser_val,
            "ser_ts": self.ser_ts,
            "slot_rule": np.array([s[0] for s in slots], dtype=str),
            "slot_dev": np.array([s[1] for s in slots], dtype=str),
            "slot_field": np.array([s[2] for s in slots], dtype=str),
            "slot_since": self.since,
            "slot_active": self.active,
            "slot_last": self.last,
            "counters": self.counters,
        }

    def load_state(self, z: Mapping[str, np.ndarray]) -> None:
        """Restore what :meth:`state` saved; series and subjects are matched by key, so
        changed rules are fine (subjects of rules that no longer exist are dropped)."""
        devs, kinds, fields = (z[f"ser_{c}"].tolist() for c in ("dev", "kind", "field"))
        slot_keys = list(
            zip(z["slot_rule"].tolist(), z["slot_dev"].tolist(), z["slot_field"].tolist())
        )
        self.index = SeriesIndex(self.rules, self.devices)  # fresh ids, fresh hash table
        keys = {"device_id": devs, "kind": kinds, "field": fields}
        sids = self.index.ensure_many(pl.DataFrame(keys, schema=dict.fromkeys(keys, pl.String)))
        self._reset_state()
        self.grow()
        for old, sid in enumerate(sids):
            if sid >= 0:
                self.ser_val[sid], self.ser_ts[sid] = z["ser_val"][old], z["ser_ts"][old]
        # a device's latest ts is the latest of its series: derived, not stored
        ser_dev = self.index.slot_arrays()[5]
        np.maximum.at(self.dev_ts, ser_dev, self.ser_ts[: len(ser_dev)])
        slot_of = {self.index.slot_key(q): q for q in range(self.index.n_slots)}
        for old, key in enumerate(slot_keys):
            q = slot_of.get(key)
            if q is not None:
                self.since[q] = z["slot_since"][old]
                self.active[q] = z["slot_active"][old]
                self.last[q] = z["slot_last"][old]
        self.counters[:] = z["counters"]
