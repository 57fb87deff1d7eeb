"""The other rule families (window, stale, flatline, rate, cross, astro, noise, spike) as arrays.

Same idea as :mod:`rules.series`: series ids and slot ids are dense int32, assigned outside
the kernels. A slot usually has one feeding series (its rule's field on one device); a
staleness slot is one per (rule, device) and is fed by every matching field of the device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from contracts.config import (
    AstroRuleConfig,
    CrossRuleConfig,
    FlatlineRuleConfig,
    NoiseRuleConfig,
    RateRuleConfig,
    StaleRuleConfig,
    WindowRuleConfig,
)
from contracts.rule_config import SpikeRuleConfig
from rules.compile import Pattern, guard_arrays
from rules.idmap import IdMap

__all__ = ["FAMILY_CODE", "FamilyArrays", "compile_families", "FamilyIndex", "FamilyRule"]

FamilyRule = (
    WindowRuleConfig
    | StaleRuleConfig
    | FlatlineRuleConfig
    | RateRuleConfig
    | CrossRuleConfig
    | AstroRuleConfig
    | NoiseRuleConfig
    | SpikeRuleConfig
)
FAMILY_CODE = {
    "window": 1,
    "stale": 2,
    "flatline": 3,
    "rate": 4,
    "cross": 5,
    "astro": 6,
    "noise": 7,
    "spike": 8,
}
_NS = 1_000_000_000


@dataclass(frozen=True)
class FamilyArrays:
    """Per-rule parameters; ``p`` (float64) and ``i`` (int64) are [n_rules, 2] per family."""

    fam: np.ndarray  # int8
    op: np.ndarray  # int8: 0 above, 1 below (the latch on the derived value)
    set: np.ndarray
    clear: np.ndarray
    for_ns: np.ndarray
    silence_ns: np.ndarray  # max_silence_s (the clock's confirmations)
    guard_op: np.ndarray  # int8 [n_rules, max guards], see rules.compile.GUARD_OPS
    guard_val: np.ndarray
    p: np.ndarray
    i: np.ndarray
    max_buckets: int


def _params(r: FamilyRule) -> tuple[int, float, float, int, tuple[float, float], tuple[int, int]]:
    """(op, set, clear, for_ns, p, i) of one rule; see :mod:`rules.fkernels` for meanings."""
    for_ns = round(r.for_s * _NS)
    if isinstance(r, WindowRuleConfig):
        op = 0 if r.op == "above" else 1
        bw = max(1, round(r.window_s * _NS / r.buckets))
        agg = 1.0 if r.agg == "max" else 0.0
        return op, r.set, r.clear, for_ns, (agg, r.min_coverage), (bw, r.buckets)
    if isinstance(r, RateRuleConfig | CrossRuleConfig):
        op = 0 if r.op == "above" else 1
        tol = round(r.tolerance_s * _NS) if isinstance(r, CrossRuleConfig) else 0
        absolute = 1.0 if isinstance(r, RateRuleConfig) and r.absolute else 0.0
        return op, r.set, r.clear, for_ns, (absolute, 0.0), (tol, 0)  # type: ignore[return-value]
    if isinstance(r, StaleRuleConfig):
        return 0, 0.5, 0.5, 0, (0.0, 0.0), (round(r.silent_s * _NS), 0)
    if isinstance(r, FlatlineRuleConfig):
        return 0, 0.5, 0.5, 0, (r.eps, 0.0), (for_ns, 0)
    if isinstance(r, AstroRuleConfig):
        lit = 1.0 if r.expect == "lit_in_day" else 0.0
        offs = (round(r.off_offset_min * 60 * _NS), round(r.on_offset_min * 60 * _NS))
        return 0, 0.5, 0.5, for_ns, (lit, 0.0), offs
    if isinstance(r, SpikeRuleConfig):
        return 0, r.factor, r.factor, 0, (r.factor, r.floor), (0, 0)
    assert isinstance(r, NoiseRuleConfig)
    day = (round(r.day_start_h * 3600 * _NS), round(r.day_end_h * 3600 * _NS))
    return 0, 0.0, -r.hysteresis, for_ns, (r.day_limit, r.night_limit), day


def compile_families(rules: list[FamilyRule]) -> FamilyArrays:
    """Turn rule configs of the non-threshold families into kernel arrays."""
    rows = [_params(r) for r in rules]
    n = len(rules)
    gop, gval = guard_arrays(rules)
    return FamilyArrays(
        fam=np.array([FAMILY_CODE[r.family] for r in rules], dtype=np.int8),
        op=np.array([x[0] for x in rows], dtype=np.int8),
        set=np.array([x[1] for x in rows], dtype=np.float64),
        clear=np.array([x[2] for x in rows], dtype=np.float64),
        for_ns=np.array([x[3] for x in rows], dtype=np.int64),
        silence_ns=np.array([round(r.max_silence_s * _NS) for r in rules], dtype=np.int64),
        guard_op=gop,
        guard_val=gval,
        p=np.array([x[4] for x in rows], dtype=np.float64).reshape(n, 2),
        i=np.array([x[5] for x in rows], dtype=np.int64).reshape(n, 2),
        max_buckets=max([r.buckets for r in rules if isinstance(r, WindowRuleConfig)] or [1]),
    )


class FamilyIndex:
    """Dense ids for series and slots of the non-threshold families."""

    def __init__(self, rules: list[FamilyRule]):
        self.rules = rules
        self._fields = [Pattern(r.field) for r in rules]
        self._guards = [[Pattern(g.field) for g in r.guards] for r in rules]
        self._width = max([len(r.guards) for r in rules] + [1])
        self._others = [Pattern(r.other) if isinstance(r, CrossRuleConfig) else None for r in rules]
        self.series: list[tuple[str, str, str]] = []
        self._sid: dict[tuple[str, str], int] = {}
        self.ser_dev: list[int] = []  # dense device id of every series
        self._dev: dict[str, int] = {}
        self.slot_rule: list[int] = []
        self.slot_dev: list[str] = []
        self.slot_field: list[str] = []  # "" for a per-device (staleness) slot
        self.slot_guard: list[int] = []  # flat: max guards entries per slot, -1 after the last
        self.slot_devi: list[int] = []  # dense device id of every slot
        self.slot_aux: list[int] = []
        self.slot_win: list[int] = []
        self.n_win = 0
        self._stale: dict[tuple[int, str], int] = {}
        self._edges: list[tuple[int, int]] = []
        self._plans: dict[tuple[str, str], tuple[list[tuple[int, str]], bool]] = {}
        self._ids = IdMap(self.ensure)
        self._cache: tuple[np.ndarray, ...] | None = None

    @property
    def n_series(self) -> int:
        """Number of series with an id."""
        return len(self.series)

    @property
    def n_slots(self) -> int:
        """Number of rule subjects."""
        return len(self.slot_rule)

    @property
    def n_devices(self) -> int:
        """Number of devices with an id."""
        return len(self._dev)

    def lookup(self, frame: pl.DataFrame, hashes: np.ndarray | None = None) -> np.ndarray:
        """Series id of every row (-1 where no rule uses it), registering new keys."""
        return self._ids.lookup(frame, hashes)

    def ensure(self, device_id: str, kind: str, field: str) -> int:
        """The id of a series (-1 if no rule uses it), creating it and its slots when new."""
        known = self._sid.get((device_id, field))
        if known is not None:
            return known
        subjects, is_aux = self._plan(kind, field)
        if not subjects and not is_aux:
            self._sid[(device_id, field)] = -1
            return -1
        sid = len(self.series)
        self.series.append((device_id, kind, field))
        self.ser_dev.append(self._dev.setdefault(device_id, len(self._dev)))
        self._sid[(device_id, field)] = sid
        for i, star in subjects:
            rule = self.rules[i]
            if rule.family == "stale":
                q = self._stale.get((i, device_id))
                if q is None:
                    q = self._new_slot(i, device_id, "", kind, star)
                    self._stale[(i, device_id)] = q
            else:
                q = self._new_slot(i, device_id, field, kind, star)
            self._edges.append((sid, q))
        self._cache = None
        return sid

    def _new_slot(self, i: int, dev: str, field: str, kind: str, star: str) -> int:
        q = len(self.slot_rule)
        self.slot_rule.append(i)
        self.slot_dev.append(dev)
        self.slot_field.append(field)
        self.slot_guard.extend([-1] * self._width)
        self.slot_devi.append(self._dev[dev])
        self.slot_aux.append(-1)
        win = -1
        if self.rules[i].family == "window":
            win, self.n_win = self.n_win, self.n_win + 1
        self.slot_win.append(win)
        o = self._others[i]
        # registering these may recurse into ensure(); the slot exists already
        for j, g in enumerate(self._guards[i]):
            self.slot_guard[q * self._width + j] = self.ensure(dev, kind, g.fill(star))
        if o is not None:
            self.slot_aux[q] = self.ensure(dev, kind, o.text)
        return q

    def _plan(self, kind: str, field: str) -> tuple[list[tuple[int, str]], bool]:
        plan = self._plans.get((kind, field))
        if plan is None:
            subjects = []
            is_aux = False
            for i, r in enumerate(self.rules):
                if r.kind != kind:
                    continue
                m = self._fields[i].match(field)
                if m is not None:
                    subjects.append((i, m))
                for p in (*self._guards[i], self._others[i]):
                    if p is not None and p.match(field) is not None:
                        is_aux = True
            plan = (subjects, is_aux)
            self._plans[(kind, field)] = plan
        return plan

    def device_names(self) -> list[str]:
        """Device ids by dense device id."""
        return list(self._dev)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """(feed_ptr, feed_slot, slot_rule, slot_guard [n, max guards], slot_aux, slot_win,
        slot device id, series device id)."""
        if self._cache is None:
            e = np.array(self._edges, dtype=np.int64).reshape(-1, 2)
            counts = np.bincount(e[:, 0], minlength=self.n_series)
            ptr = np.zeros(self.n_series + 1, dtype=np.int64)
            np.cumsum(counts, out=ptr[1:])
            order = np.argsort(e[:, 0], kind="stable")
            feed = e[order, 1].astype(np.int32)
            self._cache = (
                ptr,
                feed,
                np.asarray(self.slot_rule, dtype=np.int32),
                np.asarray(self.slot_guard, dtype=np.int32).reshape(-1, self._width),
                np.asarray(self.slot_aux, dtype=np.int32),
                np.asarray(self.slot_win, dtype=np.int32),
                np.asarray(self.slot_devi, dtype=np.int32),
                np.asarray(self.ser_dev, dtype=np.int32),
            )
        return self._cache

    def slot_key(self, q: int) -> tuple[str, str, str]:
        """(rule_id, device_id, field) of a slot; field is "" for staleness slots."""
        return self.rules[self.slot_rule[q]].id, self.slot_dev[q], self.slot_field[q]
