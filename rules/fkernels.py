"""numba kernels of the non-threshold families: each slot turns its rows into a derived
value ``x``, then the threshold latch of :mod:`rules.kernels` (set/clear/for) runs on ``x``.

Row handling (unused, NaN, late rows; arrival order; guards) is as in :mod:`rules.kernels`.
Per family (``p``/``i`` are the rule's parameter rows from :mod:`rules.fcompile`):

* window: rows fall in buckets ``ts // bw``; ``x`` is the mean (sum / count) or max of the
  rows in the last ``B`` buckets (the current one included).
* rate: ``x = (v - v_prev) / (t - t_prev) * 60 s``, ``|x|`` when ``absolute``; the first
  row and a row at the same ts as the previous one give no ``x`` (state unchanged but
  the previous row moves to this one).
* flatline: a run starts at a row further than ``eps`` from the run's first value;
  ``x = 1`` once ``t - run_start >= for``, else 0.
* cross: ``x = v - other`` when the other series has a row within ``tol`` of ``t``.
* astro: daytime is ``sun_off + off_offset <= t < sun_on + on_offset`` (the row's local
  day); ``x = 1`` when the field is on (>= 0.5) by day (``lit_in_day``) or off at night.
* noise: ``x = v - limit`` with the day limit while ``day_start <= local time < day_end``.
* stale: a row clears a raised slot and records ``t``; :func:`tick` raises at ``now`` when
  ``now - last > silent`` (and the guard holds). Never-seen devices are not checked.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rules.kernels import emit, latch

__all__ = ["run_families", "tick", "warm_up"]


@njit(cache=True, nogil=True)
def _derive(q, r, fam, v, t, i, P, RI, ser_val, ser_ts, slot_aux, slot_win,
            s_v, s_t, w_sum, w_cnt, w_max, w_head, loc_ns, sun_off, sun_on):  # fmt: skip
    """(valid, x) of slot q on this row, updating the family state."""
    no_ts = np.iinfo(np.int64).min
    if fam == 1:
        w = slot_win[q]
        bw = RI[r, 0]
        nb = RI[r, 1]
        b = t // bw
        h = w_head[w]
        if h == no_ts or b - h >= nb:
            for j in range(nb):
                w_sum[w, j] = 0.0
                w_cnt[w, j] = 0
                w_max[w, j] = -np.inf
        elif b > h:
            for j in range(h + 1, b + 1):
                m = j % nb
                w_sum[w, m] = 0.0
                w_cnt[w, m] = 0
                w_max[w, m] = -np.inf
        if h == no_ts or b > h:
            w_head[w] = b
        m = b % nb
        w_sum[w, m] += v
        w_cnt[w, m] += 1
        if v > w_max[w, m]:
            w_max[w, m] = v
        if P[r, 0] == 1.0:
            x = -np.inf
            for j in range(nb):
                if w_cnt[w, j] > 0 and w_max[w, j] > x:
                    x = w_max[w, j]
            return True, x
        tot = 0.0
        cnt = 0
        for j in range(nb):
            tot += w_sum[w, j]
            cnt += w_cnt[w, j]
        return True, tot / cnt
    if fam == 4:
        pt = s_t[q]
        pv = s_v[q]
        s_t[q] = t
        s_v[q] = v
        if pt == no_ts or t == pt:
            return False, 0.0
        x = (v - pv) / float(t - pt) * 60e9
        if P[r, 0] == 1.0:
            x = abs(x)
        return True, x
    if fam == 3:
        if s_t[q] == no_ts or abs(v - s_v[q]) > P[r, 0]:
            s_v[q] = v
            s_t[q] = t
        return True, 1.0 if t - s_t[q] >= RI[r, 0] else 0.0
    if fam == 5:
        a = slot_aux[q]
        if a < 0 or ser_ts[a] == no_ts or abs(t - ser_ts[a]) > RI[r, 0]:
            return False, 0.0
        return True, v - ser_val[a]
    if fam == 6:
        day = sun_off[i] + RI[r, 0] <= t and t < sun_on[i] + RI[r, 1]
        on = v >= 0.5
        if P[r, 0] == 1.0:
            return True, 1.0 if (on and day) else 0.0
        return True, 1.0 if (not on and not day) else 0.0
    # noise
    ln = loc_ns[i]
    lim = P[r, 0] if (RI[r, 0] <= ln and ln < RI[r, 1]) else P[r, 1]
    return True, v - lim


@njit(cache=True, nogil=True)
def run_families(
    sids, ts, vals, start, loc_ns, sun_off, sun_on,
    feed_ptr, feed_slot, slot_rule, slot_guard, slot_aux, slot_win,
    R_fam, R_op, R_set, R_clear, R_for, R_geq, P, RI,
    ser_val, ser_ts, since, active, s_v, s_t, w_sum, w_cnt, w_max, w_head,
    out_slot, out_ts, out_kind, out_val, counters,
):  # fmt: skip
    """Process rows ``start..`` until done or the output is full; return (next row, n)."""
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
                break
            ser_val[s] = v
            ser_ts[s] = t
            counters[0] += 1
            for j in range(a, b):
                q = feed_slot[j]
                r = slot_rule[q]
                fam = R_fam[r]
                if fam == 2:
                    s_t[q] = t
                    if active[q] != 0:
                        active[q] = 0
                        k = emit(out_slot, out_ts, out_kind, out_val, k, q, t, 0, v)
                    continue
                ok, x = _derive(q, r, fam, v, t, i, P, RI, ser_val, ser_ts, slot_aux, slot_win,
                                s_v, s_t, w_sum, w_cnt, w_max, w_head, loc_ns, sun_off, sun_on)  # fmt: skip
                if not ok:
                    continue
                g = slot_guard[q]
                guard_ok = g < 0 or ser_val[g] == R_geq[r]
                k = latch(q, x, t, guard_ok, R_op[r], R_set[r], R_clear[r], R_for[r],
                          since, active, out_slot, out_ts, out_kind, out_val, k)  # fmt: skip
        i += 1
    return i, k


@njit(cache=True, nogil=True)
def tick(now, slot_rule, slot_guard, R_fam, R_geq, RI, ser_val, active, s_t,
         out_slot, out_ts, out_kind, out_val):  # fmt: skip
    """Raise every staleness slot silent for longer than its limit at ``now``; return n."""
    no_ts = np.iinfo(np.int64).min
    k = 0
    for q in range(slot_rule.shape[0]):
        r = slot_rule[q]
        if R_fam[r] != 2 or active[q] != 0 or s_t[q] == no_ts:
            continue
        g = slot_guard[q]
        if g >= 0 and not (ser_val[g] == R_geq[r]):
            continue
        if now - s_t[q] > RI[r, 0]:
            if k >= out_slot.shape[0]:
                break
            active[q] = 1
            k = emit(out_slot, out_ts, out_kind, out_val, k, q, now, 1, (now - s_t[q]) / 1e9)
    return k


def warm_up() -> None:
    """Compile (or load from the cache) both kernels with the production dtypes."""
    from rules.kernels import NO_TS, readonly

    i64, f64, i32 = np.int64, np.float64, np.int32
    z32 = np.zeros(0, dtype=i32)
    ro = readonly
    run_families(
        ro(np.zeros(1, dtype=i32)), ro(np.zeros(1, dtype=i64)), ro(np.zeros(1)), 0,
        ro(np.zeros(1, dtype=i64)), ro(np.zeros(1, dtype=i64)), ro(np.zeros(1, dtype=i64)),
        np.zeros(2, dtype=i64), z32, z32, z32, z32, z32,
        np.zeros(0, dtype=np.int8), np.zeros(0, dtype=np.int8), np.zeros(0), np.zeros(0),
        np.zeros(0, dtype=i64), np.zeros(0), np.zeros((0, 2)), np.zeros((0, 2), dtype=i64),
        np.full(1, np.nan), np.full(1, NO_TS, dtype=i64), np.zeros(0, dtype=i64),
        np.zeros(0, dtype=np.uint8), np.zeros(0), np.zeros(0, dtype=i64),
        np.zeros((0, 1)), np.zeros((0, 1), dtype=i64), np.zeros((0, 1)), np.zeros(0, dtype=i64),
        np.zeros(1, dtype=i32), np.zeros(1, dtype=i64), np.zeros(1, dtype=np.int8),
        np.zeros(1, dtype=f64), np.zeros(4, dtype=i64),
    )  # fmt: skip
    tick(
        0, z32, z32, np.zeros(0, dtype=np.int8), np.zeros(0), np.zeros((0, 2), dtype=i64),
        np.full(1, np.nan), np.zeros(0, dtype=np.uint8), np.zeros(0, dtype=i64),
        np.zeros(1, dtype=i32), np.zeros(1, dtype=i64), np.zeros(1, dtype=np.int8), np.zeros(1),
    )  # fmt: skip
