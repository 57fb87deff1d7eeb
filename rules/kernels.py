"""The numba kernel: threshold rules with hysteresis, minimum duration and guards.

Semantics (the reference engine in ``rules.reference`` implements exactly the same):

* Rows are processed in arrival order. A row is ignored (and counted) when its series is
  used by no rule, when its value is NaN, or when its ts is older than the latest ts
  already processed for its series ("late"; an equal ts is processed). Ignored rows change
  no state, not even the series' latest value.
* Every processed row first updates its series' latest value and ts (guards read these)
  and its device's latest ts, then evaluates each slot (rule subject) the series feeds,
  in rule order.
* Each slot has its own set/clear levels: the rule's, or for a rule ``relative_to`` an
  expected value, the rule's shares of the subject's expected value.
* For ``above``: *crossing* is ``value > set``, *release* is ``value < clear``; for
  ``below``: crossing is ``value < set``, release is ``value > clear``. While any guard
  fails on its series' latest value (``equals`` / ``above`` / ``below`` a level; a series
  never seen fails) the row counts as a release and never as a crossing.
* A slot is *latched* from the first crossing (``since`` = that row's ts) until a release.
  Between set and clear (the hysteresis band) the latch holds, whether or not the alarm is
  raised yet. A release unlatches; if the alarm was raised it clears at that row's ts.
* A latched slot raises, once, on the first of its rows with ``ts - since >= for_s``
  (with ``for_s = 0`` the crossing row itself raises). Guard rows only update the guard's
  latest value.
* The clock (:func:`confirm`, from ``RulesEngine.tick(now)``, ``now`` being the event
  time up to which rows have arrived): the latest value stands until replaced, so a
  latched, not yet raised slot whose due time ``since + for_s`` is ``<= now`` raises at
  ``since + for_s`` (not at ``now``) with its latest value, when its guards hold on
  their latest values and its device's latest row (of any series these rules read) is
  no older than ``due - max_silence_s``. The clock never releases or clears: rows do.
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
    "step",
    "guards_ok",
    "run_batch",
    "confirm",
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
def step(x, t, guard_ok, op, set_, clear, for_ns, since, active):  # fmt: skip
    """One subject's set/clear latch on a derived value ``x`` at ``t`` (shared by every
    rule family): a crossing starts the pending time, a release (or a failed guard) ends
    it and clears a raised alarm, and a condition held ``for_ns`` raises. Takes and
    returns the subject's ``since`` and ``active``, and the kind of the transition it
    causes (-1 for none; at most one per row).

    Scalars only, on purpose: array arguments to a helper cost numba a reference count
    round trip per call, which in the per-slot loop cost more than the latch itself."""
    if op == 0:
        crossing = x > set_
        release = x < clear
    else:
        crossing = x < set_
        release = x > clear
    if not guard_ok:
        crossing = False
        release = True
    kind = -1
    if since == NO_TS:
        if crossing:
            since = t
    elif release:
        since = NO_TS
        if active != 0:
            active = 0
            kind = KIND_CLEAR
    if since != NO_TS and active == 0 and t - since >= for_ns:
        active = 1
        kind = KIND_RAISE
    return since, active, kind


@njit(cache=True, nogil=True)
def guards_ok(q, r, slot_guard, gop, gval, ser_val):  # fmt: skip
    """Whether every guard of slot ``q`` (rule ``r``) holds on its series' latest value;
    ``slot_guard[q]`` lists guard series ids, -1 after the last."""
    for j in range(slot_guard.shape[1]):
        g = slot_guard[q, j]
        if g < 0:
            return True
        x = ser_val[g]
        c = gval[r, j]
        o = gop[r, j]
        if o == 0:
            ok = x == c
        elif o == 1:
            ok = x > c
        else:
            ok = x < c
        if not ok:
            return False
    return True


@njit(cache=True, nogil=True)
def run_batch(
    sids, ts, vals, start,
    feed_ptr, feed_slot, slot_rule, slot_guard, slot_set, slot_clear, ser_dev,
    rule_op, rule_for, rule_gop, rule_gval,
    ser_val, ser_ts, dev_ts, slot_since, slot_active, slot_last,
    out_slot, out_ts, out_kind, out_val, counters,
):  # fmt: skip
    """Process rows ``start..`` until done or the output is full; return (next row, n emitted)."""
    n = sids.shape[0]
    cap = out_slot.shape[0]
    k = 0
    i = start
    used = nan = late = unused = 0  # counted locally: a store per row would cost more
    one = np.uint64(1)
    while i < n:
        s = sids[i]
        v = vals[i]
        t = ts[i]
        if s < 0:
            unused += 1
            i += 1
            continue
        # ids as unsigned from here: numba then skips the negative-index wraparound code
        su = np.uint64(s)
        if np.isnan(v):
            nan += 1
        elif t < ser_ts[su]:
            late += 1
        else:
            a = feed_ptr[su]
            b = feed_ptr[su + one]
            if k + (b - a) > cap:
                break  # resume at this row with a larger output
            ser_val[su] = v
            ser_ts[su] = t
            d = np.uint64(ser_dev[su])
            if t > dev_ts[d]:
                dev_ts[d] = t
            used += 1
            for j in range(a, b):
                q = feed_slot[np.uint64(j)]
                qu = np.uint64(q)
                r = slot_rule[qu]
                ru = np.uint64(r)
                ok = slot_guard[qu, 0] < 0 or guards_ok(
                    q, r, slot_guard, rule_gop, rule_gval, ser_val
                )
                since, act, kind = step(v, t, ok, rule_op[ru], slot_set[qu], slot_clear[qu],
                                        rule_for[ru], slot_since[qu], slot_active[qu])  # fmt: skip
                slot_since[qu] = since
                slot_active[qu] = act
                if kind >= 0:
                    k = emit(out_slot, out_ts, out_kind, out_val, k, q, t, kind, v)
                slot_last[qu] = v
        i += 1
    counters[C_ROWS] += used
    counters[C_NAN] += nan
    counters[C_LATE] += late
    counters[C_UNUSED] += unused
    return i, k


@njit(cache=True, nogil=True)
def confirm(
    now, start, slot_rule, slot_dev, slot_guard, rule_for, rule_silence, rule_gop, rule_gval,
    ser_val, dev_ts, since, active, slot_last, out_slot, out_ts, out_kind, out_val,
):  # fmt: skip
    """Raise latched slots ``start..`` that the clock confirms at ``now`` (see the module
    docstring), each at its due time; return (next slot, n emitted) when the output fills."""
    no_ts = NO_TS
    n = slot_rule.shape[0]
    cap = out_slot.shape[0]
    k = 0
    q = start
    while q < n:
        s0 = since[q]
        if s0 != no_ts and active[q] == 0:
            r = slot_rule[q]
            due = s0 + rule_for[r]
            if (
                due <= now
                and dev_ts[slot_dev[q]] >= due - rule_silence[r]
                and guards_ok(q, r, slot_guard, rule_gop, rule_gval, ser_val)
            ):
                if k >= cap:
                    break
                active[q] = 1
                k = emit(out_slot, out_ts, out_kind, out_val, k, q, due, 1, slot_last[q])
        q += 1
    return q, k


def readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view: batch inputs always reach the kernel as such, so one compiled
    specialisation serves both polars' zero-copy arrays and our own copies."""
    v = a.view()
    v.flags.writeable = False
    return v


