"""The engine of the non-threshold families: id mapping, per-row clock inputs, kernels."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from contracts.astro import switch_times
from contracts.config import DeviceConfig
from rules import fkernels as F
from rules import kernels as K
from rules.fcompile import FamilyIndex, FamilyRule, compile_families
from rules.transition import Transition, subject_of

__all__ = ["FamilyEngine", "local_ns", "sun_table"]

_DAY = 86_400 * 1_000_000_000
_STATE = ("since", "active", "s_v", "s_t", "s_u", "s_x", "s_lim")
_WIN = ("w_sum", "w_cnt", "w_max", "w_head")


def local_ns(ts: np.ndarray, tz: ZoneInfo) -> tuple[np.ndarray, np.ndarray]:
    """(ns since local midnight, local day number since 1970-01-01) of UTC ns timestamps."""
    if len(ts) == 0:
        return ts.copy(), ts.copy()
    lo, hi = int(ts.min()), int(ts.max())
    # offsets change at most a few times a year: sample the hours the batch spans
    off = _offset_ns(lo, tz)
    if _offset_ns(hi, tz) == off:
        loc = ts + off
    else:
        s = pl.Series(ts).cast(pl.Datetime("ns")).dt.replace_time_zone("UTC")
        local = s.dt.convert_time_zone(str(tz)).dt.replace_time_zone(None).cast(pl.Int64)
        loc = local.to_numpy()
    return loc % _DAY, loc // _DAY


def _offset_ns(t: int, tz: ZoneInfo) -> int:
    from datetime import UTC, datetime

    d = datetime.fromtimestamp(t / 1e9, UTC).astimezone(tz).utcoffset()
    return int(d.total_seconds()) * 1_000_000_000 if d is not None else 0


def sun_table(lat: float, lon: float, day_no: int) -> tuple[int, int]:
    """(sunrise, sunset) in UTC ns for a local day number; polar days/nights clamp."""
    day = date(1970, 1, 1) + timedelta(days=day_no)
    try:
        off, on = switch_times(lat, lon, day)
    except ValueError:  # no sunrise or sunset: treat the whole day as night
        return 0, 0
    return round(off.timestamp()) * 1_000_000_000, round(on.timestamp()) * 1_000_000_000


class FamilyEngine:
    """Window, stale, flatline, rate, cross-field, astro, noise and spike rules over frames."""

    def __init__(
        self,
        rules: list[FamilyRule],
        devices: Mapping[str, DeviceConfig] | None = None,
        tz: ZoneInfo | None = None,
        out_capacity: int = 1024,
    ):
        self.rules = list(rules)
        self.devices = dict(devices or {})
        self.tz = tz or ZoneInfo("Asia/Shanghai")
        self.arr = compile_families(self.rules)
        self.index = FamilyIndex(self.rules)
        self._need_loc = any(r.family in ("noise", "astro") for r in self.rules)
        self._need_sun = any(r.family == "astro" for r in self.rules)
        # local day -> (sunrise, sunset) UTC ns by dense device id (NO_TS: not computed yet)
        self._sun: dict[int, np.ndarray] = {}
        nb = self.arr.max_buckets
        self.ser_val = np.zeros(0)
        self.ser_ts = np.zeros(0, dtype=np.int64)
        self.dev_ts = np.zeros(0, dtype=np.int64)
        self.since = np.zeros(0, dtype=np.int64)
        self.active = np.zeros(0, dtype=np.uint8)
        self.s_v = np.zeros(0)
        self.s_t = np.zeros(0, dtype=np.int64)
        self.s_u = np.zeros(0)  # spike: the row before the previous one
        self.s_x = np.zeros(0)  # the latest derived value (what the clock raises with)
        self.s_lim = np.zeros(0, dtype=np.int64)  # the clock's limit, see rules.fkernels
        self.w_sum = np.zeros((0, nb))
        self.w_cnt = np.zeros((0, nb), dtype=np.int64)
        self.w_max = np.zeros((0, nb))
        self.w_head = np.zeros(0, dtype=np.int64)
        self._cap = max(16, out_capacity)
        self._alloc(self._cap)
        self.counters = np.zeros(K.N_COUNTERS, dtype=np.int64)
        F.warm_up()
        self.index._ids.warm_up()

    def _alloc(self, cap: int) -> None:
        self._cap = cap
        self._o = (
            np.zeros(cap, dtype=np.int32),
            np.zeros(cap, dtype=np.int64),
            np.zeros(cap, dtype=np.int8),
            np.zeros(cap),
        )

    def grow(self) -> None:
        """Extend state arrays to the index's current size (new series, slots, windows)."""
        ix, nb = self.index, self.arr.max_buckets

        def ext(a: np.ndarray, n: int, fill: float | int) -> np.ndarray:
            if n <= len(a):
                return a
            pad = np.full((n - len(a),) + a.shape[1:], fill, dtype=a.dtype)
            return np.concatenate([a, pad])

        self.ser_val = ext(self.ser_val, ix.n_series, np.nan)
        self.ser_ts = ext(self.ser_ts, ix.n_series, K.NO_TS)
        self.dev_ts = ext(self.dev_ts, ix.n_devices, K.NO_TS)
        self.since = ext(self.since, ix.n_slots, K.NO_TS)
        self.active = ext(self.active, ix.n_slots, 0)
        self.s_v = ext(self.s_v, ix.n_slots, np.nan)
        self.s_t = ext(self.s_t, ix.n_slots, K.NO_TS)
        self.s_u = ext(self.s_u, ix.n_slots, np.nan)
        self.s_x = ext(self.s_x, ix.n_slots, np.nan)
        self.s_lim = ext(self.s_lim, ix.n_slots, K.NO_TS)
        self.w_sum = ext(self.w_sum, ix.n_win, 0.0)
        self.w_cnt = ext(self.w_cnt, ix.n_win, 0)
        self.w_max = ext(self.w_max, ix.n_win, -np.inf)
        self.w_head = ext(self.w_head, ix.n_win, K.NO_TS)
        assert self.w_sum.shape[1] == nb

    def _clock(self, sids: np.ndarray, ts: np.ndarray) -> tuple:
        one = K.readonly(np.zeros(1, dtype=np.int64))
        if not self._need_loc:
            return one, one, one
        loc, day = local_ns(ts, self.tz)
        if not self._need_sun:
            return K.readonly(loc), one, one
        off = np.zeros(len(ts), dtype=np.int64)
        on = np.zeros(len(ts), dtype=np.int64)
        rows = np.flatnonzero(sids >= 0)
        if len(rows):  # gathered from per-day tables: Python only for a new (device, day)
            dev = self.index.arrays()[7][sids[rows]]
            day = day[rows]
            for d in np.unique(day).tolist():
                m = day == d
                tab = self._sun_day(d)[dev[m]]
                off[rows[m]], on[rows[m]] = tab[:, 0], tab[:, 1]
        return K.readonly(loc), K.readonly(off), K.readonly(on)

    def _sun_day(self, day: int) -> np.ndarray:
        """(sunrise, sunset) of every device's place on a local day ((0, 0) without a place)."""
        tab = self._sun.get(day)
        n = self.index.n_devices
        if tab is None or len(tab) < n:
            grown = np.full((n, 2), K.NO_TS, dtype=np.int64)
            if tab is not None:
                grown[: len(tab)] = tab
            tab = self._sun[day] = grown
            while len(self._sun) > 8:  # bounded: rows come from the last day or two
                del self._sun[min(self._sun)]
        todo = np.flatnonzero(tab[:, 0] == K.NO_TS)
        if len(todo):
            names = self.index.device_names()
            for i in todo.tolist():
                dc = self.devices.get(names[i])
                loc = dc.location if dc is not None else None
                tab[i] = sun_table(loc.lat, loc.lon, day) if loc is not None else (0, 0)
        return tab

    def process(self, frame: pl.DataFrame, hashes: np.ndarray | None = None) -> list[Transition]:
        """Evaluate the families on a batch in arrival order; return the transitions."""
        if frame.height == 0 or not self.rules:
            return []
        sids = self.index.lookup(frame, hashes)
        self.grow()
        ts = np.ascontiguousarray(frame.get_column("ts").cast(pl.Int64).to_numpy())
        vals = frame.get_column("value").cast(pl.Float64).to_numpy()
        sid_a = K.readonly(np.ascontiguousarray(sids, dtype=np.int32))
        loc, off, on = self._clock(sid_a, ts)
        return self.run_arrays(
            sid_a, K.readonly(ts), K.readonly(np.ascontiguousarray(vals)), loc, off, on
        )

    def run_arrays(self, sids, ts, vals, loc, off, on) -> list[Transition]:  # type: ignore[no-untyped-def]
        """Run the kernel over prepared arrays (ids already mapped)."""
        ptr, feed, s_rule, s_guard, s_aux, s_win, _, ser_dev = self.index.arrays()
        max_feed = int(np.diff(ptr).max()) if len(ptr) > 1 else 0
        if max_feed > self._cap:
            self._alloc(max_feed)
        a = self.arr
        out: list[Transition] = []
        start, n = 0, len(sids)
        while True:
            nxt, k = F.run_families(
                sids, ts, vals, start, loc, off, on,
                ptr, feed, s_rule, s_guard, s_aux, s_win, ser_dev,
                a.fam, a.op, a.set, a.clear, a.for_ns, a.guard_op, a.guard_val, a.p, a.i,
                self.ser_val, self.ser_ts, self.dev_ts, self.since, self.active,
                self.s_v, self.s_t, self.s_u, self.s_x, self.s_lim,
                self.w_sum, self.w_cnt, self.w_max, self.w_head, *self._o, self.counters,
            )  # fmt: skip
            out.extend(self._transitions(k))
            if nxt >= n:
                return out
            start = nxt
            self._alloc(self._cap * 2)

    def tick(self, now_ns: int) -> list[Transition]:
        """The clock at ``now_ns``: staleness, and conditions confirmed at their due times."""
        if not self.rules:
            return []
        self.grow()
        _, _, s_rule, s_guard, _, _, s_dev, _ = self.index.arrays()
        a = self.arr
        out: list[Transition] = []
        q = 0
        while q < len(s_rule):
            q, k = F.tick(
                int(now_ns), q, s_rule, s_dev, s_guard, a.fam, a.for_ns, a.silence_ns,
                a.guard_op, a.guard_val, a.i, self.ser_val, self.dev_ts, self.since,
                self.active, self.s_t, self.s_x, self.s_lim, *self._o,
            )  # fmt: skip
            out.extend(self._transitions(k))
            if q < len(s_rule):
                self._alloc(self._cap * 2)
        return out

    def _transitions(self, k: int) -> list[Transition]:
        res = []
        o_slot, o_ts, o_kind, o_val = self._o
        for q, t, kind, v in zip(
            o_slot[:k].tolist(), o_ts[:k].tolist(), o_kind[:k].tolist(), o_val[:k].tolist()
        ):
            rule_id, dev, field = self.index.slot_key(q)
            rule = self.rules[self.index.slot_rule[q]]
            raise_ = kind == K.KIND_RAISE
            subj = dev if not field else subject_of(dev, field, "*" in rule.field)
            res.append(
                Transition(rule_id, dev, subj, field, "raise" if raise_ else "clear", t, v,
                           _threshold(rule, raise_))
            )  # fmt: skip
        return res

    def state(self) -> dict[str, np.ndarray]:
        """Per-slot state (windows included) keyed for a snapshot."""
        self.grow()
        keys = [self.index.slot_key(q) for q in range(self.index.n_slots)]
        win = np.asarray(self.index.slot_win, dtype=np.int64)
        has = win >= 0
        ser = self.index.series
        return {
            "f_ser_dev": np.array([s[0] for s in ser], dtype=str),
            "f_ser_kind": np.array([s[1] for s in ser], dtype=str),
            "f_ser_field": np.array([s[2] for s in ser], dtype=str),
            "f_ser_val": self.ser_val,
            "f_ser_ts": self.ser_ts,
            "f_slot_key": np.array(["\x1f".join(k) for k in keys], dtype=str),
            **{f"f_{n}": getattr(self, n) for n in _STATE},
            "f_w_slot": np.nonzero(has)[0],
            **{f"f_{n}": getattr(self, n)[win[has]] for n in _WIN},
        }

    def load_state(self, z: Mapping[str, np.ndarray]) -> None:
        """Restore what :meth:`state` saved, matching series and slots by key."""
        if "f_ser_dev" not in z:
            return
        devs, kinds, fields = (z[f"f_ser_{c}"].tolist() for c in ("dev", "kind", "field"))
        sids = [self.index.ensure(d, k, f) for d, k, f in zip(devs, kinds, fields)]
        self.grow()
        for old, sid in enumerate(sids):
            if sid >= 0:
                self.ser_val[sid], self.ser_ts[sid] = z["f_ser_val"][old], z["f_ser_ts"][old]
        ser_dev = self.index.arrays()[7]  # a device's latest ts: the latest of its series
        np.maximum.at(self.dev_ts, ser_dev, self.ser_ts[: len(ser_dev)])
        now = {"\x1f".join(self.index.slot_key(q)): q for q in range(self.index.n_slots)}
        saved = [n for n in _STATE if f"f_{n}" in z]  # older snapshots lack newer columns
        for old, key in enumerate(z["f_slot_key"].tolist()):
            q = now.get(key)
            if q is not None:
                for n in saved:
                    getattr(self, n)[q] = z[f"f_{n}"][old]
        old_keys = z["f_slot_key"].tolist()
        nb = self.arr.max_buckets
        for j, old in enumerate(z["f_w_slot"].tolist()):
            q = now.get(old_keys[old])
            w = self.index.slot_win[q] if q is not None else -1
            if w >= 0 and z["f_w_sum"].shape[1:] == (nb,):  # bucket count changed: refill
                for n in _WIN:
                    getattr(self, n)[w] = z[f"f_{n}"][j]


def _threshold(rule: FamilyRule, raise_: bool) -> float:
    if rule.family == "noise":
        return float(rule.day_limit)  # type: ignore[union-attr]
    if rule.family == "stale":
        return float(rule.silent_s)  # type: ignore[union-attr]
    if rule.family == "spike":
        return float(rule.factor)  # type: ignore[union-attr]
    if rule.family in ("window", "rate", "cross"):
        return float(rule.set if raise_ else rule.clear)  # type: ignore[union-attr]
    return float(rule.for_s)
