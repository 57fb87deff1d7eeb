"""The numba kernel: threshold rules with hysteresis, minimum duration and a guard.

Semantics (the reference engine in ``rules.reference`` implements exactly the same):

* Rows are processed in arrival order. A row is ignored (and counted) when its series is
  used by no rule, when its value is NaN, or when its ts is older than the latest ts
  already processed for its series ("late"; an equal ts is processed). Ignored rows change
  no state, not even the series' latest value.
* Every processed row first updates its series' latest value and ts (guards read these),
  then evaluates each slot (rule subject) the series feeds, in rule order.
* For ``above``: *crossing* is ``value > set``, *release* is ``value < clear``; for
  ``below``: crossing is ``value < set``, release is ``value > clear``. While the guard
  series' latest value != ``equals`` (or it has never been seen) the row counts as a
  release and never as a crossing.
* A slot is *latched* from the first crossing (``since`` = that row's ts) until a release.
  Between set and clear (the hysteresis band) the latch holds, whether or not the alarm is
  raised yet. A release unlatches; if the alarm was raised it clears at that row's ts.
* A latched slot raises, once, on the first of its rows with ``ts - since >= for_s``
  (with ``for_s = 0`` the crossing row itself raises). Durations are only checked on rows
  of the subject's own series; guard rows only update the guard's latest value.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "NO_TS",
    "KIND_CLEAR",
    "KIND_RAISE",
    "C_ROWS",
    "C_NAN",
    "C_LATE",
    "C_UNUSED",
    "N_COUNTERS",
    "emit",
    "latch",
    "run_batch",
    "warm_up",
    "readonly",
]

NO_TS = np.iinfo(np.int64).min
KIND_CLEAR = 0
KIND_RAISE = 1
C_ROWS, C_NAN, C_LATE, C_UNUSED = 0, 1, 2, 3
N_COUNTERS = 4


@njit(cache=True, nogil=True)
def emit(out_slot, out_ts, out_kind, out_val, k, q, t, kind, v):  # fmt: skip
    """Write one transition at ``k``; return the next free index."""
    out_slot[k] = q
    out_ts[k] = t
    out_kind[k] = kind
    out_val[k] = v
    return k + 1


@njit(cache=True, nogil=True)
def latch(
    q, x, t, guard_ok, op, set_, clear, for_ns,
    since, active, out_slot, out_ts, out_kind, out_val, k,
):  # fmt: skip
    """One subject's set/clear latch on a derived value ``x`` at ``t`` (shared by every
    rule family): a crossing starts the pending time, a release (or a failed guard) ends
    it and clears a raised alarm, and a condition held ``for_ns`` raises. Returns ``k``."""
    no_ts = np.iinfo(np.int64).min
    if op == 0:
        crossing = x > set_
        release = x < clear
    else:
        crossing = x < set_
        release = x > clear
    if not guard_ok:
        crossing = False
        release = True
    if since[q] == no_ts:
        if crossing:
            since[q] = t
    elif release:
        since[q] = no_ts
        if active[q] != 0:
            active[q] = 0
            k = emit(out_slot, out_ts, out_kind, out_val, k, q, t, 0, x)
    if since[q] != no_ts and active[q] == 0 and t - since[q] >= for_ns:
        active[q] = 1
        k = emit(out_slot, out_ts, out_kind, out_val, k, q, t, 1, x)
    return k


@njit(cache=True, nogil=True)
def run_batch(
    sids, ts, vals, start,
    feed_ptr, feed_slot, slot_rule, slot_guard,
    rule_op, rule_set, rule_clear, rule_for, rule_geq,
    ser_val, ser_ts, slot_since, slot_active, slot_last,
    out_slot, out_ts, out_kind, out_val, counters,
):  # fmt: skip
    """Process rows ``start..`` until done or the output is full; return (next row, n emitted)."""
    n = sids.shape[0]
    cap = out_slot.shape[0]
    k = 0
    i = start
    while i < n:
        s = sids[i]
        v = vals[i]
        t = ts[i]
        if s < 0:
            counters[3] += 1
        elif np.isnan(v):
            counters[1] += 1
        elif t < ser_ts[s]:
            counters[2] += 1
        else:
            a = feed_ptr[s]
            b = feed_ptr[s + 1]
            if k + (b - a) > cap:
                break  # resume at this row with a larger output
            ser_val[s] = v
            ser_ts[s] = t
            counters[0] += 1
            for j in range(a, b):
                q = feed_slot[j]
                r = slot_rule[q]
                g = slot_guard[q]
                guard_ok = g < 0 or ser_val[g] == rule_geq[r]
                k = latch(q, v, t, guard_ok, rule_op[r], rule_set[r], rule_clear[r], rule_for[r],
                          slot_since, slot_active, out_slot, out_ts, out_kind, out_val, k)  # fmt: skip
                slot_last[q] = v
        i += 1
    return i, k


def readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view: batch inputs always reach the kernel as such, so one compiled
    specialisation serves both polars' zero-copy arrays and our own copies."""
    v = a.view()
    v.flags.writeable = False
    return v


def warm_up() -> None:
    """Compile (or load from the cache) the kernel with exactly the production dtypes."""
    z32 = np.zeros(0, dtype=np.int32)
    run_batch(
        readonly(np.zeros(1, dtype=np.int32)), readonly(np.zeros(1, dtype=np.int64)),
        readonly(np.zeros(1, dtype=np.float64)), 0,
        np.zeros(2, dtype=np.int64), z32, z32, z32,
        np.zeros(0, dtype=np.int8), np.zeros(0), np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0),
        np.full(1, np.nan), np.full(1, NO_TS, dtype=np.int64), np.zeros(0, dtype=np.int64),
        np.zeros(0, dtype=np.uint8), np.zeros(0),
        np.zeros(1, dtype=np.int32), np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int8),
        np.zeros(1), np.zeros(N_COUNTERS, dtype=np.int64),
    )  # fmt: skip