def warm_up() -> None:
    """Compile (or load from the cache) the kernels with exactly the production dtypes."""
    i8, i32, i64 = np.int8, np.int32, np.int64
    z32, z64 = np.zeros(0, dtype=i32), np.zeros(0, dtype=i64)
    g32 = np.zeros((0, 1), dtype=i32)
    out = (np.zeros(1, dtype=i32), np.zeros(1, dtype=i64), np.zeros(1, dtype=i8), np.zeros(1))
    run_batch(
        readonly(np.zeros(1, dtype=i32)), readonly(np.zeros(1, dtype=i64)),
        readonly(np.zeros(1)), 0,
        np.zeros(2, dtype=i64), z32, z32, g32, np.zeros(0), np.zeros(0), np.zeros(1, dtype=i32),
        np.zeros(0, dtype=i8), z64, np.zeros((0, 1), dtype=i8), np.zeros((0, 1)),
        np.full(1, np.nan), np.full(1, NO_TS, dtype=i64), np.full(1, NO_TS, dtype=i64),
        z64, np.zeros(0, dtype=np.uint8), np.zeros(0),
        *out, np.zeros(N_COUNTERS, dtype=i64),
    )  # fmt: skip
    confirm(
        0, 0, z32, z32, g32, z64, z64, np.zeros((0, 1), dtype=i8), np.zeros((0, 1)),
        np.full(1, np.nan), np.full(1, NO_TS, dtype=i64), z64, np.zeros(0, dtype=np.uint8),
        np.zeros(0), *out,
    )  # fmt: skip
