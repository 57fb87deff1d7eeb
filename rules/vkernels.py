"""numba kernel of the vehicle rules: assemble fixes, filter jumps, track geofences, latch.

Input rows are sorted by (vehicle, ts, arrival) (:func:`fix_order`); consecutive rows of
one (vehicle, ts) form a *fix* (lat, lon, speed, cover_open; the last non-NaN value of
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
  Only the geofences of the fix's grid cell are measured; the vehicle's pairs (the zones
  it is in, and its static ones) outside them are outside their boxes.
* each rule column latches: the condition holding since ``since`` raises once
  ``t - since >= for``; it clears when the condition stops. Geofence rules, the stop rule
  and the plant detour need a position: without one they are left as they are.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from rules.geo import cell_of, fix_dist
from rules.vsteps import (
    CP,
    P_FREE,
    P_HIGH,
    P_NFREE,
    P_SERIAL,
    P_USED,
    PLANT,
    alloc,
    detour,
    idle,
    latch,
    member,
    nearest,
    unlink,
)

__all__ = ["run_vehicles", "fix_order", "MAX_REJECT", "C_FIXES", "C_LATE", "C_JUMP",
           "P_FREE", "P_HIGH", "P_SERIAL", "P_USED", "P_NFREE", "DONE", "OUT_FULL",
           "PAIRS_FULL"]  # fmt: skip

MAX_REJECT = 3
C_FIXES, C_LATE, C_JUMP = 0, 1, 2
DONE, OUT_FULL, PAIRS_FULL = 0, 1, 2  # why the kernel returned
_NO_TS = np.iinfo(np.int64).min
_DAY = 86_400 * 1_000_000_000


@njit(cache=True, nogil=True, inline="always")
def _in_box(g, lat, lon, bbox):  # pragma: no cover - compiled
    return bbox[g, 0] <= lat <= bbox[g, 1] and bbox[g, 2] <= lon <= bbox[g, 3]


@njit(cache=True, nogil=True, inline="always")
def _moves(since, active, i, j, cond):  # pragma: no cover - compiled
    # whether the latch has anything to do: most calls find it idle or already raised
    if cond:
        return since[i, j] == _NO_TS or active[i, j] == 0
    return since[i, j] != _NO_TS


@njit(cache=True, nogil=True)
def run_vehicles(rows, geo, rul, dst, pst, out, counters, start, max_mps, max_new):  # fmt: skip  # pragma: no cover
    """Process fixes from sorted row ``start``; return (next row, n out, status)."""
    order, dev, fcode, ts, vals, loc = rows
    (g_shape, g_kind, g_lat0, g_lon0, g_cos0, g_ptr, g_vx, g_vy, g_rad, g_cor, g_buf, g_bbox,
     g_hs, g_he, g_clat, g_clon, g_listed, grid, cell_ptr, cell_geo) = geo  # fmt: skip
    fam, for_ns, p0, p1, p2, p3, aux, colmap, dcol, col_k, gf_app, rf_ok, grules = rul
    (d_t, d_lat, d_lon, p_t, p_lat, p_lon, d_spd, d_cov, d_rej, d_fc, d_head, d_np,
     c_t, c_lat, c_lon, u_t, d_since, d_active, anc_lat, anc_lon) = dst  # fmt: skip
    q_dev, q_geo, q_next, q_static, q_in, q_vis, q_since, q_active, pool, seen, slot, cand = pst
    o_kind, o_geo = out[3], out[5]
    n = order.shape[0]
    nr = fam.shape[0]
    cap = out[0].shape[0]
    k = 0
    i = start
    while i < n:
        d = dev[order[i]]
        if k + nr * (d_np[d] + max_new + 2) > cap:
            return i, k, OUT_FULL
        if q_dev.shape[0] - pool[P_HIGH] + pool[P_NFREE] < max_new:
            return i, k, PAIRS_FULL
        r0 = order[i]
        t = ts[r0]
        ln = loc[r0] if loc.shape[0] > 1 else (t + loc[0]) % _DAY  # local ns of the day
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
        if ct != _NO_TS and t < ct:
            counters[C_LATE] += 1
            continue
        nla = la if not np.isnan(la) else d_lat[d]
        nlo = lo if not np.isnan(lo) else d_lon[d]
        if t == ct:
            rt, rla, rlo = p_t[d], p_lat[d], p_lon[d]
        else:
            rt, rla, rlo = ct, d_lat[d], d_lon[d]
        moved = not np.isnan(la) or not np.isnan(lo)
        if moved and rt != _NO_TS and not np.isnan(rla) and not np.isnan(nla) and not np.isnan(nlo):
            if fix_dist(rla, rlo, nla, nlo) > max_mps * ((t - rt) / 1e9):
                if d_rej[d] < MAX_REJECT:
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
        fc = d_fc[d]
        kinds_in = 0
        serial = pool[P_SERIAL]
        if pos:
            serial += 1
            pool[P_SERIAL] = serial
            p = d_head[d]
            while p >= 0:
                g = q_geo[p]
                seen[g], slot[g] = serial, p
                if g_listed[g] != 0:  # listed geofences are not in the grid: measure here
                    cand[g] = serial
                    if _in_box(g, nla, nlo, g_bbox):  # most fixes are not: skip the call
                        q_in[p] = member(g, nla, nlo, q_in[p], g_shape, g_lat0, g_lon0,
                                         g_cos0, g_ptr, g_vx, g_vy, g_rad, g_cor, g_buf,
                                         g_bbox)  # fmt: skip
                    else:
                        q_in[p] = 0
                p = q_next[p]
            cell = cell_of(nla, nlo, grid)
            for j in range(
                cell_ptr[cell] if cell >= 0 else 0, cell_ptr[cell + 1] if cell >= 0 else 0
            ):
                g = cell_geo[j]
                if gf_app[fc, g] == 0:
                    continue
                cand[g] = serial
                has = seen[g] == serial
                new = 0
                if _in_box(g, nla, nlo, g_bbox):
                    new = member(g, nla, nlo, q_in[slot[g]] if has else 0, g_shape, g_lat0,
                                 g_lon0, g_cos0, g_ptr, g_vx, g_vy, g_rad, g_cor, g_buf,
                                 g_bbox)  # fmt: skip
                if new != 0 and not has:
                    slot[g] = alloc(d, g, q_dev, q_geo, q_next, q_static, q_in, q_vis,
                                    q_since, q_active, pool, d_head, d_np)  # fmt: skip
                    seen[g] = serial
                    has = True
                if has:
                    q_in[slot[g]] = new
            p = d_head[d]
            while p >= 0:
                g = q_geo[p]
                if cand[g] != serial:
                    q_in[p] = 0  # outside this cell's geofences: outside its box
                if q_in[p] != 0:
                    q_vis[p] = t
                    kinds_in |= 1 << g_kind[g]
                    if g_kind[g] == CP:
                        c_t[d], c_lat[d], c_lon[d] = t, nla, nlo
                    elif g_kind[g] == PLANT:
                        u_t[d] = t
                p = q_next[p]
        spd = d_spd[d]
        for r in range(nr):
            if rf_ok[fc, r] == 0:
                continue
            f = fam[r]
            if f == 1 or f == 3 or f == 4:
                continue  # geofence columns: below, in one walk over the vehicle's pairs
            c0 = dcol[r]
            k0 = k
            if f == 2:
                if not pos:
                    continue
                cond = spd < p0[r] and (kinds_in & aux[r]) == 0
                if cond and d_since[d, r] != _NO_TS:
                    if fix_dist(anc_lat[d, r], anc_lon[d, r], nla, nlo) > p1[r]:
                        # slow but somewhere else: a new stop begins here
                        k = latch(d_since, d_active, d, r, False, t, for_ns[r], out, k, d, c0,
                                  -1, nla, nlo)  # fmt: skip
                        k0 = k
                if cond and d_since[d, r] == _NO_TS:
                    anc_lat[d, r], anc_lon[d, r] = nla, nlo
                if _moves(d_since, d_active, d, r, cond):
                    k = latch(d_since, d_active, d, r, cond, t, for_ns[r], out, k, d, c0, -1, nla,
                              nlo)  # fmt: skip
                if k > k0 and o_kind[k0] == 1:  # the nearest approved site
                    o_geo[k0] = nearest(aux[r], nla, nlo, False, fc, serial, seen, gf_app,
                                        g_shape, g_kind, g_lat0, g_lon0, g_cos0, g_ptr,
                                        g_vx, g_vy, g_rad, g_cor, g_clat, g_clon, g_listed)  # fmt: skip
            elif f == 5 or f == 6:
                cond = (d_cov[d] >= 0.5 and spd > p0[r]) if f == 5 else spd > p0[r]
                if _moves(d_since, d_active, d, r, cond):
                    k = latch(d_since, d_active, d, r, cond, t, for_ns[r], out, k, d, c0, -1, nla,
                              nlo)  # fmt: skip
            elif f == 8:
                if not pos:
                    continue
                cond = False
                if c_t[d] != _NO_TS and c_t[d] > u_t[d] and (kinds_in & aux[r]) == 0:
                    cond = spd < p0[r] or detour(r, d, nla, nlo, d_head[d], q_geo, q_next, q_vis,
                                                 g_kind, u_t, c_lat, c_lon, p2, p3, fc, serial,
                                                 seen, gf_app, g_clat, g_clon, g_listed)  # fmt: skip
                if _moves(d_since, d_active, d, r, cond):
                    k = latch(d_since, d_active, d, r, cond, t, for_ns[r], out, k, d, c0, -1, nla,
                              nlo)  # fmt: skip
                if k > k0 and o_kind[k0] == 1:  # the plant it should be bound for
                    o_geo[k0] = nearest(1 << PLANT, c_lat[d], c_lon[d], True, fc, serial, seen,
                                        gf_app, g_shape, g_kind, g_lat0, g_lon0, g_cos0, g_ptr,
                                        g_vx, g_vy, g_rad, g_cor, g_clat, g_clon, g_listed)  # fmt: skip
        if not pos:
            continue
        prev, p = -1, d_head[d]
        while p >= 0:
            nx, g, ins = q_next[p], q_geo[p], q_in[p] != 0
            for r in grules:
                c = colmap[r, g]
                if c < 0 or rf_ok[fc, r] == 0:
                    continue
                f = fam[r]
                if f == 1:
                    cond = ins
                elif f == 3:
                    cond = not ins and (kinds_in & aux[r]) == 0  # outside, and not exempt
                else:
                    hs, he = g_hs[g], g_he[g]
                    if hs < 0:
                        hours = True
                    elif hs <= he:
                        hours = hs <= ln and ln < he
                    else:
                        hours = ln >= hs or ln < he
                    cond = ins and hours
                if _moves(q_since, q_active, p, col_k[c], cond):
                    k = latch(q_since, q_active, p, col_k[c], cond, t, for_ns[r], out, k, d, c, g,
                              nla, nlo)  # fmt: skip
            if q_static[p] == 0 and not ins and idle(p, q_static, q_in, q_since):  # left it
                unlink(d, p, prev, nx, q_dev, q_next, pool, d_head, d_np)
            else:
                prev = p
            p = nx
    return i, k, DONE


@njit(cache=True, nogil=True)
def fix_order(dev, ts, n_dev):  # pragma: no cover - compiled
    """Rows by vehicle, in arrival order within one (a stable counting sort); and whether
    that is also time order (else the caller sorts by (vehicle, ts))."""
    n = dev.shape[0]
    cnt = np.zeros(n_dev + 1, dtype=np.int64)
    for i in range(n):
        cnt[dev[i] + 1] += 1
    for j in range(n_dev):
        cnt[j + 1] += cnt[j]
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        order[cnt[dev[i]]] = i
        cnt[dev[i]] += 1
    for j in range(1, n):
        a, b = order[j - 1], order[j]
        if dev[a] == dev[b] and ts[b] < ts[a]:
            return order, False
    return order, True
