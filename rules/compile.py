"""Rules as plain arrays, and the dense series/slot index the kernels run on.

A *series* is one (device_id, field) pair; a *slot* is one (rule, series) subject. Ids are
assigned here, outside the kernels: each batch is mapped by key hash (:mod:`rules.idmap`),
and only keys never seen before go through Python (once each, ever).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from contracts.config import DeviceConfig, RuleConfig
from rules.idmap import IdMap

__all__ = [
    "OP_ABOVE",
    "OP_BELOW",
    "GUARD_OPS",
    "EXPECTED",
    "expected_current",
    "RuleArrays",
    "compile_rules",
    "guard_arrays",
    "Pattern",
    "SeriesIndex",
]

log = logging.getLogger(__name__)

OP_ABOVE = 0
OP_BELOW = 1
GUARD_OPS = {"equals": 0, "above": 1, "below": 2}
_NS = 1_000_000_000


def expected_current(attrs: Mapping[str, str], star: str) -> float | None:
    """Current (A) of circuit ``star`` with every lamp lit, from the cabinet's asset register:
    ``lamps_per_circuit`` ("25,29,22"), ``lamp_watts``, and optionally ``nominal_voltage``
    (220 V phase, GB/T 156) and ``lamp_power_factor`` (0.95, LED drivers with PFC); None
    when an attr is missing or malformed, or the circuit is not listed."""
    try:
        lamps = [int(x) for x in attrs["lamps_per_circuit"].split(",")]
        watts = float(attrs["lamp_watts"])
        volts = float(attrs.get("nominal_voltage", "220"))
        pf = float(attrs.get("lamp_power_factor", "0.95"))
        n = int(star)
    except (KeyError, ValueError):
        return None
    if not 1 <= n <= len(lamps) or lamps[n - 1] <= 0 or min(watts, volts, pf) <= 0:
        return None
    return lamps[n - 1] * watts / (volts * pf)


#: ``RuleConfig.relative_to`` name -> expected value of a subject from (device attrs, the
#: text the field's '*' matched)
EXPECTED: dict[str, Callable[[Mapping[str, str], str], float | None]] = {
    "expected_current": expected_current,
}


def guard_arrays(rules: list) -> tuple[np.ndarray, np.ndarray]:
    """(op, level) of every rule's guards as [n_rules, max guards] arrays (op codes in
    :data:`GUARD_OPS`; at least one column)."""
    width = max([len(r.guards) for r in rules] + [1])
    op = np.zeros((len(rules), width), dtype=np.int8)
    val = np.full((len(rules), width), np.nan)
    for i, r in enumerate(rules):
        for j, g in enumerate(r.guards):
            name, level = g.test
            op[i, j], val[i, j] = GUARD_OPS[name], level
    return op, val


@dataclass(frozen=True)
class RuleArrays:
    """Per-rule parameters as arrays indexed by rule number (the position in the rule list);
    set/clear live per slot (:meth:`SeriesIndex.slot_arrays`)."""

    op: np.ndarray  # int8: OP_ABOVE | OP_BELOW
    for_ns: np.ndarray  # int64
    silence_ns: np.ndarray  # int64: max_silence_s
    guard_op: np.ndarray  # int8 [n_rules, max guards]
    guard_val: np.ndarray  # float64 [n_rules, max guards]


def compile_rules(rules: list[RuleConfig]) -> RuleArrays:
    """Turn rule configs into the arrays the kernel reads."""
    gop, gval = guard_arrays(rules)
    return RuleArrays(
        op=np.array([OP_ABOVE if r.op == "above" else OP_BELOW for r in rules], dtype=np.int8),
        for_ns=np.array([round(r.for_s * _NS) for r in rules], dtype=np.int64),
        silence_ns=np.array([round(r.max_silence_s * _NS) for r in rules], dtype=np.int64),
        guard_op=gop,
        guard_val=gval,
    )


class Pattern:
    """A field name with at most one ``*`` (matching one or more characters)."""

    def __init__(self, text: str):
        self.text = text
        self.star = "*" in text
        self.prefix, _, self.suffix = text.partition("*")

    def match(self, field: str) -> str | None:
        """The text the ``*`` matched ("" without a star), or None when the field does not match."""
        if not self.star:
            return "" if field == self.text else None
        if (
            len(field) > len(self.prefix) + len(self.suffix)
            and field.startswith(self.prefix)
            and field.endswith(self.suffix)
        ):
            return field[len(self.prefix) : len(field) - len(self.suffix)]
        return None

    def fill(self, star: str) -> str:
        """The field name with the ``*`` replaced."""
        return self.prefix + star + self.suffix if self.star else self.text


class SeriesIndex:
    """Dense int32 ids for series, devices and slots, growing as new devices and fields appear.

    A rule ``relative_to`` an expected value gets a slot only on devices whose attrs give
    that value (``devices``: id -> config); the others are counted in :attr:`unrated`.
    """

    def __init__(self, rules: list[RuleConfig], devices: Mapping[str, DeviceConfig] | None = None):
        self.rules = rules
        self.devices = devices or {}
        self._fields = [Pattern(r.field) for r in rules]
        self._guards = [[Pattern(g.field) for g in r.guards] for r in rules]
        self.series: list[tuple[str, str, str]] = []  # sid -> (device_id, kind, field)
        # (device_id, field) -> sid, or -1 if no rule uses it
        self._sid: dict[tuple[str, str], int] = {}
        self.ser_dev: list[int] = []
        self._dev: dict[str, int] = {}
        self.slot_rule: list[int] = []
        self.slot_series: list[int] = []
        self.slot_guard: list[int] = []  # flat: max guards entries per slot, -1 after the last
        self.unrated: dict[str, int] = {}  # rule id -> subjects without an expected value
        self._plans: dict[tuple[str, str], tuple[list[tuple[int, str, float]], bool]] = {}
        self._ids = IdMap(self.ensure)
        self._csr: tuple[np.ndarray, np.ndarray] | None = None
        self._slot_arrays: tuple[np.ndarray, ...] | None = None
        self._width = max([len(r.guards) for r in rules] + [1])
        self._pad = [-1] * self._width
        self._relative = any(r.relative_to is not None for r in rules)
        self._scale: dict[int, float] = {}  # slot -> expected value, for relative rules
        self._set = np.array([r.set for r in rules], dtype=np.float64)
        self._clear = np.array([r.clear for r in rules], dtype=np.float64)

    @property
    def n_series(self) -> int:
        """Number of series with an id."""
        return len(self.series)

    @property
    def n_slots(self) -> int:
        """Number of rule subjects."""
        return len(self.slot_rule)

    def lookup(self, frame: pl.DataFrame, hashes: np.ndarray | None = None) -> np.ndarray:
        """Series id of every row (int32, -1 where no rule uses the series), registering new keys.

        ``hashes`` (from :func:`rules.idmap.key_hashes`) lets several engines share one pass.
        """
        return self._ids.lookup(frame, hashes)

    @property
    def n_devices(self) -> int:
        """Number of devices with an id."""
        return len(self._dev)

    def ensure(self, device_id: str, kind: str, field: str) -> int:
        """The id of a series (-1 if no rule uses it), creating it and its slots when new."""
        key = (device_id, field)
        known = self._sid.get(key)
        if known is not None:
            return known
        subjects, is_guard = self._plan(kind, field)
        if self._relative:  # relative rules apply only where the device's attrs allow
            subjects = [(i, star, self._expected(i, device_id, star)) for i, star, _ in subjects]
            subjects = [x for x in subjects if x[2] is not None]
        if not subjects and not is_guard:
            self._sid[key] = -1
            return -1
        sid = len(self.series)
        self.series.append((device_id, kind, field))
        self.ser_dev.append(self._dev.setdefault(device_id, len(self._dev)))
        self._sid[key] = sid
        for i, star, exp in subjects:
            guards = self._guards[i]
            if guards:
                gs = [self.ensure(device_id, kind, g.fill(star)) for g in guards]
                self.slot_guard.extend(gs)
                self.slot_guard.extend(self._pad[len(gs) :])
            else:
                self.slot_guard.extend(self._pad)
            if exp != 1.0:
                self._scale[len(self.slot_rule)] = exp
            self.slot_rule.append(i)
            self.slot_series.append(sid)
        self._csr = None
        self._slot_arrays = None
        return sid

    def _expected(self, i: int, device_id: str, star: str) -> float | None:
        """The scale of rule i's levels on a subject: 1, or the expected value of a relative
        rule; None when a relative rule does not apply to the subject."""
        r = self.rules[i]
        if r.relative_to is None:
            return 1.0
        dev = self.devices.get(device_id)
        exp = EXPECTED[r.relative_to](dev.attrs, star) if dev is not None else None
        if exp is None:
            if r.id not in self.unrated:
                log.warning("rule %s: the attrs of %s give no %s, so the rule does not apply "
                            "to it (nor to further such subjects: stats unrated_subjects)",
                            r.id, device_id, r.relative_to)  # fmt: skip
            self.unrated[r.id] = self.unrated.get(r.id, 0) + 1
        return exp

    def _plan(self, kind: str, field: str) -> tuple[list[tuple[int, str, float]], bool]:
        # the same (kind, field) recurs on every device: match the rule patterns once
        plan = self._plans.get((kind, field))
        if plan is None:
            matches = [
                (i, p.match(field))
                for i, p in enumerate(self._fields)
                if self.rules[i].kind == kind
            ]
            is_guard = any(
                self.rules[i].kind == kind and g.match(field) is not None
                for i, gs in enumerate(self._guards)
                for g in gs
            )
            plan = ([(i, star, 1.0) for i, star in matches if star is not None], is_guard)
            self._plans[(kind, field)] = plan
        return plan

    def feeds(self) -> tuple[np.ndarray, np.ndarray]:
        """CSR of the slots each series feeds: slots of sid are ``slot[ptr[sid]:ptr[sid+1]]``."""
        if self._csr is None:
            series = np.asarray(self.slot_series, dtype=np.int64)
            counts = np.bincount(series, minlength=self.n_series)
            ptr = np.zeros(self.n_series + 1, dtype=np.int64)
            np.cumsum(counts, out=ptr[1:])
            # stable: a series' slots stay in rule order, which the reference engine relies on
            order = np.argsort(series, kind="stable").astype(np.int32)
            self._csr = (ptr, order)
        return self._csr

    def slot_arrays(self) -> tuple[np.ndarray, ...]:
        """(rule number, device id, guard series ids [n, max guards] (-1 after the last),
        set level, clear level) of every slot, and the device id of every series."""
        if self._slot_arrays is None:
            ser_dev = np.asarray(self.ser_dev, dtype=np.int32)
            series = np.asarray(self.slot_series, dtype=np.int64)
            self._slot_arrays = (
                np.asarray(self.slot_rule, dtype=np.int32),
                ser_dev[series] if len(series) else np.zeros(0, dtype=np.int32),
                np.asarray(self.slot_guard, dtype=np.int32).reshape(-1, self._width),
                *self._levels(),
                ser_dev,
            )
        return self._slot_arrays

    def _levels(self) -> tuple[np.ndarray, np.ndarray]:
        """(set, clear) of every slot: its rule's, times the expected value where relative."""
        rule = np.asarray(self.slot_rule, dtype=np.int64)
        lo, hi = self._set[rule], self._clear[rule]
        if self._scale:
            q = np.fromiter(self._scale.keys(), dtype=np.int64, count=len(self._scale))
            e = np.fromiter(self._scale.values(), dtype=np.float64, count=len(self._scale))
            lo[q] *= e
            hi[q] *= e
        return lo, hi

    def slot_key(self, slot: int) -> tuple[str, str, str]:
        """(rule_id, device_id, field) of a slot."""
        dev, _, field = self.series[self.slot_series[slot]]
        return self.rules[self.slot_rule[slot]].id, dev, field
