"""numba kernels of the non-threshold families: each slot turns its rows into a derived
value ``x``, then the threshold latch of :mod:`rules.kernels` (set/clear/for) runs on ``x``.

Row handling (unused, NaN, late rows; arrival order; guards; the device's latest ts) is as
in :mod:`rules.kernels`. Per family (``p``/``i`` are the rule's parameter rows from
:mod:`rules.fcompile`):

* window: rows fall in buckets ``ts // bw``; ``x`` is the mean (sum / count) or max of the
  rows in the last ``B`` buckets (the current one included). While fewer than
  ``min_coverage * B`` of those buckets hold a row the row gives no ``x`` (state unchanged
  but the bucket counts it).
* rate: ``x = (v - v_prev) / (t - t_prev) * 60 s``, ``|x|`` when ``absolute``; the first
  row and a row at the same ts as the previous one give no ``x`` (state unchanged but
  the previous row moves to this one).
* flatline: a run starts at a row further than ``eps`` from the run's first value;
  ``x = 1`` once ``t - run_start >= for``, else 0.
* cross: ``x = v - other`` when the other series has a row within ``tol`` of ``t``.
* astro: daytime is ``sun_off + off_offset <= t < sun_on + on_offset`` (the row's local
  day); ``x = 1`` when the field is on (>= 0.5) by day (``lit_in_day``) or off at night.
* noise: ``x = v - limit`` with the day limit while ``day_start <= local time < day_end``.
* spike: on each row, ``x = prev / max(prev_prev, v, floor)`` (the previous row against
  both its neighbours); no ``x`` until two rows came before; a row at the ts of the
  previous one replaces it and gives no ``x``.
* stale: a row clears a raised slot and records ``t``; :func:`tick` raises at ``now`` when
  ``now - last > silent`` (and the guards hold). Never-seen devices are not checked.

The clock (:func:`tick`) also confirms, like :func:`rules.kernels.confirm` (due time,
guards, the device heard within ``max_silence_s`` of it), a latched cross, astro or noise
slot at ``since + for`` while its derived value stands: for astro and noise until the
day/night state next changes after the slot's last row (``lim``; a night that began
in the evening counts as lasting until an hour before the next sunrise estimated from
today's), and a flatline run at ``run_start + for`` when no row reached that time (``lim``
is the last row's ts). Window, rate and spike values depend on rows and are not
confirmed by the clock.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rules.kernels import emit, guards_ok, step

__all__ = ["run_families", "tick", "warm_up"]

_DAY = 86_400 * 1_000_000_000
_HOUR = 3_600 * 1_000_000_000


@njit(cache=True, nogil=True)
def _derive(q, r, fam, v, t, i, P, RI, ser_val, ser_ts, slot_aux, slot_win,
            s_v, s_t, s_u, s_lim, w_sum, w_cnt, w_max, w_head, loc_ns, sun_off, sun_on):  # fmt: skip
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
        # coverage, max, sum and count in one pass over the buckets
        covered = 0
        x = -np.inf
        tot = 0.0
        cnt = 0
        for j in range(nb):
            c = w_cnt[w, j]
            if c > 0:
                covered += 1
                if w_max[w, j] > x:
                    x = w_max[w, j]
            tot += w_sum[w, j]
            cnt += c
        if covered < P[r, 1] * nb:
            return False, 0.0
        if P[r, 0] == 1.0:
            return True, x
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
        s_lim[q] = t
        return True, 1.0 if t - s_t[q] >= RI[r, 0] else 0.0
    if fam == 5:
        a = slot_aux[q]
        if a < 0 or ser_ts[a] == no_ts or abs(t - ser_ts[a]) > RI[r, 0]:
            return False, 0.0
        return True, v - ser_val[a]
    if fam == 6:
        start = sun_off[i] + RI[r, 0]
        end = sun_on[i] + RI[r, 1]
        day = start <= t and t < end
        if t < start:
            s_lim[q] = start
        elif t < end:
            s_lim[q] = end
        else:  # tomorrow's sunrise moves by minutes a day: an hour is a safe margin
            s_lim[q] = start + _DAY - _HOUR
        on = v >= 0.5
        if P[r, 0] == 1.0:
            return True, 1.0 if (on and day) else 0.0
        return True, 1.0 if (not on and not day) else 0.0
    if fam == 8:
        pt = s_t[q]
        if pt != no_ts and t == pt:
            s_v[q] = v
            return False, 0.0
        p = s_v[q]
        pp = s_u[q]
        s_u[q] = p
        s_v[q] = v
        s_t[q] = t
        if np.isnan(pp):  # also true before the second row: s_v starts as NaN
            return False, 0.0
        return True, p / max(pp, v, P[r, 1])
    # noise
    ln = loc_ns[i]
    lim = P[r, 0] if (RI[r, 0] <= ln and ln < RI[r, 1]) else P[r, 1]
    if ln < RI[r, 0]:
        s_lim[q] = t + (RI[r, 0] - ln)
    elif ln < RI[r, 1]:
        s_lim[q] = t + (RI[r, 1] - ln)
    else:
        s_lim[q] = t + (_DAY - ln + RI[r, 0])
    return True, v - lim


@njit(cache=True, nogil=True)
def run_families(
    sids, ts, vals, start, loc_ns, sun_off, sun_on,
    feed_ptr, feed_slot, slot_rule, slot_guard, slot_aux, slot_win, ser_dev,
    R_fam, R_op, R_set, R_clear, R_for, R_gop, R_gval, P, RI,
    ser_val, ser_ts, dev_ts, since, active, s_v, s_t, s_u, s_x, s_lim,
    w_sum, w_cnt, w_max, w_head, out_slot, out_ts, out_kind, out_val, counters,
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
            d = ser_dev[s]
            if t > dev_ts[d]:
                dev_ts[d] = t
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
                                s_v, s_t, s_u, s_lim, w_sum, w_cnt, w_max, w_head,
                                loc_ns, sun_off, sun_on)  # fmt: skip
                if not ok:
                    continue
                s_x[q] = x
                g_ok = slot_guard[q, 0] < 0 or guards_ok(q, r, slot_guard, R_gop, R_gval, ser_val)
                sn, act, kind = step(x, t, g_ok, R_op[r], R_set[r], R_clear[r], R_for[r],
                                     since[q], active[q])  # fmt: skip
                since[q] = sn
                active[q] = act
                if kind >= 0:
                    k = emit(out_slot, out_ts, out_kind, out_val, k, q, t, kind, x)
        i += 1
    return i, k


@njit(cache=True, nogil=True)
def tick(
    now, start, slot_rule, slot_dev, slot_guard, R_fam, R_for, R_silence, R_gop, R_gval, RI,
    ser_val, dev_ts, since, active, s_t, s_x, s_lim, out_slot, out_ts, out_kind, out_val,
):  # fmt: skip
    """The clock at ``now`` over slots ``start..``: silent staleness subjects raise at
    ``now``, confirmed conditions at their due times; return (next slot, n emitted)."""
    no_ts = np.iinfo(np.int64).min
    n = slot_rule.shape[0]
    cap = out_slot.shape[0]
    k = 0
    q = start
    while q < n:
        r = slot_rule[q]
        fam = R_fam[r]
        if active[q] != 0:
            q += 1
            continue
        if fam == 2:
            if s_t[q] != no_ts and now - s_t[q] > RI[r, 0]:
                if guards_ok(q, r, slot_guard, R_gop, R_gval, ser_val):
                    if k >= cap:
                        break
                    active[q] = 1
                    k = emit(out_slot, out_ts, out_kind, out_val, k, q, now, 1,
                             (now - s_t[q]) / 1e9)  # fmt: skip
            q += 1
            continue
        due = no_ts
        if fam == 3 and s_t[q] != no_ts and s_t[q] + RI[r, 0] > s_lim[q]:
            due = s_t[q] + RI[r, 0]
        elif (fam == 5 or fam == 6 or fam == 7) and since[q] != no_ts:
            due = since[q] + R_for[r]
            if fam != 5 and due > s_lim[q]:
                due = no_ts
        if (
            due != no_ts
            and due <= now
            and dev_ts[slot_dev[q]] >= due - R_silence[r]
            and guards_ok(q, r, slot_guard, R_gop, R_gval, ser_val)
        ):
            if k >= cap:
                break
            active[q] = 1
            since[q] = due if fam == 3 else since[q]  # a flatline latches as it raises
            k = emit(out_slot, out_ts, out_kind, out_val, k, q, due, 1,
                     1.0 if fam == 3 else s_x[q])  # fmt: skip
        q += 1
    return q, k


def warm_up() -> None:
    """Compile (or load from the cache) both kernels with the production dtypes."""
    from rules.kernels import NO_TS, readonly

    i8, i64, i32 = np.int8, np.int64, np.int32
    z32, z64 = np.zeros(0, dtype=i32), np.zeros(0, dtype=i64)
    g32, gop, gval = np.zeros((0, 1), dtype=i32), np.zeros((0, 1), dtype=i8), np.zeros((0, 1))
    ro = readonly
    out = (np.zeros(1, dtype=i32), np.zeros(1, dtype=i64), np.zeros(1, dtype=i8), np.zeros(1))
    run_families(
        ro(np.zeros(1, dtype=i32)), ro(np.zeros(1, dtype=i64)), ro(np.zeros(1)), 0,
        ro(np.zeros(1, dtype=i64)), ro(np.zeros(1, dtype=i64)), ro(np.zeros(1, dtype=i64)),
        np.zeros(2, dtype=i64), z32, z32, g32, z32, z32, np.zeros(1, dtype=i32),
        np.zeros(0, dtype=i8), np.zeros(0, dtype=i8), np.zeros(0), np.zeros(0), z64,
        gop, gval, np.zeros((0, 2)), np.zeros((0, 2), dtype=i64),
        np.full(1, np.nan), np.full(1, NO_TS, dtype=i64), np.full(1, NO_TS, dtype=i64),
        z64, np.zeros(0, dtype=np.uint8), np.zeros(0), z64, np.zeros(0), np.zeros(0), z64,
        np.zeros((0, 1)), np.zeros((0, 1), dtype=i64), np.zeros((0, 1)), z64,
        *out, np.zeros(4, dtype=i64),
    )  # fmt: skip
    tick(
        0, 0, z32, z32, g32, np.zeros(0, dtype=i8), z64, z64, gop, gval,
        np.zeros((0, 2), dtype=i64), np.full(1, np.nan), np.full(1, NO_TS, dtype=i64), z64,
        np.zeros(0, dtype=np.uint8), z64, np.zeros(0), z64, *out,
    )  # fmt: skip
