"""Rules as plain arrays, and the dense series/slot index the kernels run on.

A *series* is one (device_id, field) pair; a *slot* is one (rule, series) subject. Ids are
assigned here, outside the kernels: each batch is mapped by key hash (:mod:`rules.idmap`),
and only keys never seen before go through Python (once each, ever).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from contracts.config import RuleConfig
from rules.idmap import IdMap

__all__ = ["OP_ABOVE", "OP_BELOW", "RuleArrays", "compile_rules", "Pattern", "SeriesIndex"]

OP_ABOVE = 0
OP_BELOW = 1


@dataclass(frozen=True)
class RuleArrays:
    """Per-rule parameters as arrays indexed by rule number (the position in the rule list)."""

    op: np.ndarray  # int8: OP_ABOVE | OP_BELOW
    set: np.ndarray  # float64
    clear: np.ndarray  # float64
    for_ns: np.ndarray  # int64
    guard_eq: np.ndarray  # float64 (unused where the rule has no guard)


def compile_rules(rules: list[RuleConfig]) -> RuleArrays:
    """Turn rule configs into the arrays the kernel reads."""
    return RuleArrays(
        op=np.array([OP_ABOVE if r.op == "above" else OP_BELOW for r in rules], dtype=np.int8),
        set=np.array([r.set for r in rules], dtype=np.float64),
        clear=np.array([r.clear for r in rules], dtype=np.float64),
        for_ns=np.array([round(r.for_s * 1e9) for r in rules], dtype=np.int64),
        guard_eq=np.array([r.guard.equals if r.guard else np.nan for r in rules], dtype=np.float64),
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
    """Dense int32 ids for series and slots, growing as new devices and fields appear."""

    def __init__(self, rules: list[RuleConfig]):
        self.rules = rules
        self._fields = [Pattern(r.field) for r in rules]
        self._guards = [Pattern(r.guard.field) if r.guard else None for r in rules]
        self.series: list[tuple[str, str, str]] = []  # sid -> (device_id, kind, field)
        self._sid: dict[
            tuple[str, str], int
        ] = {}  # (device_id, field) -> sid, or -1 if no rule uses it
        self.slot_rule: list[int] = []
        self.slot_series: list[int] = []
        self.slot_guard: list[int] = []
        self._plans: dict[tuple[str, str], tuple[list[tuple[int, str]], bool]] = {}
        self._ids = IdMap(self.ensure)
        self._csr: tuple[np.ndarray, np.ndarray] | None = None
        self._slot_arrays: tuple[np.ndarray, np.ndarray] | None = None

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

    def ensure(self, device_id: str, kind: str, field: str) -> int:
        """The id of a series (-1 if no rule uses it), creating it and its slots when new."""
        key = (device_id, field)
        known = self._sid.get(key)
        if known is not None:
            return known
        subjects, is_guard = self._plan(kind, field)
        if not subjects and not is_guard:
            self._sid[key] = -1
            return -1
        sid = len(self.series)
        self.series.append((device_id, kind, field))
        self._sid[key] = sid
        for i, star in subjects:
            g = self._guards[i]
            guard_sid = self.ensure(device_id, kind, g.fill(star)) if g is not None else -1
            self.slot_rule.append(i)
            self.slot_series.append(sid)
            self.slot_guard.append(guard_sid)
        self._csr = None
        self._slot_arrays = None
        return sid

    def _plan(self, kind: str, field: str) -> tuple[list[tuple[int, str]], bool]:
        # the same (kind, field) recurs on every device: match the rule patterns once
        plan = self._plans.get((kind, field))
        if plan is None:
            matches = [
                (i, p.match(field))
                for i, p in enumerate(self._fields)
                if self.rules[i].kind == kind
            ]
            is_guard = any(
                g is not None and self.rules[i].kind == kind and g.match(field) is not None
                for i, g in enumerate(self._guards)
            )
            plan = ([(i, star) for i, star in matches if star is not None], is_guard)
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

    def slot_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Rule number and guard series id (-1 for none) of every slot."""
        if self._slot_arrays is None:
            self._slot_arrays = (
                np.asarray(self.slot_rule, dtype=np.int32),
                np.asarray(self.slot_guard, dtype=np.int32),
            )
        return self._slot_arrays

    def slot_key(self, slot: int) -> tuple[str, str, str]:
        """(rule_id, device_id, field) of a slot."""
        dev, _, field = self.series[self.slot_series[slot]]
        return self.rules[self.slot_rule[slot]].id, dev, field
