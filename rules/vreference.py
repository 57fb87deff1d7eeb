"""Plain-Python oracle of the vehicle rules (:mod:`rules.vkernels`): dicts keyed by names,
fixes grouped with a dict per batch, geometry straight from the geofence configs, every
geofence measured at every fix (no grid, no pairs)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from contracts.config import DeviceConfig
from contracts.geofence import GeofenceConfig
from contracts.rule_config import VehicleRuleConfig
from rules.transition import Transition

__all__ = ["VehicleReference"]

_M = 111_320.0
_RAD = math.pi / 180.0
_FIELDS = ("lat", "lon", "speed", "cover_open")
_AUX = {"stop": "allowed", "route": "exempt", "plant_detour": "allowed"}
_TARGET = {"route": ["approved_route"], "banned_zone": ["banned_zone"]}
_NO_TS = -(2**63)


def _dist(la1: float, lo1: float, la2: float, lo2: float) -> float:
    dx = (lo2 - lo1) * _M * math.cos(la1 * _RAD)
    dy = (la2 - la1) * _M
    return math.sqrt(dx * dx + dy * dy)


def _seg(x: float, y: float, a: tuple[float, float], b: tuple[float, float]) -> float:
    dx, dy = b[0] - a[0], b[1] - a[1]
    ll = dx * dx + dy * dy
    u = min(1.0, max(0.0, ((x - a[0]) * dx + (y - a[1]) * dy) / ll)) if ll > 0.0 else 0.0
    px, py = a[0] + u * dx - x, a[1] + u * dy - y
    return px * px + py * py


def _buffer(g: GeofenceConfig) -> float:
    """A circle's buffer is at most half its radius (else a small zone is never entered)."""
    if g.line is None and g.polygon is None and g.radius_m is not None:
        return min(g.buffer_m, 0.5 * g.radius_m)
    return g.buffer_m


def _centre(g: GeofenceConfig) -> tuple[float, float]:
    """(lat, lon): a circle's centre, else the mean of the ring's or the line's points."""
    if g.line is None and g.polygon is None:
        return g.center[1], g.center[0]  # type: ignore[index]
    pts = list(g.line or g.polygon or [])
    if g.polygon and len(pts) > 3 and pts[0] == pts[-1]:
        pts = pts[:-1]
    return sum(p[1] for p in pts) / len(pts), sum(p[0] for p in pts) / len(pts)


def _signed(g: GeofenceConfig, lat: float, lon: float) -> float:
    """Signed metres from the boundary (negative inside or within the corridor)."""
    lo0, la0 = g.line[0] if g.line else g.polygon[0] if g.polygon else g.center  # type: ignore[index,misc]
    c0 = math.cos(la0 * _RAD)

    def xy(p: tuple[float, float]) -> tuple[float, float]:
        return (p[0] - lo0) * _M * c0, (p[1] - la0) * _M

    x, y = xy((lon, lat))
    if g.line:
        pts = [xy(p) for p in g.line]
        best = min(_seg(x, y, a, b) for a, b in zip(pts, pts[1:]))
        return math.sqrt(best) - g.corridor_m
    if g.polygon is None:
        cx, cy = xy(g.center)  # type: ignore[arg-type]
        return math.sqrt((x - cx) ** 2 + (y - cy) ** 2) - float(g.radius_m or 0.0)
    ring = list(g.polygon)
    if len(ring) > 3 and ring[0] == ring[-1]:
        ring = ring[:-1]
    pts = [xy(p) for p in ring]
    inside = False
    best = math.inf
    for j, a in enumerate(pts):
        b = pts[(j + 1) % len(pts)]
        best = min(best, _seg(x, y, a, b))
        if (a[1] > y) != (b[1] > y) and x < (b[0] - a[0]) * (y - a[1]) / (b[1] - a[1]) + a[0]:
            inside = not inside
    return -math.sqrt(best) if inside else math.sqrt(best)


def _in_hours(hours: tuple[str, str] | None, local: datetime, ns: int) -> bool:
    if hours is None:
        return True
    sec = (local.hour * 3600 + local.minute * 60 + local.second) * 1_000_000_000 + ns
    s, e = ((int(h[:2]) * 60 + int(h[3:5])) * 60_000_000_000 for h in hours)
    return s <= sec < e if s <= e else (sec >= s or sec < e)


