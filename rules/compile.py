"""Rules as plain arrays, field patterns, and expected values from device attrs (the
dense series/slot index the kernels run on is :mod:`rules.series`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from contracts.config import RuleConfig

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
]

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
