"""numba kernel of the vehicle rules: assemble fixes, filter jumps, track geofences, latch.

Input rows are pre-sorted by (vehicle, ts, arrival) (:mod:`rules.vehicles`); consecutive rows
of one (vehicle, ts) form a *fix* (lat, lon, speed, cover_open; the last non-NaN value of
each field wins; lat = lon = 0 means "no position"). Per fix:

* late: a fix older than the vehicle's newest accepted fix is counted and skipped, so a
  blind-area point replayed later never raises or clears anything (it is still stored).
  A fix at the same ts as the newest one completes it (its rows crossed a batch boundary).
* fields missing from a fix keep the vehicle's last value.
* jump: a fix implying more than ``max_mps`` from the last accepted fix is dropped and
  counted; after ``MAX_REJECT`` drops in a row the next fix is accepted (re-anchors a
  vehicle whose earlier fix was the outlier).
* membership per applicable geofence with ``buffer_m`` hysteresis: inside once the signed
  distance is below ``-buffer``, outside once above ``+buffer``, unchanged in between.
* each rule column latches: the condition holding since ``since`` raises once
  ``t - since >= for``; it clears when the condition stops. Geofence rules and the stop
  rule need a position: without one they are left as they are.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rules.geo import fix_dist, signed_dist

__all__ = ["run_vehicles", "warm_up", "MAX_REJECT", "C_FIXES", "C_LATE", "C_JUMP"]

MAX_REJECT = 3
C_FIXES, C_LATE, C_JUMP = 0, 1, 2


@njit(cache=True, nogil=True)
def _latch(d, c, cond, t, for_ns, since, active, out_dev, out_col, out_ts, out_kind, out_val, k):  # fmt: skip  # pragma: no cover
    no_ts = np.iinfo(np.int64).min
    if cond:
        if since[d, c] == no_ts:
            since[d, c] = t
        if active[d, c] == 0 and t - since[d, c] >= for_ns:
            active[d, c] = 1
            out_dev[k], out_col[k], out_ts[k], out_kind[k] = d, c, t, 1
            out_val[k] = (t - since[d, c]) / 1e9
            k += 1
    elif since[d, c] != no_ts:
        if active[d, c] != 0:
            active[d, c] = 0
            out_dev[k], out_col[k], out_ts[k], out_kind[k] = d, c, t, 0
            out_val[k] = (t - since[d, c]) / 1e9
            k += 1
        since[d, c] = no_ts
    return k


@njit(cache=True, nogil=True)
def _in_any(d, r, ptr, geo, app, inside):  # pragma: no cover - compiled
    for j in range(ptr[r], ptr[r + 1]):
        g = geo[j]
        if app[d, g] != 0 and inside[d, g] != 0:
            return True
    return False


@njit(cache=True, nogil=True)
def run_vehicles(
    order, dev, fcode, ts, vals, loc, start, max_mps,
    g_shape, g_lat0, g_lon0, g_cos0, g_ptr, g_vx, g_vy, g_rad, g_cor, g_buf, g_bbox, g_hs, g_he,
    R_fam, R_for, R_p0, R_p1, tg_ptr, tg_geo, ax_ptr, ax_geo, col_base,
    app, rule_ok,
    d_t, d_lat, d_lon, p_t, p_lat, p_lon, d_spd, d_cov, d_rej,
    inside, vis, since, active, anc_lat, anc_lon,
    out_dev, out_col, out_ts, out_kind, out_val, counters,
):  # fmt: skip  # pragma: no cover - compiled
    """Process fixes from sorted row ``start``; return (next row, n out) when done or full."""
    no_ts = np.iinfo(np.int64).min
    n = order.shape[0]
    ncol = since.shape[1]
    n_geo = app.shape[1]
    cap = out_dev.shape[0]
    k = 0
    i = start
    while i < n:
        if k + ncol > cap:
            break
        r0 = order[i]
        d = dev[r0]
        t = ts[r0]
        ln = loc[r0] if loc.shape[0] > 1 else 0
        la = lo = f_spd = f_cov = np.nan
        while i < n:
            ri = order[i]
            if dev[ri] != d or ts[ri] != t:
                break
            v = vals[ri]
            if not np.isnan(v):
                fc = fcode[ri]
                if fc == 0:
                    la = v
                elif fc == 1:
                    lo = v
                elif fc == 2:
                    f_spd = v
                else:
                    f_cov = v
            i += 1
        if la == 0.0 and lo == 0.0:
            la = np.nan
            lo = np.nan
        ct = d_t[d]
        if ct != no_ts and t < ct:
            counters[C_LATE] += 1
            continue
        nla = la if not np.isnan(la) else d_lat[d]
        nlo = lo if not np.isnan(lo) else d_lon[d]
        if t == ct:
            rt, rla, rlo = p_t[d], p_lat[d], p_lon[d]
        else:
            rt, rla, rlo = ct, d_lat[d], d_lon[d]
        moved = not np.isnan(la) or not np.isnan(lo)
        if moved and rt != no_ts and not np.isnan(rla) and not np.isnan(nla) and not np.isnan(nlo):
            if fix_dist(rla, rlo, nla, nlo) > max_mps * ((t - rt) / 1e9):
                if d_rej[d] < 3:
                    d_rej[d] += 1
                    counters[C_JUMP] += 1
                    continue
        if t != ct:
            p_t[d], p_lat[d], p_lon[d] = ct, d_lat[d], d_lon[d]
        d_t[d], d_lat[d], d_lon[d], d_rej[d] = t, nla, nlo, 0
        if not np.isnan(f_spd):
            d_spd[d] = f_spd
        if not np.isnan(f_cov):
            d_cov[d] = f_cov
        counters[C_FIXES] += 1
        pos = not np.isnan(nla) and not np.isnan(nlo)
        if pos:
            for g in range(n_geo):
                if app[d, g] == 0:
                    continue
                if (nla < g_bbox[g, 0] or nla > g_bbox[g, 1] or nlo < g_bbox[g, 2]
                        or nlo > g_bbox[g, 3]):  # fmt: skip
                    inside[d, g] = 0
                    continue
                sd = signed_dist(g, nla, nlo, g_shape, g_lat0, g_lon0, g_cos0, g_ptr, g_vx, g_vy,
                                 g_rad, g_cor)  # fmt: skip
                if sd < -g_buf[g]:
                    inside[d, g] = 1
                elif sd > g_buf[g]:
                    inside[d, g] = 0
                if inside[d, g] != 0:
                    vis[d, g] = t
        spd = d_spd[d]
        for r in range(R_fam.shape[0]):
            if rule_ok[d, r] == 0:
                continue
            fam = R_fam[r]
            c0 = col_base[r]
            if fam == 1 or fam == 3 or fam == 4:
                if not pos:
                    continue
                exempt = fam == 3 and _in_any(d, r, ax_ptr, ax_geo, app, inside)
                for j in range(tg_ptr[r], tg_ptr[r + 1]):
                    g = tg_geo[j]
                    if app[d, g] == 0:
                        continue
                    ins = inside[d, g] != 0
                    if fam == 1:
                        cond = ins
                    elif fam == 3:
                        cond = not ins and not exempt
                    else:
                        hs, he = g_hs[g], g_he[g]
                        if hs < 0:
                            hours = True
                        elif hs <= he:
                            hours = hs <= ln and ln < he
                        else:
                            hours = ln >= hs or ln < he
                        cond = ins and hours
                    c = c0 + j - tg_ptr[r]
                    k = _latch(d, c, cond, t, R_for[r], since, active,
                               out_dev, out_col, out_ts, out_kind, out_val, k)  # fmt: skip
            elif fam == 2:
                if not pos:
                    continue
                cond = spd < R_p0[r] and not _in_any(d, r, ax_ptr, ax_geo, app, inside)
                if cond and since[d, c0] != no_ts:
                    if fix_dist(anc_lat[d, r], anc_lon[d, r], nla, nlo) > R_p1[r]:
                        # slow but somewhere else: a new stop begins here
                        k = _latch(d, c0, False, t, R_for[r], since, active,
                                   out_dev, out_col, out_ts, out_kind, out_val, k)  # fmt: skip
                if cond and since[d, c0] == no_ts:
                    anc_lat[d, r], anc_lon[d, r] = nla, nlo
                k = _latch(d, c0, cond, t, R_for[r], since, active,
                           out_dev, out_col, out_ts, out_kind, out_val, k)  # fmt: skip
            elif fam == 5 or fam == 6:
                if fam == 5:
                    cond = d_cov[d] >= 0.5 and spd > R_p0[r]
                else:
                    cond = spd > R_p0[r]
                k = _latch(d, c0, cond, t, R_for[r], since, active,
                           out_dev, out_col, out_ts, out_kind, out_val, k)  # fmt: skip
    return i, k


def warm_up() -> None:
    """Compile (or load from the cache) the kernel with the production dtypes."""
    from rules.kernels import readonly

    i64, i32, i8, u8 = np.int64, np.int32, np.int8, np.uint8
    e = np.zeros(0)
    z = np.zeros((1, 1))
    run_vehicles(
        readonly(np.zeros(1, dtype=i64)), readonly(np.zeros(1, dtype=i32)),
        readonly(np.zeros(1, dtype=i8)), readonly(np.zeros(1, dtype=i64)),
        readonly(np.full(1, np.nan)), readonly(np.zeros(1, dtype=i64)), 0, 55.0,
        np.zeros(0, dtype=i8), e, e, e, np.zeros(1, dtype=i64), e, e, e, e, e,
        np.zeros((0, 4)), np.zeros(0, dtype=i64), np.zeros(0, dtype=i64),
        np.zeros(0, dtype=i8), np.zeros(0, dtype=i64), e, e,
        np.zeros(1, dtype=i64), np.zeros(0, dtype=i32), np.zeros(1, dtype=i64),
        np.zeros(0, dtype=i32), np.zeros(0, dtype=i64),
        np.zeros((1, 0), dtype=u8), np.zeros((1, 0), dtype=u8),
        np.full(1, np.iinfo(i64).min), np.zeros(1), np.zeros(1), np.zeros(1, dtype=i64),
        np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1, dtype=i32),
        np.zeros((1, 0), dtype=u8), np.zeros((1, 0), dtype=i64),
        np.zeros((1, 1), dtype=i64), np.zeros((1, 1), dtype=u8), z, z,
        np.zeros(4, dtype=i32), np.zeros(4, dtype=i32), np.zeros(4, dtype=i64),
        np.zeros(4, dtype=i8), np.zeros(4), np.zeros(3, dtype=i64),
    )  # fmt: skip
