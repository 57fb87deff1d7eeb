"""The vehicle engine's state as struct-of-arrays: per vehicle, and per (vehicle, geofence)
pair in a pool, growable and snapshotted by names (vehicle, geofence and rule ids).

Pairs of a vehicle form a chain (``d_head``/``q_next``); free pairs another
(``pool[P_FREE]``). A pair holds the vehicle's membership of one geofence (inside, last
time inside) and the latch state of that geofence's columns (``q_since[p, col_k]``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from rules import vkernels as V
from rules.kernels import NO_TS
from rules.vcompile import VehicleArrays, VehicleIndex

__all__ = ["VehicleState"]

_DEV = ("d_t", "d_lat", "d_lon", "p_t", "p_lat", "p_lon", "d_spd", "d_cov", "d_rej",
        "c_t", "c_lat", "c_lon", "u_t")  # fmt: skip
_DEV_TYPES = {"d_t": np.int64, "p_t": np.int64, "c_t": np.int64, "u_t": np.int64,
              "d_rej": np.int32}  # fmt: skip
_RULE = ("d_since", "d_active", "anc_lat", "anc_lon")
_PAIR = ("q_dev", "q_geo", "q_next", "q_static", "q_in", "q_vis", "q_since", "q_active")


def _fill(name: str) -> float | int:
    if name in ("d_t", "p_t", "c_t", "u_t", "d_since", "q_vis", "q_since"):
        return NO_TS
    if name in ("d_rej", "d_active", "q_static", "q_in", "q_active", "d_np"):
        return 0
    if name in ("d_head", "q_next", "q_dev", "q_geo"):
        return -1
    return np.nan


class VehicleState:
    """Per-vehicle arrays (``d_*``, ``[vehicle, rule]`` ones) and the pair pool (``q_*``)."""

    def __init__(self, arr: VehicleArrays, index: VehicleIndex, pairs: int = 1024):
        self.arr, self.index = arr, index
        nr, ng, nk = len(arr.fam), len(index.geofences), arr.n_k
        for n in _DEV:
            setattr(self, n, np.zeros(0, dtype=_DEV_TYPES.get(n, np.float64)))
        self.d_fc = np.zeros(0, dtype=np.int32)
        self.d_head = np.zeros(0, dtype=np.int32)
        self.d_np = np.zeros(0, dtype=np.int64)
        self.d_since = np.zeros((0, nr), dtype=np.int64)
        self.d_active = np.zeros((0, nr), dtype=np.uint8)
        self.anc_lat, self.anc_lon = np.zeros((0, nr)), np.zeros((0, nr))
        self.q_dev = np.full(pairs, -1, dtype=np.int32)
        self.q_geo = np.full(pairs, -1, dtype=np.int32)
        self.q_next = np.full(pairs, -1, dtype=np.int32)
        self.q_static = np.zeros(pairs, dtype=np.uint8)
        self.q_in = np.zeros(pairs, dtype=np.uint8)
        self.q_vis = np.full(pairs, NO_TS, dtype=np.int64)
        self.q_since = np.full((pairs, nk), NO_TS, dtype=np.int64)
        self.q_active = np.zeros((pairs, nk), dtype=np.uint8)
        self.pool = np.array([-1, 0, 0, 0, 0], dtype=np.int64)
        self.seen = np.zeros(ng, dtype=np.int64)
        self.slot = np.zeros(ng, dtype=np.int32)
        self.cand = np.zeros(ng, dtype=np.int64)

    @property
    def n_dev(self) -> int:
        """Vehicles with state."""
        return len(self.d_t)

    def dev_arrays(self) -> tuple:
        """The kernel's per-vehicle tuple."""
        return (self.d_t, self.d_lat, self.d_lon, self.p_t, self.p_lat, self.p_lon, self.d_spd,
                self.d_cov, self.d_rej, self.d_fc, self.d_head, self.d_np, self.c_t,
                self.c_lat, self.c_lon, self.u_t, self.d_since, self.d_active,
                self.anc_lat, self.anc_lon)  # fmt: skip

    def pair_arrays(self) -> tuple:
        """The kernel's pair tuple (pool and scratch included)."""
        return (*(getattr(self, n) for n in _PAIR), self.pool, self.seen, self.slot, self.cand)

    def grow(self) -> None:
        """Extend per-vehicle state to the index's vehicles and create their static pairs."""
        n = self.index.n_dev
        extra = n - self.n_dev
        if extra > 0:

            def ext(a: np.ndarray, fill: float | int) -> np.ndarray:
                return np.concatenate([a, np.full((extra,) + a.shape[1:], fill, dtype=a.dtype)])

            for name in (*_DEV, *_RULE, "d_head", "d_np"):
                setattr(self, name, ext(getattr(self, name), _fill(name)))
            self.d_fc = np.asarray(self.index.fleet_code, dtype=np.int32)
        if self.index.pending:
            pend, self.index.pending = np.array(self.index.pending), []
            self._static_pairs(pend[:, 0], pend[:, 1])

    def _static_pairs(self, d: np.ndarray, g: np.ndarray) -> None:
        """Chain static pairs of new vehicles (grouped by vehicle) from the pool's tail."""
        m, high = len(d), int(self.pool[V.P_HIGH])
        new = len(self.q_dev)
        while new - high < m:  # room past the tail (the free list is scattered)
            new *= 2
        self._resize(new)
        p = np.arange(high, high + m, dtype=np.int32)
        self.q_dev[p], self.q_geo[p], self.q_static[p], self.q_in[p] = d, g, 1, 0
        self.q_vis[p] = NO_TS
        self.q_since[p] = NO_TS
        self.q_active[p] = 0
        last = np.append(d[1:] != d[:-1], True)  # the last pair of each vehicle's run
        nxt = np.append(p[1:], -1)
        nxt[last] = self.d_head[d[last]]
        self.q_next[p] = nxt
        first = np.append(True, last[:-1])
        self.d_head[d[first]] = p[first]
        np.add.at(self.d_np, d, 1)
        self.pool[V.P_HIGH] += m
        self.pool[V.P_USED] += m

    def free_pairs(self) -> int:
        """Pairs that can be handed out without growing."""
        return len(self.q_dev) - int(self.pool[V.P_HIGH]) + int(self.pool[V.P_NFREE])

    def grow_pairs(self, need: int) -> None:
        """Make room for at least ``need`` more pairs (doubling)."""
        cap = new = len(self.q_dev)
        while new - cap + self.free_pairs() < need:
            new *= 2
        self._resize(new)

    def _resize(self, new: int) -> None:
        cap = len(self.q_dev)
        if new == cap:
            return
        for name in _PAIR:
            a = getattr(self, name)
            b = np.full((new,) + a.shape[1:], _fill(name), dtype=a.dtype)
            b[:cap] = a
            setattr(self, name, b)

    def pair(self, d: int, g: int) -> int:
        """The pair (vehicle d, geofence g), created (at the chain's head) when missing."""
        p = int(self.d_head[d])
        while p >= 0:
            if self.q_geo[p] == g:
                return p
            p = int(self.q_next[p])
        if self.free_pairs() < 1:
            self.grow_pairs(1)
        pool = self.pool
        if pool[V.P_FREE] >= 0:
            p = int(pool[V.P_FREE])
            pool[V.P_FREE] = self.q_next[p]
            pool[V.P_NFREE] -= 1
        else:
            p = int(pool[V.P_HIGH])
            pool[V.P_HIGH] += 1
        self.q_dev[p], self.q_geo[p], self.q_static[p], self.q_in[p] = d, g, False, 0
        self.q_vis[p] = NO_TS
        self.q_since[p] = NO_TS
        self.q_active[p] = 0
        self.q_next[p] = self.d_head[d]
        self.d_head[d] = p
        self.d_np[d] += 1
        pool[V.P_USED] += 1
        return p

    def used(self) -> np.ndarray:
        """Indices of the pairs in use."""
        return np.flatnonzero(self.q_dev[: int(self.pool[V.P_HIGH])] >= 0)

    def state(self, rule_ids: list[str]) -> dict[str, np.ndarray]:
        """Everything keyed by names, for a snapshot."""
        self.grow()
        ids = self.index.geo.ids
        u = self.used()
        geo = self.q_geo[u]
        cp, ck = np.nonzero(self.q_since[u] != NO_TS)  # latched geofence columns
        rule = self.arr.k_rule[geo[cp], ck]
        return {
            "v_dev": np.array(self.index.dev_ids, dtype=str),
            "v_rule": np.array(rule_ids, dtype=str),
            **{f"v_{n}": getattr(self, n) for n in (*_DEV, *_RULE)},
            "v_q_dev": self.q_dev[u].astype(np.int64),
            "v_q_geo": np.array([ids[g] for g in geo.tolist()], dtype=str),
            "v_q_in": self.q_in[u],
            "v_q_vis": self.q_vis[u],
            "v_c_pair": cp.astype(np.int64),
            "v_c_rule": np.array([rule_ids[r] for r in rule.tolist()], dtype=str),
            "v_c_since": self.q_since[u][cp, ck],
            "v_c_active": self.q_active[u][cp, ck],
        }

    def load_state(self, z: Mapping[str, np.ndarray], rule_ids: list[str]) -> None:
        """Restore what :meth:`state` saved, matching vehicles, geofences and rules by id."""
        if "v_col" in z:
            z = _from_dense(z)
        devs = np.array([self.index.device(d) for d in z["v_dev"].tolist()], dtype=np.int64)
        self.grow()
        for n in _DEV:
            getattr(self, n)[devs] = z[f"v_{n}"]
        r_new = {r: i for i, r in enumerate(rule_ids)}
        pairs = [(j, r_new[r]) for j, r in enumerate(z["v_rule"].tolist()) if r in r_new]
        if pairs:
            src, dst = (np.asarray(x) for x in zip(*pairs))
            for n in _RULE:
                getattr(self, n)[np.ix_(devs, dst)] = z[f"v_{n}"][:, src]
        g_new = {g: i for i, g in enumerate(self.index.geo.ids)}
        slots = []
        for d, gid, ins, vis in zip(z["v_q_dev"].tolist(), z["v_q_geo"].tolist(),
                                    z["v_q_in"].tolist(), z["v_q_vis"].tolist()):  # fmt: skip
            g = g_new.get(gid)
            if g is None or not self._applies(int(devs[d]), g):
                slots.append(-1)
                continue
            p = self.pair(int(devs[d]), g)
            self.q_in[p], self.q_vis[p] = ins, vis
            slots.append(p)
        for j, rid, since, act in zip(z["v_c_pair"].tolist(), z["v_c_rule"].tolist(),
                                      z["v_c_since"].tolist(), z["v_c_active"].tolist()):  # fmt: skip
            p, r = slots[j], r_new.get(rid)
            if p < 0 or r is None or self.arr.colmap[r, self.q_geo[p]] < 0:
                continue
            k = int(self.arr.col_k[self.arr.colmap[r, self.q_geo[p]]])
            self.q_since[p, k], self.q_active[p, k] = since, act

    def _applies(self, d: int, g: int) -> bool:
        if self.index.geo.listed[g]:
            return self.index.geofences[g].vehicles.count(self.index.dev_ids[d]) > 0
        return bool(self.arr.gf_app[self.d_fc[d], g])


