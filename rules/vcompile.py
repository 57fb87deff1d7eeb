"""Vehicle rules as arrays: rule parameters, state columns, the device and field index.

A *column* is one rule subject per device: one for a per-device rule (stop, cover, speed),
one per target geofence for a geofence rule (geofence, route, banned zone, collection).
State is ``[device, column]``, so a device's row is everything the kernel touches for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from contracts.config import DeviceConfig
from contracts.geofence import GeofenceConfig
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
}
FIX_FIELDS = ("lat", "lon", "speed", "cover_open")  # codes 0..3 in the kernel
_TARGET = {"route": ("approved_route",), "banned_zone": ("banned_zone",),
           "collection_miss": ("collection_point",)}  # fmt: skip
_NS = 1_000_000_000


def _targets(r: VehicleRuleConfig) -> tuple[str, ...]:
    if r.family == "geofence":
        return tuple(r.zones)  # type: ignore[union-attr]
    return _TARGET.get(r.family, ())


def _aux(r: VehicleRuleConfig) -> tuple[str, ...]:
    if r.family == "stop":
        return tuple(r.allowed)  # type: ignore[union-attr]
    if r.family == "route":
        return tuple(r.exempt)  # type: ignore[union-attr]
    return ()


@dataclass(frozen=True)
class VehicleArrays:
    """Rule parameters, per-rule geofence lists (CSR) and the column layout."""

    fam: np.ndarray  # int8
    for_ns: np.ndarray  # int64
    p0: np.ndarray  # stop / cover: speed below / above (km/h); fleet_speed: limit
    p1: np.ndarray  # stop: radius (m)
    tg_ptr: np.ndarray  # target geofences of rule r: tg_geo[tg_ptr[r]:tg_ptr[r+1]]
    tg_geo: np.ndarray
    ax_ptr: np.ndarray  # allowed / exempt geofences of rule r
    ax_geo: np.ndarray
    col_base: np.ndarray  # first column of rule r
    col_rule: np.ndarray  # int32 per column
    col_geo: np.ndarray  # int32 per column, -1 for a per-device column


def compile_vehicles(rules: list[VehicleRuleConfig], geo: list[GeofenceConfig]) -> VehicleArrays:
    """Turn vehicle rules (and the geofences they refer to) into kernel arrays."""
    tg: list[list[int]] = []
    ax: list[list[int]] = []
    col_rule: list[int] = []
    col_geo: list[int] = []
    base = []
    for i, r in enumerate(rules):
        t = [j for j, g in enumerate(geo) if g.kind in _targets(r)]
        tg.append(t)
        ax.append([j for j, g in enumerate(geo) if g.kind in _aux(r)])
        base.append(len(col_rule))
        cols = t if r.family in ("geofence", "route", "banned_zone", "collection_miss") else [-1]
        col_rule.extend([i] * len(cols))
        col_geo.extend(cols)

    def csr(lists: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
        ptr = np.zeros(len(lists) + 1, dtype=np.int64)
        np.cumsum([len(x) for x in lists], out=ptr[1:])
        return ptr, np.asarray([g for x in lists for g in x], dtype=np.int32)

    p0 = [getattr(r, "stop_speed_kmh", getattr(r, "min_speed_kmh", getattr(r, "max_speed_kmh", 0.0)))
          for r in rules]  # fmt: skip
    tp, tgeo = csr(tg)
    ap, ageo = csr(ax)
    return VehicleArrays(
        fam=np.array([VEHICLE_CODE[r.family] for r in rules], dtype=np.int8),
        for_ns=np.array([round(r.for_s * _NS) for r in rules], dtype=np.int64),
        p0=np.asarray(p0, dtype=np.float64),
        p1=np.array([getattr(r, "stop_radius_m", 0.0) for r in rules], dtype=np.float64),
        tg_ptr=tp, tg_geo=tgeo, ax_ptr=ap, ax_geo=ageo,
        col_base=np.asarray(base, dtype=np.int64),
        col_rule=np.asarray(col_rule, dtype=np.int32),
        col_geo=np.asarray(col_geo, dtype=np.int32),
    )  # fmt: skip


def applies(g: GeofenceConfig, device_id: str, fleet: str) -> bool:
    """Whether a geofence concerns a vehicle: its ``vehicles`` list, else its ``fleets``."""
    if g.vehicles:
        return device_id in g.vehicles
    return not g.fleets or fleet in g.fleets


class VehicleIndex:
    """Dense ids for vehicles and their fix fields; per-vehicle applicability masks."""

    def __init__(
        self,
        rules: list[VehicleRuleConfig],
        geofences: list[GeofenceConfig],
        devices: Mapping[str, DeviceConfig] | None = None,
    ):
        self.rules = rules
        self.geofences = geofences
        self.devices = dict(devices or {})
        self.geo: GeoArrays = compile_geofences(geofences)
        self.dev_ids: list[str] = []
        self._dev: dict[str, int] = {}
        self.app = np.zeros((0, len(geofences)), dtype=np.uint8)
        self.rule_ok = np.zeros((0, len(rules)), dtype=np.uint8)
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
        """The dense id of a vehicle, registering it (and its masks) when new."""
        d = self._dev.get(device_id)
        if d is None:
            d = len(self.dev_ids)
            self.dev_ids.append(device_id)
            self._dev[device_id] = d
            fl = self.fleet(device_id)
            app = [applies(g, device_id, fl) for g in self.geofences]
            ok = [not r.fleets or fl in r.fleets for r in self.rules]
            self.app = np.vstack([self.app, np.asarray([app], dtype=np.uint8)])
            self.rule_ok = np.vstack([self.rule_ok, np.asarray([ok], dtype=np.uint8)])
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
