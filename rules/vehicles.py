"""The vehicle-rule engine: maps rows to (vehicle, fix field), sorts them into fixes in
event time per vehicle, runs :mod:`rules.vkernels`, and checks collection visits on tick."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
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
from rules.vcompile import VEHICLE_CODE, VehicleIndex, compile_vehicles
from rules.vstate import VehicleState

__all__ = ["VehicleEngine", "DEFAULT_MAX_JUMP_KMH"]

DEFAULT_MAX_JUMP_KMH = 200.0
_COLLECTION = VEHICLE_CODE["collection_miss"]
_PER_GEOFENCE = [VEHICLE_CODE[f] for f in ("geofence", "route", "banned_zone")]  # in the kernel


class VehicleEngine:
    """Vehicle rules (geofence, stop, route, banned_zone, cover_moving, fleet_speed,
    collection_miss, plant_detour) over telemetry frames, with state per vehicle carried
    across batches."""

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
        self.arr = a = compile_vehicles(self.rules, self.geofences)
        self.index = VehicleIndex(self.rules, self.geofences, a, devices)
        self.st = VehicleState(a, self.index)
        self._need_loc = any(r.family == "banned_zone" for r in self.rules)
        self.n_col = len(a.col_rule)
        g = self.index.geo
        self._geo = (g.shape, g.kind, g.lat0, g.lon0, g.cos0, g.ptr, g.vx, g.vy, g.radius,
                     g.corridor, g.buffer, g.bbox, g.h_start, g.h_end, g.c_lat, g.c_lon,
                     g.listed, g.grid, g.cell_ptr, g.cell_geo)  # fmt: skip
        grules = np.flatnonzero(np.isin(a.fam, _PER_GEOFENCE)).astype(np.int64)
        self._rul = (a.fam, a.for_ns, a.p0, a.p1, a.p2, a.p3, a.aux, a.colmap, a.dcol, a.col_k,
                     a.gf_app, a.rf_ok, grules)  # fmt: skip
        # per column, what its transitions carry
        self._c_rule = [self.rules[r].id for r in a.col_rule.tolist()]
        self._c_for = [float(self.rules[r].for_s) for r in a.col_rule.tolist()]
        self._c_gid = [g.ids[j] if j >= 0 else "" for j in a.col_geo.tolist()]
        self._missed: dict[tuple[int, int], int] = {}  # (vehicle, column) -> local day raised
        # the oldest row seen since start: hours that began before it are not judged (a
        # visit then went unseen), e.g. a system started at noon says nothing of 07:30-10:00
        self._watch_from = np.iinfo(np.int64).max
        self._alloc(max(16, out_capacity))
        self.counters = np.zeros(3, dtype=np.int64)
        if self.rules:
            self._warm_up()

    def _alloc(self, cap: int) -> None:
        self._cap = cap
        self._o = (np.zeros(cap, dtype=np.int32), np.zeros(cap, dtype=np.int32),
                   np.zeros(cap, dtype=np.int64), np.zeros(cap, dtype=np.int8), np.zeros(cap),
                   np.zeros(cap, dtype=np.int32), np.zeros(cap), np.zeros(cap))  # fmt: skip

    def _warm_up(self) -> None:
        """Compile (or load from the cache) the kernels with the production dtypes."""
        e = np.zeros(0, dtype=np.int64)
        dev, fc = np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.int8)
        V.fix_order(K.readonly(dev), K.readonly(e), 0)
        self.run_arrays(e, dev, fc, e, np.zeros(0), np.zeros(1, dtype=np.int64))
        self.index._ids.warm_up()

    def process(self, frame: pl.DataFrame, hashes: np.ndarray | None = None) -> list[Transition]:
        """Evaluate the vehicle rules on a batch; return the transitions."""
        if frame.height == 0 or not self.rules:
            return []
        sids = self.index.lookup(frame, hashes)
        rows = np.flatnonzero(sids >= 0)
        if len(rows) == 0:
            return []
        self.st.grow()
        ser_dev, ser_field = self.index.series_arrays()
        s = sids[rows]
        dev = ser_dev[s]
        fcode = ser_field[s]
        ts = frame.get_column("ts").cast(pl.Int64).to_numpy()[rows]
        self._watch_from = min(self._watch_from, int(ts.min()))
        vals = frame.get_column("value").cast(pl.Float64).to_numpy()[rows]
        order, in_time = V.fix_order(K.readonly(dev), K.readonly(ts), self.index.n_dev)
        if not in_time:  # late rows: stable, so rows of one (vehicle, ts) keep arrival order
            order = np.lexsort((ts, dev))
        return self.run_arrays(order, dev, fcode, ts, vals, self._local(ts))

    def _local(self, ts: np.ndarray) -> np.ndarray:
        """The batch's UTC offset (one value) when it has one, else each row's local ns of
        the day (a batch across a DST change); banned hours are the only reader."""
        if not self._need_loc:
            return np.zeros(1, dtype=np.int64)
        lo, hi = (datetime.fromtimestamp(int(x) // 1_000_000_000, UTC).astimezone(self.tz)
                  for x in (ts.min(), ts.max()))  # fmt: skip
        if lo.utcoffset() == hi.utcoffset():
            return np.array([int(lo.utcoffset().total_seconds()) * 1_000_000_000])  # type: ignore[union-attr]
        return local_ns(ts, self.tz)[0]

    def run_arrays(self, order, dev, fcode, ts, vals, loc) -> list[Transition]:  # type: ignore[no-untyped-def]
        """Run the kernel over mapped rows and their (vehicle, ts) sort order; ``loc`` is
        each row's local ns of the day, or one UTC offset for them all."""
        ro = K.readonly
        rows = (ro(np.ascontiguousarray(order, dtype=np.int64)), ro(dev), ro(fcode),
                ro(np.ascontiguousarray(ts)), ro(np.ascontiguousarray(vals)),
                ro(np.ascontiguousarray(loc, dtype=np.int64)))  # fmt: skip
        st, max_new = self.st, self.index.geo.max_cell
        out: list[Transition] = []
        start = 0
        while True:
            nxt, k, status = V.run_vehicles(
                rows, self._geo, self._rul, st.dev_arrays(), st.pair_arrays(), self._o,
                self.counters, start, self.max_mps, max_new,
            )  # fmt: skip
            out.extend(self._transitions(k))
            if status == V.DONE:
                return out
            if status == V.PAIRS_FULL:
                st.grow_pairs(max_new)
            elif k == 0:  # one fix may need more room than there is
                self._alloc(self._cap * 2)
            start = nxt

    def _transitions(self, k: int) -> list[Transition]:
        if k == 0:
            return []
        o_dev, o_col, o_ts, o_kind, o_val, o_geo, o_lat, o_lon = (x[:k].tolist() for x in self._o)
        ids, gids, rule, gid, for_s = (self.index.dev_ids, self.index.geo.ids, self._c_rule,
                                       self._c_gid, self._c_for)  # fmt: skip
        # built inline: this runs once per transition on a path that carries telemetry
        return [
            Transition(
                rule[c],
                ids[d],
                f"{ids[d]}/{gid[c]}" if gid[c] else ids[d],
                gid[c],
                "raise" if kind == 1 else "clear",
                t,
                v,
                for_s[c],
                gids[g] if g >= 0 else "",
                la if la == la and lo == lo else None,  # NaN: no (whole) position known
                lo if la == la and lo == lo else None,
            )
            for d, c, t, kind, v, g, la, lo in zip(
                o_dev, o_col, o_ts, o_kind, o_val, o_geo, o_lat, o_lon
            )
        ]

    def _transition(self, dev: str, c: int, t: int, kind: str, v: float, geo: str,
                    lat: float, lon: float) -> Transition:  # fmt: skip
        gid = self._c_gid[c]
        subject = f"{dev}/{gid}" if gid else dev
        where = lat == lat and lon == lon  # not NaN: the vehicle's position is known
        return Transition(self._c_rule[c], dev, subject, gid, kind, t, v, self._c_for[c], geo,  # type: ignore[arg-type]
                          lat if where else None, lon if where else None)  # fmt: skip

    def tick(self, now_ns: int) -> list[Transition]:
        """Raise collection_miss columns whose point was not visited in today's hours by
        their end (once per local day); a later visit clears them (see :meth:`_visits`)."""
        a, st = self.arr, self.st
        rules = np.flatnonzero(a.fam == _COLLECTION).tolist()
        if not rules or self.index.n_dev == 0:
            return []
        st.grow()
        loc_a, day_a = local_ns(np.array([now_ns], dtype=np.int64), self.tz)
        loc, day = int(loc_a[0]), int(day_a[0])
        out = self._visits(rules)
        u = st.used()
        geo, devs = st.q_geo[u], st.q_dev[u]
        hs, he = self.index.geo.h_start[geo], self.index.geo.h_end[geo]
        start_utc = now_ns - loc + hs  # today's window start, in UTC ns
        for r in rules:
            col = a.colmap[r, geo]
            # hours over today, the rule's fleet, no visit since the hours began
            due = (hs >= 0) & (loc >= he) & (col >= 0) & (a.rf_ok[st.d_fc[devs], r] != 0)
            due &= (st.q_vis[u] < start_utc) & (start_utc >= self._watch_from)
            for j in np.flatnonzero(due).tolist():
                p, c, d = int(u[j]), int(col[j]), int(devs[j])
                if self._missed.get((d, c)) == day:
                    continue
                self._missed[(d, c)] = day
                kk = int(a.col_k[c])
                if st.q_active[p, kk] == 0:
                    st.q_active[p, kk] = 1
                    st.q_since[p, kk] = now_ns  # a visit after this clears it
                    out.append(self._transition(self.index.dev_ids[d], c, now_ns, "raise",
                                                (now_ns - int(start_utc[j])) / 1e9,
                                                self._c_gid[c], *self._where(d)))  # fmt: skip
        return out

    def _visits(self, rules: list[int]) -> list[Transition]:
        a, st = self.arr, self.st
        u = st.used()
        out = []
        for r in rules:
            col = a.colmap[r, st.q_geo[u]]
            kk = a.col_k[np.maximum(col, 0)]
            act = (col >= 0) & (st.q_active[u, kk] != 0)
            hit = act & (st.q_vis[u] > st.q_since[u, kk])
            for j in np.flatnonzero(hit).tolist():
                p, c, k = int(u[j]), int(col[j]), int(kk[j])
                st.q_active[p, k] = 0
                st.q_since[p, k] = K.NO_TS
                d = int(st.q_dev[p])
                out.append(self._transition(self.index.dev_ids[d], c, int(st.q_vis[p]), "clear",
                                            0.0, self._c_gid[c], *self._where(d)))  # fmt: skip
        return out

    def _where(self, d: int) -> tuple[float, float]:
        return float(self.st.d_lat[d]), float(self.st.d_lon[d])

    def state(self) -> dict[str, np.ndarray]:
        """Per-vehicle state keyed by names (vehicle, geofence, rule ids) for a snapshot."""
        return self.st.state([r.id for r in self.rules])

    def load_state(self, z: Mapping[str, np.ndarray]) -> None:
        """Restore what :meth:`state` saved, matching vehicles, geofences and rules by id."""
        if "v_dev" not in z or not self.rules:
            return
        self.st.load_state(z, [r.id for r in self.rules])

    def stats(self) -> dict[str, int]:
        """Fixes evaluated, late fixes skipped, jumps dropped, vehicles, active subjects,
        (vehicle, geofence) pairs held."""
        c, st = self.counters, self.st
        active = int(st.d_active.sum()) + int(st.q_active[st.used()].sum())
        return {"fixes": int(c[V.C_FIXES]), "late_fixes": int(c[V.C_LATE]),
                "jumps": int(c[V.C_JUMP]), "vehicles": self.index.n_dev, "active": active,
                "pairs": int(st.pool[V.P_USED])}  # fmt: skip
