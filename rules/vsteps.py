"""Steps of the vehicle kernel (:mod:`rules.vkernels`), compiled on their own: the latch,
geofence membership, the pair pool, the nearest geofence and the plant corridor."""

from __future__ import annotations

import numpy as np
from numba import njit

from contracts.geofence import GEOFENCE_KINDS
from rules.geo import fix_dist, signed_dist

__all__ = ["latch", "applies", "nearest", "detour", "member", "alloc", "idle", "unlink", "CP", "PLANT",
           "P_FREE", "P_HIGH", "P_SERIAL", "P_USED", "P_NFREE"]  # fmt: skip

P_FREE, P_HIGH, P_SERIAL, P_USED, P_NFREE = 0, 1, 2, 3, 4  # slots of the pair pool
CP = GEOFENCE_KINDS.index("collection_point")
PLANT = GEOFENCE_KINDS.index("treatment_plant")
_NO_TS = np.iinfo(np.int64).min


# one signature for every call site (ints widen to int64): compiled once, not per variant
_OUT = "Tuple((int32[::1], int32[::1], int64[::1], int8[::1], float64[::1], int32[::1], float64[::1], float64[::1]))"  # noqa: E501
_LATCH = f"int64(int64[:, ::1], uint8[:, ::1], int64, int64, boolean, int64, int64, {_OUT}, int64, int64, int64, int64, float64, float64)"  # noqa: E501
_MEMBER = "int64(int64, float64, float64, int64, int8[::1], float64[::1], float64[::1], float64[::1], int64[::1], float64[::1], float64[::1], float64[::1], float64[::1], float64[::1], float64[:, ::1])"  # noqa: E501


@njit(_LATCH, cache=True, nogil=True)
def latch(since, active, i, j, cond, t, for_ns, out, k, d, c, g, lat, lon):  # fmt: skip  # pragma: no cover
    """Latch ``since[i, j]`` / ``active[i, j]`` on ``cond``; write a raise or clear at ``k``."""
    o_dev, o_col, o_ts, o_kind, o_val, o_geo, o_lat, o_lon = out
    kind = -1
    if cond:
        if since[i, j] == _NO_TS:
            since[i, j] = t
        if active[i, j] == 0 and t - since[i, j] >= for_ns:
            active[i, j] = 1
            kind = 1
    elif since[i, j] != _NO_TS:
        if active[i, j] != 0:
            active[i, j] = 0
            kind = 0
    if kind >= 0:
        o_dev[k], o_col[k], o_ts[k], o_kind[k], o_geo[k] = d, c, t, kind, g
        o_val[k], o_lat[k], o_lon[k] = (t - since[i, j]) / 1e9, lat, lon
        k += 1
    if not cond and since[i, j] != _NO_TS:
        since[i, j] = _NO_TS
    return k


@njit(cache=True, nogil=True)
def applies(g, fc, serial, seen, listed, gf_app):  # pragma: no cover - compiled
    """Whether geofence g applies to the vehicle: a listed one through its static pair (seen
    in this fix's chain walk), any other by the vehicle's fleet code."""
    return seen[g] == serial if listed[g] != 0 else gf_app[fc, g] != 0


@njit(cache=True, nogil=True)
def nearest(mask, lat, lon, plant, fc, serial, seen, gf_app, g_shape, g_kind, g_lat0, g_lon0,
            g_cos0, g_ptr, g_vx, g_vy, g_rad, g_cor, g_clat, g_clon, g_listed):  # fmt: skip  # pragma: no cover
    """The applicable geofence of a kind in ``mask`` nearest to (lat, lon): by signed
    distance, or for ``plant`` by distance from its centre; -1 if none."""
    best, arg = np.inf, -1
    for g in range(g_kind.shape[0]):
        if (mask >> g_kind[g]) & 1 == 0 or not applies(g, fc, serial, seen, g_listed, gf_app):
            continue
        if plant:
            x = fix_dist(lat, lon, g_clat[g], g_clon[g])
        else:
            x = signed_dist(g, lat, lon, g_shape, g_lat0, g_lon0, g_cos0, g_ptr, g_vx, g_vy,
                            g_rad, g_cor)  # fmt: skip
        if x < best:
            best, arg = x, g
    return arg


