"""Vehicle rules as arrays: rule parameters, columns, fleets, and the vehicle index.

A *column* is one rule subject kind: one per per-vehicle rule (stop, cover, speed, plant
detour), one per target geofence of a geofence rule (geofence, route, banned zone,
collection). Per-vehicle state of a geofence column lives in a *pair* (vehicle, geofence)
(:mod:`rules.vstate`), created when the vehicle enters the geofence and dropped when it
leaves; pairs the rules need at all times are *static*: geofences that list their vehicles,
and routes and collection points (whose rules watch the vehicle outside them too).
Applicability goes by fleet code, so a vehicle costs nothing per geofence of the city.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from contracts.config import DeviceConfig
from contracts.geofence import GEOFENCE_KINDS, GeofenceConfig
from contracts.rule_config import VehicleRuleConfig
from rules.geo import GeoArrays, compile_geofences
from rules.idmap import IdMap

__all__ = ["VEHICLE_CODE", "FIX_FIELDS", "VehicleArrays", "VehicleIndex", "compile_vehicles"]

VEHICLE_CODE = {
    "geofence": 1,
    "stop": 2,
    "route": 3,
    "banned_zone": 4,
    "cover_moving": 5,
    "fleet_speed": 6,
    "collection_miss": 7,
    "plant_detour": 8,
}
FIX_FIELDS = ("lat", "lon", "speed", "cover_open")  # codes 0..3 in the kernel
_TARGET = {"route": ("approved_route",), "banned_zone": ("banned_zone",),
           "collection_miss": ("collection_point",),
           "plant_detour": ("collection_point",)}  # fmt: skip
_PER_GEOFENCE = ("geofence", "route", "banned_zone", "collection_miss")
_STATIC = ("route", "collection_miss", "plant_detour")  # their targets get static pairs
_NS = 1_000_000_000


def _targets(r: VehicleRuleConfig) -> tuple[str, ...]:
    if r.family == "geofence":
        return tuple(r.zones)  # type: ignore[union-attr]
    return _TARGET.get(r.family, ())


def _aux(r: VehicleRuleConfig) -> tuple[str, ...]:
    if r.family in ("stop", "plant_detour"):
        return tuple(r.allowed)  # type: ignore[union-attr]
    if r.family == "route":
        return tuple(r.exempt)  # type: ignore[union-attr]
    return ()


def _mask(kinds: tuple[str, ...]) -> int:
    return sum(1 << GEOFENCE_KINDS.index(k) for k in set(kinds))


@dataclass(frozen=True)
class VehicleArrays:
    """Rule parameters, the column layout and applicability by fleet code."""

    fam: np.ndarray  # int8
    for_ns: np.ndarray  # int64
    p0: np.ndarray  # stop / cover / detour: speed below / above (km/h); fleet_speed: limit
    p1: np.ndarray  # stop: radius (m)
    p2: np.ndarray  # plant_detour: detour ratio
    p3: np.ndarray  # plant_detour: corridor slack (m)
    aux: np.ndarray  # int64 bitmask of geofence kinds: allowed (stop, detour), exempt (route)
    colmap: np.ndarray  # int32 [rule, geofence]: the geofence column, -1 if none
    dcol: np.ndarray  # int32 per rule: its per-vehicle column, -1 for a geofence rule
    col_rule: np.ndarray  # int32 per column
    col_geo: np.ndarray  # int32 per column, -1 for a per-vehicle column
    col_k: np.ndarray  # int32 per column: its slot in a pair (geofence columns)
    k_rule: np.ndarray  # int32 [geofence, slot]: the rule of that slot's column, -1 if none
    n_k: int  # slots per pair: most geofence columns on one geofence (at least 1)
    fleets: dict[str, int]  # fleet name -> code; 0 is every other fleet
    gf_app: np.ndarray  # uint8 [fleet code, geofence]: an unlisted geofence applies
    rf_ok: np.ndarray  # uint8 [fleet code, rule]: the rule applies
    static_kinds: int  # bitmask of kinds whose applicable geofences get static pairs


def compile_vehicles(rules: list[VehicleRuleConfig], geo: list[GeofenceConfig]) -> VehicleArrays:
    """Turn vehicle rules (and the geofences they refer to) into kernel arrays."""
    nr, ng = len(rules), len(geo)
    colmap = np.full((nr, ng), -1, dtype=np.int32)
    dcol = np.full(nr, -1, dtype=np.int32)
    col_rule: list[int] = []
    col_geo: list[int] = []
    col_k: list[int] = []
    per_geo = [0] * ng
    for i, r in enumerate(rules):
        if r.family not in _PER_GEOFENCE:
            dcol[i] = len(col_rule)
            col_rule.append(i)
            col_geo.append(-1)
            col_k.append(0)
            continue
        for j, g in enumerate(geo):
            if g.kind in _targets(r):
                colmap[i, j] = len(col_rule)
                col_rule.append(i)
                col_geo.append(j)
                col_k.append(per_geo[j])
                per_geo[j] += 1
    n_k = max([1, *per_geo])
    k_rule = np.full((ng, n_k), -1, dtype=np.int32)
    for c, (i, j) in enumerate(zip(col_rule, col_geo)):
        if j >= 0:
            k_rule[j, col_k[c]] = i
    names = sorted({f for x in [*rules, *geo] for f in x.fleets})
    fleets = {f: i + 1 for i, f in enumerate(names)}
    codes = ["\x00", *names]  # code 0: a fleet no list names
    gf_app = np.array([[not g.vehicles and (not g.fleets or f in g.fleets) for g in geo]
                       for f in codes], dtype=np.uint8).reshape(len(codes), ng)  # fmt: skip
    rf_ok = np.array([[not r.fleets or f in r.fleets for r in rules] for f in codes],
                     dtype=np.uint8).reshape(len(codes), nr)  # fmt: skip

    def num(name: str, default: float = 0.0) -> np.ndarray:
        return np.array([float(getattr(r, name, default)) for r in rules], dtype=np.float64)

    p0 = [getattr(r, "stop_speed_kmh", getattr(r, "min_speed_kmh", getattr(r, "max_speed_kmh", 0.0)))
          for r in rules]  # fmt: skip
    return VehicleArrays(
        fam=np.array([VEHICLE_CODE[r.family] for r in rules], dtype=np.int8),
        for_ns=np.array([round(r.for_s * _NS) for r in rules], dtype=np.int64),
        p0=np.asarray(p0, dtype=np.float64), p1=num("stop_radius_m"),
        p2=num("detour_ratio"), p3=num("corridor_m"),
        aux=np.array([_mask(_aux(r)) for r in rules], dtype=np.int64),
        colmap=colmap, dcol=dcol,
        col_rule=np.asarray(col_rule, dtype=np.int32),
        col_geo=np.asarray(col_geo, dtype=np.int32),
        col_k=np.asarray(col_k, dtype=np.int32),
        k_rule=k_rule, n_k=n_k, fleets=fleets, gf_app=gf_app, rf_ok=rf_ok,
        static_kinds=_mask(tuple(k for r in rules if r.family in _STATIC for k in _targets(r))),
    )  # fmt: skip


class VehicleIndex:
    """Dense ids for vehicles and their fix fields; each vehicle's fleet code and the static
    pairs it needs (registered here, materialised by the engine)."""

    def __init__(
        self,
        rules: list[VehicleRuleConfig],
        geofences: list[GeofenceConfig],
        arr: VehicleArrays,
        devices: Mapping[str, DeviceConfig] | None = None,
    ):
        self.rules = rules
        self.geofences = geofences
        self.arr = arr
        self.devices = dict(devices or {})
        self.geo: GeoArrays = compile_geofences(geofences)
        self.dev_ids: list[str] = []
        self._dev: dict[str, int] = {}
        self.fleet_code: list[int] = []
        self.pending: list[tuple[int, int]] = []  # static (vehicle, geofence) pairs to create
        self._listed: dict[str, list[int]] = {}
        for j, g in enumerate(geofences):
            for v in g.vehicles:
                self._listed.setdefault(v, []).append(j)
        kinds = np.array([1 << GEOFENCE_KINDS.index(g.kind) for g in geofences], dtype=np.int64)
        wide = (kinds & arr.static_kinds) != 0
        self._static_by_fleet = [np.flatnonzero(wide & (row != 0)).tolist() for row in arr.gf_app]
        self.ser_dev: list[int] = []
        self.ser_field: list[int] = []
        self._sid: dict[tuple[str, str], int] = {}
        self._ids = IdMap(self.ensure)
        self._arr: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def n_dev(self) -> int:
        """Number of vehicles with an id."""
        return len(self.dev_ids)

    def fleet(self, device_id: str) -> str:
        """The vehicle's fleet from its device config (``attrs.fleet``), "" if unknown."""
        dc = self.devices.get(device_id)
        return str(dc.attrs.get("fleet", "")) if dc is not None else ""

    def device(self, device_id: str) -> int:
        """The dense id of a vehicle, registering it (and its static pairs) when new."""
        d = self._dev.get(device_id)
        if d is None:
            d = len(self.dev_ids)
            self.dev_ids.append(device_id)
            self._dev[device_id] = d
            code = self.arr.fleets.get(self.fleet(device_id), 0)
            self.fleet_code.append(code)
            # a listed geofence applies to its vehicles only, and needs a pair to say so
            mine = self._listed.get(device_id, []) + self._static_by_fleet[code]
            self.pending.extend((d, g) for g in sorted(mine))
        return d

    def ensure(self, device_id: str, kind: str, field: str) -> int:
        """Series id of a (vehicle, fix field); -1 for rows no vehicle rule reads."""
        key = (device_id, field)
        sid = self._sid.get(key)
        if sid is not None:
            return sid
        sid = -1
        if kind == "vehicle" and field in FIX_FIELDS and self.rules:
            sid = len(self.ser_dev)
            self.ser_dev.append(self.device(device_id))
            self.ser_field.append(FIX_FIELDS.index(field))
            self._arr = None
        self._sid[key] = sid
        return sid

    def lookup(self, frame, hashes=None) -> np.ndarray:  # type: ignore[no-untyped-def]
        """Series id of every row (-1 where no vehicle rule reads it)."""
        return self._ids.lookup(frame, hashes)

    def series_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(device id, field code) per series id."""
        if self._arr is None:
            self._arr = (
                np.asarray(self.ser_dev, dtype=np.int32),
                np.asarray(self.ser_field, dtype=np.int8),
            )
        return self._arr
