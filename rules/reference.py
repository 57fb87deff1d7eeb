"""A plain-Python rules engine with the kernel's exact semantics: the oracle for tests.

Deliberately written differently from the kernel (dicts keyed by names, regex patterns,
row-at-a-time) so that agreement between the two means something. The semantics are
documented in :mod:`rules.kernels`.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Iterable, Mapping
from typing import Any

from contracts.config import DeviceConfig, RuleConfig
from rules.compile import EXPECTED
from rules.transition import Transition, subject_of

__all__ = ["ReferenceEngine", "guards_hold", "heard_before"]

_NS = 1_000_000_000
_TESTS = {"equals": operator.eq, "above": operator.gt, "below": operator.lt}


def guards_hold(rule: Any, latest: Mapping, dev: str, groups: tuple[str, ...]) -> bool:
    """Whether every guard of ``rule`` holds on the device's latest values (a ``*`` in a
    guard's field is the subject's own group)."""
    for g in rule.guards:
        gfield = g.field.replace("*", groups[0]) if groups else g.field
        seen = latest.get((dev, gfield))
        test, level = g.test
        if seen is None or not _TESTS[test](seen[1], level):
            return False
    return True


def heard_before(latest: Mapping, dev: str, due: int, max_silence_s: float) -> bool:
    """Whether the device sent any row within ``max_silence_s`` before ``due`` (the clock
    confirms a pending condition only then)."""
    heard = max(ts for (d, _), (ts, _) in latest.items() if d == dev)
    return heard >= due - round(max_silence_s * _NS)


def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + "(.+)".join(re.escape(p) for p in pattern.split("*")) + "$", re.DOTALL)


class ReferenceEngine:
    """Row-at-a-time threshold rules; same inputs, same transitions as the numba engine."""

    def __init__(self, rules: list[RuleConfig], devices: Mapping[str, DeviceConfig] | None = None):
        self.rules = list(rules)
        self.devices = dict(devices or {})
        self._re = [_regex(r.field) for r in self.rules]
        self._guard_re = [[_regex(g.field) for g in r.guards] for r in self.rules]
        self.latest: dict[tuple[str, str], tuple[int, float]] = {}  # (device, field) -> (ts, value)
        self.latch: dict[tuple[str, str, str], int] = {}  # (rule_id, device, field) -> since
        self.raised: set[tuple[str, str, str]] = set()
        self.ignored = {"nan": 0, "late": 0, "unused": 0}

    def _levels(self, rule: RuleConfig, dev: str, groups: tuple[str, ...]) -> tuple | None:
        assert rule.clear is not None
        if rule.relative_to is None:
            return rule.set, rule.clear
        dc = self.devices.get(dev)
        star = groups[0] if groups else ""
        exp = EXPECTED[rule.relative_to](dc.attrs, star) if dc is not None else None
        return None if exp is None else (rule.set * exp, rule.clear * exp)

    def _subjects(self, kind: str, field: str, dev: str) -> list[tuple[RuleConfig, tuple, tuple]]:
        """(rule, groups, (set, clear)) of every rule subject this series feeds."""
        out = []
        for rule, rx in zip(self.rules, self._re):
            m = rx.match(field)
            if rule.kind == kind and m is not None:
                levels = self._levels(rule, dev, m.groups())
                if levels is not None:
                    out.append((rule, m.groups(), levels))
        return out

    def _used(self, kind: str, field: str, dev: str) -> bool:
        if self._subjects(kind, field, dev):
            return True
        return any(
            rule.kind == kind and g.match(field)
            for rule, grs in zip(self.rules, self._guard_re)
            for g in grs
        )

    def process_rows(
        self, rows: Iterable[tuple[str, str, int, str, float | None]]
    ) -> list[Transition]:
        """Feed rows ``(device_id, kind, ts, field, value)`` in arrival order."""
        out: list[Transition] = []
        for dev, kind, ts, field, value in rows:
            if not self._used(kind, field, dev):
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
            for rule, groups, levels in self._subjects(kind, field, dev):
                out.extend(self._evaluate(rule, dev, field, groups, levels, ts, value))
        return out

    def _evaluate(
        self, rule: RuleConfig, dev: str, field: str, groups: tuple[str, ...],
        levels: tuple[float, float], ts: int, v: float,
    ) -> list[Transition]:  # fmt: skip
        set_, clear = levels
        if rule.op == "above":
            crossing, release = v > set_, v < clear
        else:
            crossing, release = v < set_, v > clear
        if not guards_hold(rule, self.latest, dev, groups):
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
                out.append(Transition(rule.id, dev, subject, field, "clear", ts, v, clear))
        since = self.latch.get(key)
        if since is not None and key not in self.raised and ts - since >= round(rule.for_s * _NS):
            self.raised.add(key)
            out.append(Transition(rule.id, dev, subject, field, "raise", ts, v, set_))
        return out

    def tick(self, now: int) -> list[Transition]:
        """The clock: raise latched subjects whose due time has come, at that time, while
        their guards hold and their device was heard within ``max_silence_s`` of it."""
        by_id = {r.id: (r, rx) for r, rx in zip(self.rules, self._re)}
        out = []
        for (rid, dev, field), since in self.latch.items():
            key = (rid, dev, field)
            rule, rx = by_id[rid]
            due = since + round(rule.for_s * _NS)
            if key in self.raised or due > now:
                continue
            groups = rx.match(field).groups()  # type: ignore[union-attr]
            if not heard_before(self.latest, dev, due, rule.max_silence_s) or not guards_hold(
                rule, self.latest, dev, groups
            ):
                continue
            self.raised.add(key)
            levels = self._levels(rule, dev, groups)
            assert levels is not None
            value = self.latest[(dev, field)][1]
            subject = subject_of(dev, field, "*" in rule.field)
            out.append(Transition(rid, dev, subject, field, "raise", due, value, levels[0]))
        return out
