"""The vehicle-rule engine: maps rows to (vehicle, fix field), sorts them into fixes in
event time per vehicle, runs :mod:`rules.vkernels`, and checks collection visits on tick."""

from __future__ import annotations

from collections.abc import Mapping
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from contracts.config import DeviceConfig
from contracts.geofence import GeofenceConfig
from contracts.rule_config import VehicleRuleConfig
from rules import kernels as K
from rules import vkernels as V
from rules.families import local_ns
from rules.transition import Transition
from rules.vcompile import VehicleIndex, compile_vehicles

__all__ = ["VehicleEngine", "DEFAULT_MAX_JUMP_KMH"]

DEFAULT_MAX_JUMP_KMH = 200.0
_DAY = 86_400 * 1_000_000_000
_DEV = ("d_t", "d_lat", "d_lon", "p_t", "p_lat", "p_lon", "d_spd", "d_cov", "d_rej")
_MAT = ("inside", "vis", "since", "active", "anc_lat", "anc_lon")
_FILL = {"d_t": K.NO_TS, "p_t": K.NO_TS, "d_rej": 0}


class VehicleEngine:
    """Vehicle rules (geofence, stop, route, banned_zone, cover_moving, fleet_speed,
    collection_miss) over telemetry frames, with state per vehicle carried across batches."""

    def __init__(
        self,
        rules: list[VehicleRuleConfig],
        geofences: list[GeofenceConfig] | None = None,
        devices: Mapping[str, DeviceConfig] | None = None,
        tz: ZoneInfo | None = None,
        out_capacity: int = 1024,
        max_jump_kmh: float = DEFAULT_MAX_JUMP_KMH,
    ):
        self.rules = list(rules)
        self.geofences = list(geofences or [])
        self.tz = tz or ZoneInfo("Asia/Shanghai")
        self.max_mps = max_jump_kmh / 3.6
        self.arr = compile_vehicles(self.rules, self.geofences)
        self.index = VehicleIndex(self.rules, self.geofences, devices)
        self._need_loc = any(r.family == "banned_zone" for r in self.rules)
        self.n_col = len(self.arr.col_rule)
        ng, nr = len(self.geofences), len(self.rules)
        self.d_t = np.zeros(0, dtype=np.int64)
        self.d_lat, self.d_lon = np.zeros(0), np.zeros(0)
        self.p_t = np.zeros(0, dtype=np.int64)
        self.p_lat, self.p_lon = np.zeros(0), np.zeros(0)
        self.d_spd, self.d_cov = np.zeros(0), np.zeros(0)
        self.d_rej = np.zeros(0, dtype=np.int32)
        self.inside = np.zeros((0, ng), dtype=np.uint8)
        self.vis = np.zeros((0, ng), dtype=np.int64)
        self.since = np.zeros((0, self.n_col), dtype=np.int64)
        self.active = np.zeros((0, self.n_col), dtype=np.uint8)
        self.anc_lat, self.anc_lon = np.zeros((0, nr)), np.zeros((0, nr))
        self._missed: dict[tuple[int, int], int] = {}  # (dev, col) -> local day raised
        self._alloc(max(16, out_capacity, self.n_col + 1))
        self.counters = np.zeros(3, dtype=np.int64)
        if self.rules:
            V.warm_up()
            self.index._ids.warm_up()

    def _alloc(self, cap: int) -> None:
        self._cap = cap
        self._o = (np.zeros(cap, dtype=np.int32), np.zeros(cap, dtype=np.int32),
                   np.zeros(cap, dtype=np.int64), np.zeros(cap, dtype=np.int8), np.zeros(cap))  # fmt: skip

    def grow(self) -> None:
        """Extend per-vehicle state to the number of known vehicles."""
        n = self.index.n_dev
        if n <= len(self.d_t):
            return
        extra = n - len(self.d_t)

        def ext(a: np.ndarray, fill: float | int) -> np.ndarray:
            return np.concatenate([a, np.full((extra,) + a.shape[1:], fill, dtype=a.dtype)])

        for name in _DEV:
            setattr(self, name, ext(getattr(self, name), _FILL.get(name, np.nan)))
        self.inside = ext(self.inside, 0)
        self.vis = ext(self.vis, K.NO_TS)
        self.since = ext(self.since, K.NO_TS)
        self.active = ext(self.active, 0)
        self.anc_lat = ext(self.anc_lat, np.nan)
        self.anc_lon = ext(self.anc_lon, np.nan)

    def process(self, frame: pl.DataFrame, hashes: np.ndarray | None = None) -> list[Transition]:
        """Evaluate the vehicle rules on a batch; return the transitions."""
        if frame.height == 0 or not self.rules:
            return []
        sids = self.index.lookup(frame, hashes)
        rows = np.flatnonzero(sids >= 0)
        if len(rows) == 0:
            return []
        self.grow()
        ser_dev, ser_field = self.index.series_arrays()
        s = sids[rows]
        dev = ser_dev[s]
        fcode = ser_field[s]
        ts = frame.get_column("ts").cast(pl.Int64).to_numpy()[rows]
        vals = frame.get_column("value").cast(pl.Float64).to_numpy()[rows]
        order = np.lexsort((ts, dev))  # stable: rows of one (vehicle, ts) keep arrival order
        loc = local_ns(ts, self.tz)[0] if self._need_loc else np.zeros(1, dtype=np.int64)
        return self.run_arrays(order, dev, fcode, ts, vals, loc)

    def run_arrays(self, order, dev, fcode, ts, vals, loc) -> list[Transition]:  # type: ignore[no-untyped-def]
        """Run the kernel over mapped rows and their (vehicle, ts) sort order."""
        g, a, ix = self.index.geo, self.arr, self.index
        ro = K.readonly
        args = (ro(np.ascontiguousarray(order, dtype=np.int64)), ro(dev), ro(fcode),
                ro(np.ascontiguousarray(ts)), ro(np.ascontiguousarray(vals)),
                ro(np.ascontiguousarray(loc, dtype=np.int64)))  # fmt: skip
        out: list[Transition] = []
        start = 0
        while True:
            nxt, k = V.run_vehicles(
                *args, start, self.max_mps,
                g.shape, g.lat0, g.lon0, g.cos0, g.ptr, g.vx, g.vy, g.radius, g.corridor,
                g.buffer, g.bbox, g.h_start, g.h_end,
                a.fam, a.for_ns, a.p0, a.p1, a.tg_ptr, a.tg_geo, a.ax_ptr, a.ax_geo, a.col_base,
                ix.app, ix.rule_ok,
                self.d_t, self.d_lat, self.d_lon, self.p_t, self.p_lat, self.p_lon,
                self.d_spd, self.d_cov, self.d_rej,
                self.inside, self.vis, self.since, self.active, self.anc_lat, self.anc_lon,
                *self._o, self.counters,
            )  # fmt: skip
            out.extend(self._transitions(k))
            if nxt >= len(order):
                return out
            start = nxt

    def _transitions(self, k: int) -> list[Transition]:
        o_dev, o_col, o_ts, o_kind, o_val = (x[:k].tolist() for x in self._o)
        return [
            self._transition(d, c, t, "raise" if kind == 1 else "clear", v)
            for d, c, t, kind, v in zip(o_dev, o_col, o_ts, o_kind, o_val)
        ]

    def _transition(self, d: int, c: int, t: int, kind: str, v: float) -> Transition:
        rule = self.rules[int(self.arr.col_rule[c])]
        dev = self.index.dev_ids[d]
        g = int(self.arr.col_geo[c])
        gid = self.index.geo.ids[g] if g >= 0 else ""
        subject = f"{dev}/{gid}" if gid else dev
        return Transition(rule.id, dev, subject, gid, kind, t, v, float(rule.for_s))  # type: ignore[arg-type]

    def tick(self, now_ns: int) -> list[Transition]:
        """Raise collection_miss columns whose point was not visited in today's hours by
        their end (once per local day); a later visit clears them (see :meth:`_visits`)."""
        cols = np.flatnonzero(self.arr.fam[self.arr.col_rule] == 7) if self.n_col else []
        if len(cols) == 0 or self.index.n_dev == 0:
            return []
        self.grow()
        loc_a, day_a = local_ns(np.array([now_ns], dtype=np.int64), self.tz)
        loc, day = int(loc_a[0]), int(day_a[0])
        out = self._visits(cols)
        g_hs, g_he = self.index.geo.h_start, self.index.geo.h_end
        for c in cols.tolist():
            g = int(self.arr.col_geo[c])
            r = int(self.arr.col_rule[c])
            hs, he = int(g_hs[g]), int(g_he[g])
            if hs < 0 or loc < he:
                continue  # no hours, or today's window not over yet
            start_utc = now_ns - loc + hs  # today's window start, in UTC ns
            for d in np.flatnonzero(self.index.app[:, g] & self.index.rule_ok[:, r]).tolist():
                if self._missed.get((d, c)) == day or self.vis[d, g] >= start_utc:
                    continue
                self._missed[(d, c)] = day
                if self.active[d, c] == 0:
                    self.active[d, c] = 1
                    self.since[d, c] = now_ns  # a visit after this clears it
                    out.append(self._transition(d, c, now_ns, "raise", (now_ns - start_utc) / 1e9))
        return out

    def _visits(self, cols: np.ndarray) -> list[Transition]:
        out = []
        for c in cols.tolist():
            g = int(self.arr.col_geo[c])
            for d in np.flatnonzero(self.active[:, c]).tolist():
                if self.vis[d, g] > self.since[d, c]:
                    self.active[d, c] = 0
                    out.append(self._transition(d, c, int(self.vis[d, g]), "clear", 0.0))
                    self.since[d, c] = K.NO_TS
        return out

    def state(self) -> dict[str, np.ndarray]:
        """Per-vehicle state keyed by names (vehicle, geofence, rule ids) for a snapshot."""
        self.grow()
        return {
            "v_dev": np.array(self.index.dev_ids, dtype=str),
            "v_geo": np.array(self.index.geo.ids, dtype=str),
            "v_rule": np.array([r.id for r in self.rules], dtype=str),
            "v_col": np.array(self.state_cols(), dtype=str),
            **{f"v_{n}": getattr(self, n) for n in _DEV},
            **{f"v_{n}": getattr(self, n) for n in _MAT},
        }

    def load_state(self, z: Mapping[str, np.ndarray]) -> None:
        """Restore what :meth:`state` saved, matching vehicles, geofences and rules by id."""
        if "v_dev" not in z or not self.rules:
            return
        devs = [self.index.device(d) for d in z["v_dev"].tolist()]
        self.grow()
        di = np.asarray(devs, dtype=np.int64)
        for n in _DEV:
            getattr(self, n)[di] = z[f"v_{n}"]
        axes = {
            "v_geo": {g: i for i, g in enumerate(self.index.geo.ids)},
            "v_rule": {r.id: i for i, r in enumerate(self.rules)},
            "v_col": {k: i for i, k in enumerate(self.state_cols())},
        }
        for n, axis in (("inside", "v_geo"), ("vis", "v_geo"), ("since", "v_col"),
                        ("active", "v_col"), ("anc_lat", "v_rule"), ("anc_lon", "v_rule")):  # fmt: skip
            old = z[axis].tolist()
            pairs = [(j, axes[axis][k]) for j, k in enumerate(old) if k in axes[axis]]
            if pairs:
                src, dst = (np.asarray(x) for x in zip(*pairs))
                getattr(self, n)[np.ix_(di, dst)] = z[f"v_{n}"][:, src]

    def state_cols(self) -> list[str]:
        """Column keys "rule\x1fgeofence" in column order."""
        return [f"{self.rules[int(r)].id}\x1f{self.index.geo.ids[g] if g >= 0 else ''}"
                for r, g in zip(self.arr.col_rule.tolist(), self.arr.col_geo.tolist())]  # fmt: skip

    def stats(self) -> dict[str, int]:
        """Fixes evaluated, late fixes skipped, jumps dropped, vehicles, active subjects."""
        c = self.counters
        return {"fixes": int(c[V.C_FIXES]), "late_fixes": int(c[V.C_LATE]),
                "jumps": int(c[V.C_JUMP]), "vehicles": self.index.n_dev,
                "active": int(self.active.sum())}  # fmt: skip
