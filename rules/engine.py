"""The rules engine: telemetry frames in, alarm transitions out, state carried across batches."""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from contracts.config import AnyRuleConfig, DeviceConfig, RuleConfig
from contracts.geofence import GeofenceConfig
from contracts.rule_config import VEHICLE_FAMILIES
from rules import kernels as K
from rules.compile import SeriesIndex, compile_rules
from rules.families import FamilyEngine
from rules.idmap import key_hashes
from rules.transition import Transition, subject_of
from rules.vehicles import VehicleEngine

__all__ = ["RulesEngine", "Transition", "SnapshotError"]

_SNAPSHOT_VERSION = 1


class SnapshotError(ValueError):
    """A state snapshot that cannot be restored."""


class RulesEngine:
    """Rules over telemetry frames (columns device_id, kind, ts, field, value).

    Threshold rules run in :mod:`rules.kernels`; the other families (window, stale,
    flatline, rate, cross, astro, noise) in :mod:`rules.families`; vehicle rules on fixes
    in :mod:`rules.vehicles`. ``devices`` gives astro rules their locations and vehicles
    their fleets, ``tz`` the local time of day/night limits and banned hours,
    ``geofences`` the places vehicle rules refer to (a rule with none does nothing).
    """

    def __init__(
        self,
        rules: list[AnyRuleConfig],
        out_capacity: int = 1024,
        devices: Mapping[str, DeviceConfig] | None = None,
        tz: ZoneInfo | None = None,
        geofences: list[GeofenceConfig] | None = None,
    ):
        self.all_rules = list(rules)
        self.rules: list[RuleConfig] = [r for r in rules if isinstance(r, RuleConfig)]
        veh = [r for r in rules if r.family in VEHICLE_FAMILIES]
        self.families = FamilyEngine(
            [
                r
                for r in rules
                if not isinstance(r, RuleConfig) and r.family not in VEHICLE_FAMILIES
            ],  # type: ignore[misc]
            devices,
            tz,
            out_capacity,
        )
        self.vehicles = VehicleEngine(veh, geofences, devices, tz, out_capacity)  # type: ignore[arg-type]
        self._arr = compile_rules(self.rules)
        self.index = SeriesIndex(self.rules)
        self._ser_val = np.zeros(0, dtype=np.float64)
        self._ser_ts = np.zeros(0, dtype=np.int64)
        self._slot_since = np.zeros(0, dtype=np.int64)
        self._slot_active = np.zeros(0, dtype=np.uint8)
        self._slot_last = np.zeros(0, dtype=np.float64)
        self._cap = max(16, out_capacity)
        self._alloc_out(self._cap)
        self.counters = np.zeros(K.N_COUNTERS, dtype=np.int64)
        self.transitions = 0
        self._lock = threading.Lock()
        K.warm_up()
        self.index._ids.warm_up()

    def process(self, frame: pl.DataFrame, hashes: np.ndarray | None = None) -> list[Transition]:
        """Evaluate every rule on a batch, in arrival order; return the transitions it causes.

        ``hashes`` are the rows' key hashes when the caller already has them
        (:func:`rules.idmap.key_hashes`).
        """
        if frame.height == 0:
            return []
        with self._lock:
            if not self.families.rules and not self.vehicles.rules:
                return self._process(frame, hashes)
            if hashes is None:
                hashes = key_hashes(frame)
            extra = self.families.process(frame, hashes) + self.vehicles.process(frame, hashes)
            self.transitions += len(extra)
            if not self.rules:
                return extra
            return self._process(frame, hashes) + extra

    def tick(self, now_ns: int) -> list[Transition]:
        """Check staleness and collection rules at ``now_ns`` (the service calls this every
        second)."""
        with self._lock:
            out = self.families.tick(now_ns) + self.vehicles.tick(now_ns)
            self.transitions += len(out)
            return out

    def _process(self, frame: pl.DataFrame, hashes: np.ndarray | None) -> list[Transition]:
        sids = self.index.lookup(frame, hashes)
        self._grow()
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
        return self._run(sid_a, ts_a, val_a)

    def _run(self, sids: np.ndarray, ts: np.ndarray, vals: np.ndarray) -> list[Transition]:
        ptr, feed = self.index.feeds()
        slot_rule, slot_guard = self.index.slot_arrays()
        # the output must hold at least one row's worth of transitions to make progress
        max_feed = int(np.diff(ptr).max()) if len(ptr) > 1 else 0
        if max_feed > self._cap:
            self._alloc_out(max_feed)
        a = self._arr
        out: list[Transition] = []
        start, n = 0, len(sids)
        while True:
            nxt, k = K.run_batch(
                sids, ts, vals, start,
                ptr, feed, slot_rule, slot_guard,
                a.op, a.set, a.clear, a.for_ns, a.guard_eq,
                self._ser_val, self._ser_ts, self._slot_since, self._slot_active, self._slot_last,
                self._out_slot, self._out_ts, self._out_kind, self._out_val, self.counters,
            )  # fmt: skip
            out.extend(self._transitions(k))
            if nxt >= n:
                break
            start = nxt
            self._alloc_out(self._cap * 2)
        self.transitions += len(out)
        return out

    def _transitions(self, k: int) -> list[Transition]:
        res = []
        for q, t, kind, v in zip(
            self._out_slot[:k].tolist(), self._out_ts[:k].tolist(),
            self._out_kind[:k].tolist(), self._out_val[:k].tolist(),
        ):  # fmt: skip
            rule_id, dev, field = self.index.slot_key(q)
            r = self.index.slot_rule[q]
            rule = self.rules[r]
            raise_ = kind == K.KIND_RAISE
            res.append(
                Transition(
                    rule_id=rule_id,
                    device_id=dev,
                    subject=subject_of(dev, field, "*" in rule.field),
                    field=field,
                    kind="raise" if raise_ else "clear",
                    ts=t,
                    value=v,
                    threshold=float(rule.set if raise_ else rule.clear),
                )
            )
        return res

    def _alloc_out(self, cap: int) -> None:
        self._cap = cap
        self._out_slot = np.zeros(cap, dtype=np.int32)
        self._out_ts = np.zeros(cap, dtype=np.int64)
        self._out_kind = np.zeros(cap, dtype=np.int8)
        self._out_val = np.zeros(cap, dtype=np.float64)

    def _grow(self) -> None:
        ns, nq = self.index.n_series, self.index.n_slots
        if ns > len(self._ser_val):
            extra = ns - len(self._ser_val)
            self._ser_val = np.concatenate([self._ser_val, np.full(extra, np.nan)])
            self._ser_ts = np.concatenate([self._ser_ts, np.full(extra, K.NO_TS, dtype=np.int64)])
        if nq > len(self._slot_since):
            extra = nq - len(self._slot_since)
            self._slot_since = np.concatenate(
                [self._slot_since, np.full(extra, K.NO_TS, dtype=np.int64)]
            )
            self._slot_active = np.concatenate([self._slot_active, np.zeros(extra, dtype=np.uint8)])
            self._slot_last = np.concatenate([self._slot_last, np.full(extra, np.nan)])

    def stats(self) -> dict[str, int]:
        """Counters: rows evaluated, NaN / late / unused rows ignored, transitions, sizes."""
        c = self.counters
        return {
            "rows": int(c[K.C_ROWS]),
            "nan_rows": int(c[K.C_NAN]),
            "late_rows": int(c[K.C_LATE]),
            "unused_rows": int(c[K.C_UNUSED]),
            "transitions": self.transitions,
            "series": self.index.n_series,
            "subjects": self.index.n_slots,
            "active": int(self._slot_active.sum()),
            "pending": int(((self._slot_since != K.NO_TS) & (self._slot_active == 0)).sum()),
            "family_subjects": self.families.index.n_slots,
            "family_active": int(self.families.active.sum()),
            **{f"vehicle_{k}": v for k, v in self.vehicles.stats().items()},
        }

    def snapshot(self) -> bytes:
        """The engine state (series mapping, latest values, latches) as bytes."""
        with self._lock:
            self._grow()
            series = self.index.series
            slots = [self.index.slot_key(q) for q in range(self.index.n_slots)]
            buf = io.BytesIO()
            np.savez(
                buf,
                version=np.array([_SNAPSHOT_VERSION]),
                ser_dev=np.array([s[0] for s in series], dtype=str),
                ser_kind=np.array([s[1] for s in series], dtype=str),
                ser_field=np.array([s[2] for s in series], dtype=str),
                ser_val=self._ser_val,
                ser_ts=self._ser_ts,
                slot_rule=np.array([s[0] for s in slots], dtype=str),
                slot_dev=np.array([s[1] for s in slots], dtype=str),
                slot_field=np.array([s[2] for s in slots], dtype=str),
                slot_since=self._slot_since,
                slot_active=self._slot_active,
                slot_last=self._slot_last,
                counters=self.counters,
                **self.families.state(),
                **self.vehicles.state(),
            )
            return buf.getvalue()

    def restore(self, data: bytes) -> None:
        """Load a snapshot; series and subjects are matched by key, so changed rules are fine."""
        try:
            z = np.load(io.BytesIO(data), allow_pickle=False)
            if int(z["version"][0]) != _SNAPSHOT_VERSION:
                raise SnapshotError(
                    f"snapshot version {int(z['version'][0])}, expected {_SNAPSHOT_VERSION}"
                )
            devs, kinds, fields = (
                z["ser_dev"].tolist(),
                z["ser_kind"].tolist(),
                z["ser_field"].tolist(),
            )
            ser_val, ser_ts = z["ser_val"], z["ser_ts"]
            slot_keys = list(
                zip(z["slot_rule"].tolist(), z["slot_dev"].tolist(), z["slot_field"].tolist())
            )
            since, active, last = z["slot_since"], z["slot_active"], z["slot_last"]
            counters = z["counters"]
            fam_state = {k: z[k] for k in z.files if k.startswith("f_")}
            veh_state = {k: z[k] for k in z.files if k.startswith("v_")}
        except SnapshotError:
            raise
        except Exception as exc:  # a truncated or foreign file: say so, never half-restore
            raise SnapshotError(f"cannot read snapshot: {exc}") from None
        with self._lock:
            self.index = SeriesIndex(self.rules)  # fresh ids, so a fresh hash table too
            for d, k, f in zip(devs, kinds, fields):
                self.index.ensure(d, k, f)
            self._ser_val = np.zeros(0)
            self._ser_ts = np.zeros(0, dtype=np.int64)
            self._slot_since = np.zeros(0, dtype=np.int64)
            self._slot_active = np.zeros(0, dtype=np.uint8)
            self._slot_last = np.zeros(0)
            self._grow()
            for old, (d, f) in enumerate(zip(devs, fields)):
                sid = self.index.ensure(d, kinds[old], f)
                if sid >= 0:
                    self._ser_val[sid], self._ser_ts[sid] = ser_val[old], ser_ts[old]
            slot_of = {self.index.slot_key(q): q for q in range(self.index.n_slots)}
            for old, key in enumerate(slot_keys):
                q = slot_of.get(key)
                if q is not None:  # subjects of rules that no longer exist are dropped
                    self._slot_since[q] = since[old]
                    self._slot_active[q] = active[old]
                    self._slot_last[q] = last[old]
            self.counters[:] = counters
            self.families.load_state(fam_state)
            self.vehicles.load_state(veh_state)
