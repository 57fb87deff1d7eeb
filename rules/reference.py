"""A plain-Python rules engine with the kernel's exact semantics: the oracle for tests.

Deliberately written differently from the kernel (dicts keyed by names, regex patterns,
row-at-a-time) so that agreement between the two means something. The semantics are
documented in :mod:`rules.kernels`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from contracts.config import RuleConfig
from rules.transition import Transition, subject_of

__all__ = ["ReferenceEngine"]


def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + "(.+)".join(re.escape(p) for p in pattern.split("*")) + "$", re.DOTALL)


class ReferenceEngine:
    """Row-at-a-time threshold rules; same inputs, same transitions as the numba engine."""

    def __init__(self, rules: list[RuleConfig]):
        self.rules = list(rules)
        self._re = [_regex(r.field) for r in self.rules]
        self._guard_re = [_regex(r.guard.field) if r.guard else None for r in self.rules]
        self.latest: dict[tuple[str, str], tuple[int, float]] = {}  # (device, field) -> (ts, value)
        self.latch: dict[tuple[str, str, str], int] = {}  # (rule_id, device, field) -> since
        self.raised: set[tuple[str, str, str]] = set()
        self.ignored = {"nan": 0, "late": 0, "unused": 0}

    def _used(self, kind: str, field: str) -> bool:
        for rule, rx, grx in zip(self.rules, self._re, self._guard_re):
            if rule.kind == kind and (rx.match(field) or (grx is not None and grx.match(field))):
                return True
        return False

    def process_rows(
        self, rows: Iterable[tuple[str, str, int, str, float | None]]
    ) -> list[Transition]:
        """Feed rows ``(device_id, kind, ts, field, value)`` in arrival order."""
        out: list[Transition] = []
        for dev, kind, ts, field, value in rows:
            if not self._used(kind, field):
                self.ignored["unused"] += 1
                continue
            if value is None or math.isnan(value):
                self.ignored["nan"] += 1
                continue
            prev = self.latest.get((dev, field))
            if prev is not None and ts < prev[0]:
                self.ignored["late"] += 1
                continue
            self.latest[(dev, field)] = (ts, value)
            for rule, rx in zip(self.rules, self._re):
                m = rx.match(field)
                if rule.kind != kind or m is None:
                    continue
                out.extend(self._evaluate(rule, dev, field, m.groups(), ts, value))
        return out

    def _evaluate(
        self, rule: RuleConfig, dev: str, field: str, groups: tuple[str, ...], ts: int, v: float
    ) -> list[Transition]:
        assert rule.clear is not None
        if rule.op == "above":
            crossing, release = v > rule.set, v < rule.clear
        else:
            crossing, release = v < rule.set, v > rule.clear
        if rule.guard is not None:
            gfield = rule.guard.field.replace("*", groups[0]) if groups else rule.guard.field
            g = self.latest.get((dev, gfield))
            if g is None or g[1] != rule.guard.equals:
                crossing, release = False, True
        key = (rule.id, dev, field)
        subject = subject_of(dev, field, "*" in rule.field)
        out = []
        if key not in self.latch:
            if crossing:
                self.latch[key] = ts
        elif release:
            del self.latch[key]
            if key in self.raised:
                self.raised.discard(key)
                out.append(
                    Transition(rule.id, dev, subject, field, "clear", ts, v, float(rule.clear))
                )
        since = self.latch.get(key)
        if since is not None and key not in self.raised and ts - since >= round(rule.for_s * 1e9):
            self.raised.add(key)
            out.append(Transition(rule.id, dev, subject, field, "raise", ts, v, float(rule.set)))
        return out