class VehicleReference:
    """Same batches in, same transitions (as a multiset) out as the vehicle engine."""

    def __init__(
        self,
        rules: list[VehicleRuleConfig],
        geofences: list[GeofenceConfig],
        devices: Mapping[str, DeviceConfig] | None = None,
        tz: ZoneInfo | None = None,
        max_jump_kmh: float = 200.0,
    ):
        self.rules = list(rules)
        self.geo = list(geofences)
        self.devices = dict(devices or {})
        self.tz = tz or ZoneInfo("Asia/Shanghai")
        self.max_mps = max_jump_kmh / 3.6
        self.veh: dict[str, dict] = {}
        self.inside: dict[tuple[str, str], bool] = {}
        self.since: dict[tuple[str, str, str], int] = {}
        self.raised: set[tuple[str, str, str]] = set()
        self.anchor: dict[tuple[str, str], tuple[float, float]] = {}
        self.visited: dict[tuple[str, str], int] = {}  # (vehicle, geofence) -> last inside
        self.late = self.jumps = 0
        self._at: tuple[float | None, float | None] = (None, None)  # the fix being judged

    def _fleet(self, dev: str) -> str:
        dc = self.devices.get(dev)
        return str(dc.attrs.get("fleet", "")) if dc else ""

    def _applies(self, g: GeofenceConfig, dev: str) -> bool:
        if g.vehicles:
            return dev in g.vehicles
        return not g.fleets or self._fleet(dev) in g.fleets

    def process_rows(self, rows: Iterable[tuple[str, str, int, str, float | None]]) -> list:
        """Feed one batch of rows ``(device_id, kind, ts, field, value)``."""
        if not self.rules:
            return []
        fixes: dict[tuple[str, int], dict[str, float]] = {}
        for dev, kind, ts, field, v in rows:
            if kind != "vehicle" or field not in _FIELDS:
                continue
            fx = fixes.setdefault((dev, ts), {})
            if v is not None and not math.isnan(v):
                fx[field] = v
        out: list[Transition] = []
        for (dev, ts), fx in sorted(fixes.items(), key=lambda kv: kv[0]):
            out.extend(self._fix(dev, ts, fx))
        return out

    def _fix(self, dev: str, t: int, fx: dict[str, float]) -> list[Transition]:
        st = self.veh.setdefault(dev, {"t": None, "pos": (math.nan, math.nan), "prev": None,
                                       "spd": math.nan, "cov": math.nan, "rej": 0,
                                       "collected": _NO_TS, "at": None, "unloaded": _NO_TS})  # fmt: skip
        la, lo = fx.get("lat", math.nan), fx.get("lon", math.nan)
        if la == 0.0 and lo == 0.0:
            la = lo = math.nan
        if st["t"] is not None and t < st["t"]:
            self.late += 1
            return []
        cur = st["pos"]
        new = (cur[0] if math.isnan(la) else la, cur[1] if math.isnan(lo) else lo)
        ref = st["prev"] if t == st["t"] else ((st["t"], *cur) if st["t"] is not None else None)
        given = not (math.isnan(la) and math.isnan(lo))
        if given and ref is not None and not any(math.isnan(x) for x in (ref[1], *new)):
            if _dist(ref[1], ref[2], *new) > self.max_mps * ((t - ref[0]) / 1e9):
                if st["rej"] < 3:
                    st["rej"] += 1
                    self.jumps += 1
                    return []
        if t != st["t"]:
            st["prev"] = (st["t"], *cur) if st["t"] is not None else None
        st.update(t=t, pos=new, rej=0)
        if not math.isnan(fx.get("speed", math.nan)):
            st["spd"] = fx["speed"]
        if not math.isnan(fx.get("cover_open", math.nan)):
            st["cov"] = fx["cover_open"]
        pos = not math.isnan(new[0]) and not math.isnan(new[1])
        if pos:
            for g in self.geo:
                if self._applies(g, dev):
                    d = _signed(g, new[0], new[1])
                    key = (dev, g.id)
                    if d < -_buffer(g):
                        self.inside[key] = True
                    elif d > _buffer(g):
                        self.inside[key] = False
                    if self.inside.get(key, False):
                        self.visited[key] = t
                        if g.kind == "collection_point":
                            st.update(collected=t, at=new)
                        elif g.kind == "treatment_plant":
                            st["unloaded"] = t
        self._at = (None, None) if math.isnan(new[0]) or math.isnan(new[1]) else new
        local = datetime.fromtimestamp(t // 1_000_000_000, UTC).astimezone(self.tz)
        out: list[Transition] = []
        fleet = self._fleet(dev)
        for r in self.rules:
            if r.fleets and fleet not in r.fleets:
                continue
            aux = getattr(r, _AUX.get(r.family, ""), [])
            in_aux = any(self.inside.get((dev, g.id), False) for g in self.geo
                         if g.kind in aux and self._applies(g, dev))  # fmt: skip
            if r.family in ("geofence", "route", "banned_zone"):
                if not pos:
                    continue
                kinds = r.zones if r.family == "geofence" else _TARGET[r.family]  # type: ignore[union-attr]
                for g in self.geo:
                    if g.kind not in kinds or not self._applies(g, dev):
                        continue
                    ins = self.inside.get((dev, g.id), False)
                    if r.family == "geofence":
                        cond = ins
                    elif r.family == "route":
                        cond = not ins and not in_aux
                    else:
                        cond = ins and _in_hours(g.hours, local, t % 1_000_000_000)
                    out += self._latch(r, dev, g.id, cond, t)
            elif r.family == "stop":
                if not pos:
                    continue
                cond = st["spd"] < r.stop_speed_kmh and not in_aux  # type: ignore[union-attr]
                key = (r.id, dev, "")
                if cond and key in self.since:
                    if _dist(*self.anchor[(r.id, dev)], *new) > r.stop_radius_m:  # type: ignore[union-attr]
                        out += self._latch(r, dev, "", False, t)
                if cond and key not in self.since:
                    self.anchor[(r.id, dev)] = new
                out += self._named(self._latch(r, dev, "", cond, t), dev, aux, new, False)
            elif r.family == "plant_detour":
                if not pos:
                    continue
                cond = False
                if st["collected"] > st["unloaded"] and not in_aux:
                    cond = st["spd"] < r.stop_speed_kmh or self._detour(r, dev, st, new)  # type: ignore[union-attr]
                trs = self._latch(r, dev, "", cond, t)
                out += self._named(trs, dev, ["treatment_plant"], st["at"], True)
            elif r.family == "cover_moving":
                cond = st["cov"] >= 0.5 and st["spd"] > r.min_speed_kmh  # type: ignore[union-attr]
                out += self._latch(r, dev, "", cond, t)
            elif r.family == "fleet_speed":
                out += self._latch(r, dev, "", st["spd"] > r.max_speed_kmh, t)  # type: ignore[union-attr]
        return out

    def _detour(self, r: VehicleRuleConfig, dev: str, st: dict, x: tuple[float, float]) -> bool:
        """Every collection point visited since unloading, and off every plant's corridor."""
        cps = [g for g in self.geo if g.kind == "collection_point" and self._applies(g, dev)]
        if any(self.visited.get((dev, g.id), _NO_TS) <= st["unloaded"] for g in cps):
            return False
        a = st["at"]
        plants = [_centre(g) for g in self.geo
                  if g.kind == "treatment_plant" and self._applies(g, dev)]  # fmt: skip
        return bool(plants) and all(
            _dist(*a, *x) + _dist(*p, *x) > r.detour_ratio * _dist(*a, *p) + r.corridor_m  # type: ignore[union-attr]
            for p in plants
        )

    def _named(self, trs: list, dev: str, kinds: list[str], at: tuple[float, float],
               plant: bool) -> list:  # fmt: skip
        """A per-vehicle raise names the applicable geofence of those kinds nearest to ``at``
        (by signed distance; from its centre for a plant)."""
        if not trs or trs[0].kind != "raise":
            return trs
        best, arg = math.inf, ""
        for g in self.geo:
            if g.kind in kinds and self._applies(g, dev):
                d = _dist(*at, *_centre(g)) if plant else _signed(g, *at)
                if d < best:
                    best, arg = d, g.id
        return [replace(trs[0], geofence=arg)]

    def _latch(self, r: VehicleRuleConfig, dev: str, gid: str, cond: bool, t: int) -> list:
        key = (r.id, dev, gid)
        subj = f"{dev}/{gid}" if gid else dev
        if cond:
            since = self.since.setdefault(key, t)
            if key not in self.raised and t - since >= round(r.for_s * 1e9):
                self.raised.add(key)
                return [Transition(r.id, dev, subj, gid, "raise", t, (t - since) / 1e9, r.for_s,
                                   gid, *self._at)]  # fmt: skip
        elif key in self.since:
            since = self.since.pop(key)
            if key in self.raised:
                self.raised.discard(key)
                return [Transition(r.id, dev, subj, gid, "clear", t, (t - since) / 1e9, r.for_s,
                                   gid, *self._at)]  # fmt: skip
        return []