@njit(cache=True, nogil=True)
def detour(r, d, lat, lon, head, q_geo, q_next, q_vis, g_kind, u_t, c_lat, c_lon, p2, p3,
           fc, serial, seen, gf_app, g_clat, g_clon, g_listed):  # fmt: skip  # pragma: no cover
    """Bound for the plant (every collection point visited since the last unloading) and
    outside the corridor (ellipse round the last collection point and each plant)."""
    p = head
    while p >= 0:
        if g_kind[q_geo[p]] == CP and q_vis[p] <= u_t[d]:
            return False
        p = q_next[p]
    a_lat, a_lon = c_lat[d], c_lon[d]
    n = 0
    for g in range(g_kind.shape[0]):
        if g_kind[g] != PLANT or not applies(g, fc, serial, seen, g_listed, gf_app):
            continue
        n += 1
        via = fix_dist(a_lat, a_lon, lat, lon) + fix_dist(g_clat[g], g_clon[g], lat, lon)
        if via <= p2[r] * fix_dist(a_lat, a_lon, g_clat[g], g_clon[g]) + p3[r]:
            return False
    return n > 0


@njit(_MEMBER, cache=True, nogil=True)
def member(g, lat, lon, old, g_shape, g_lat0, g_lon0, g_cos0, g_ptr, g_vx, g_vy, g_rad, g_cor,
           g_buf, g_bbox):  # fmt: skip  # pragma: no cover
    """Inside (1) or outside (0) geofence g after a fix, with the buffer's hysteresis."""
    if lat < g_bbox[g, 0] or lat > g_bbox[g, 1] or lon < g_bbox[g, 2] or lon > g_bbox[g, 3]:
        return 0
    sd = signed_dist(g, lat, lon, g_shape, g_lat0, g_lon0, g_cos0, g_ptr, g_vx, g_vy, g_rad, g_cor)
    if sd < -g_buf[g]:
        return 1
    if sd > g_buf[g]:
        return 0
    return old


@njit(cache=True, nogil=True)
def alloc(d, g, q_dev, q_geo, q_next, q_static, q_in, q_vis, q_since, q_active, pool, d_head,
          d_np):  # fmt: skip  # pragma: no cover
    """A fresh dynamic pair (vehicle d, geofence g) at the head of d's chain."""
    p = pool[P_FREE]
    if p >= 0:
        pool[P_FREE] = q_next[p]
        pool[P_NFREE] -= 1
    else:
        p = pool[P_HIGH]
        pool[P_HIGH] += 1
    q_dev[p], q_geo[p], q_static[p], q_in[p], q_vis[p] = d, g, 0, 0, _NO_TS
    q_since[p, :] = _NO_TS
    q_active[p, :] = 0
    q_next[p] = d_head[d]
    d_head[d] = p
    d_np[d] += 1
    pool[P_USED] += 1
    return p


@njit(cache=True, nogil=True)
def idle(p, q_static, q_in, q_since):  # pragma: no cover - compiled
    """A dynamic pair of a zone the vehicle is not in, with no latched column."""
    if q_static[p] != 0 or q_in[p] != 0:
        return False
    for j in range(q_since.shape[1]):
        if q_since[p, j] != _NO_TS:
            return False
    return True


@njit(cache=True, nogil=True)
def unlink(d, p, prev, nx, q_dev, q_next, pool, d_head, d_np):  # pragma: no cover - compiled
    """Take pair p (after ``prev``, before ``nx`` in d's chain) back to the free list."""
    if prev < 0:
        d_head[d] = nx
    else:
        q_next[prev] = nx
    q_dev[p] = -1
    q_next[p] = pool[P_FREE]
    pool[P_FREE] = p
    pool[P_NFREE] += 1
    pool[P_USED] -= 1
    d_np[d] -= 1