def _from_dense(z: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A snapshot of the dense [vehicle, geofence] / [vehicle, column] layout, as pairs."""
    n = len(z["v_dev"])
    rules = z["v_rule"].tolist()
    out = {k: v for k, v in z.items() if k in ("v_dev", "v_rule")}
    out.update({f"v_{k}": z[f"v_{k}"] for k in _DEV if f"v_{k}" in z})
    for k in ("c_t", "u_t"):
        out[f"v_{k}"] = np.full(n, NO_TS, dtype=np.int64)
    out["v_c_lat"], out["v_c_lon"] = np.full(n, np.nan), np.full(n, np.nan)
    out["v_anc_lat"], out["v_anc_lon"] = z["v_anc_lat"], z["v_anc_lon"]
    out["v_d_since"] = np.full((n, len(rules)), NO_TS, dtype=np.int64)
    out["v_d_active"] = np.zeros((n, len(rules)), dtype=np.uint8)
    ii, jj = np.nonzero((z["v_inside"] != 0) | (z["v_vis"] != NO_TS))
    geo = z["v_geo"].tolist()
    pairs = {(int(i), geo[j]): k for k, (i, j) in enumerate(zip(ii.tolist(), jj.tolist()))}
    q_in = z["v_inside"][ii, jj].astype(np.int64).tolist()
    q_vis = z["v_vis"][ii, jj].tolist()
    c_pair, c_rule, c_since, c_act = [], [], [], []
    for i, c in zip(*np.nonzero(z["v_since"] != NO_TS)):
        rid, _, gid = str(z["v_col"][c]).partition("\x1f")
        since, act = int(z["v_since"][i, c]), int(z["v_active"][i, c])
        if not gid:
            r = rules.index(rid)
            out["v_d_since"][i, r], out["v_d_active"][i, r] = since, act
            continue
        if (int(i), gid) not in pairs:
            pairs[(int(i), gid)] = len(pairs)
            q_in.append(0)
            q_vis.append(NO_TS)
        c_pair.append(pairs[(int(i), gid)])
        c_rule.append(rid)
        c_since.append(since)
        c_act.append(act)
    keys = list(pairs)
    out.update(v_q_dev=np.array([d for d, _ in keys], dtype=np.int64),
               v_q_geo=np.array([g for _, g in keys], dtype=str),
               v_q_in=np.array(q_in, dtype=np.uint8), v_q_vis=np.array(q_vis, dtype=np.int64),
               v_c_pair=np.array(c_pair, dtype=np.int64), v_c_rule=np.array(c_rule, dtype=str),
               v_c_since=np.array(c_since, dtype=np.int64),
               v_c_active=np.array(c_act, dtype=np.uint8))  # fmt: skip
    return out
