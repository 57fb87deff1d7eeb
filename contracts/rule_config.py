"""Rule definitions in the deployment config: one model per rule family, chosen by ``family:``
(a rule without it is a threshold rule)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, field_validator, model_validator

from contracts._model import ID_PATTERN as _ID
from contracts._model import Model as _Model
from contracts.alarms import Severity
from contracts.telemetry import DeviceKind

__all__ = [
    "GuardConfig",
    "CategoryConfig",
    "RuleConfig",
    "WindowRuleConfig",
    "StaleRuleConfig",
    "FlatlineRuleConfig",
    "RateRuleConfig",
    "CrossRuleConfig",
    "AstroRuleConfig",
    "NoiseRuleConfig",
    "GeofenceRuleConfig",
    "StopRuleConfig",
    "RouteRuleConfig",
    "BannedZoneRuleConfig",
    "CoverRuleConfig",
    "FleetSpeedRuleConfig",
    "CollectionRuleConfig",
    "VehicleRuleConfig",
    "VEHICLE_FAMILIES",
    "AnyRuleConfig",
    "RULE_FAMILIES",
]


class GuardConfig(_Model):
    """A rule is only evaluated while another field of the same subject has this value."""

    field: str
    equals: float


class CategoryConfig(_Model):
    """Case-system category codes (大类 / 小类)."""

    major: str = "00"
    minor: str = "0000"


class _RuleBase(_Model):
    """What every rule family shares: identity, the subject's device kind, the case."""

    id: str = Field(pattern=_ID)
    domain: Literal["lighting", "dust", "vehicle"]
    kind: DeviceKind
    field: str
    for_s: float = Field(0.0, ge=0)
    guard: GuardConfig | None = None
    severity: Severity = Severity.MAJOR
    category: CategoryConfig = Field(default_factory=CategoryConfig)
    message: str = ""

    @field_validator("field")
    @classmethod
    def _one_star(cls, v: str) -> str:
        if v.count("*") > 1:
            raise ValueError("at most one '*' in a field pattern")
        return v

    @model_validator(mode="after")
    def _guard_star(self) -> _RuleBase:
        if self.guard is not None and ("*" in self.guard.field) != ("*" in self.field):
            raise ValueError("guard field must use '*' exactly when the rule field does")
        return self


class _Hysteresis(_RuleBase):
    op: Literal["above", "below"] = "above"
    set: float
    clear: float | None = None  # defaults to ``set`` (no hysteresis)

    @model_validator(mode="after")
    def _hysteresis(self) -> _Hysteresis:
        if self.clear is None:
            self.clear = self.set
        if self.op == "above" and self.clear > self.set:
            raise ValueError(f"clear ({self.clear}) must be <= set ({self.set}) for 'above'")
        if self.op == "below" and self.clear < self.set:
            raise ValueError(f"clear ({self.clear}) must be >= set ({self.set}) for 'below'")
        return self


class RuleConfig(_Hysteresis):
    """A threshold rule with hysteresis and a minimum duration.

    ``field`` may hold one ``*`` (e.g. ``circuit*_current``); each matching field is its
    own subject, and the guard's ``*`` binds to the same text (``circuit*_on``).
    """

    family: Literal["threshold"] = "threshold"
    op: Literal["above", "below"]


class WindowRuleConfig(_Hysteresis):
    """Mean or max of the rows in the last ``window_s`` (at ``window_s / buckets``
    resolution, so irregular timestamps need no resampling) against set/clear levels."""

    family: Literal["window"]
    agg: Literal["mean", "max"] = "mean"
    window_s: float = Field(gt=0)
    buckets: int = Field(30, ge=1, le=240)


class StaleRuleConfig(_RuleBase):
    """Deadman: the device sent none of ``field`` (default: anything) for more than
    ``silent_s``; checked by ``RulesEngine.tick`` and cleared by its next row."""

    family: Literal["stale"]
    field: str = "*"
    silent_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _guard_star(self) -> StaleRuleConfig:
        # the subject is the device: a guard names one plain field of it (e.g. on_duty)
        if self.guard is not None and "*" in self.guard.field:
            raise ValueError("a staleness guard names a plain field")
        return self


class FlatlineRuleConfig(_RuleBase):
    """A stuck sensor: every value within ``eps`` of the run's first value for ``for_s``."""

    family: Literal["flatline"]
    eps: float = Field(0.0, ge=0)
    for_s: float = Field(gt=0)


class RateRuleConfig(_Hysteresis):
    """Rate of change per minute between consecutive rows against set/clear levels."""

    family: Literal["rate"]
    absolute: bool = True  # compare |rate|, so falls count as much as rises


class CrossRuleConfig(_Hysteresis):
    """Cross-field validity: ``field - other`` of the same device (rows of ``other`` no
    older or newer than ``tolerance_s``) against set/clear, e.g. pm25 > pm10."""

    family: Literal["cross"]
    other: str
    set: float = 0.0
    tolerance_s: float = Field(120.0, ge=0)

    @model_validator(mode="after")
    def _plain_fields(self) -> CrossRuleConfig:
        if "*" in self.field or "*" in self.other:
            raise ValueError("cross-field rules take plain field names")
        return self


class AstroRuleConfig(_RuleBase):
    """Lighting against the astronomical clock at the device's location: ``lit_in_day``
    (field on while the clock has lamps off) or ``dark_at_night``, after ``for_s`` grace."""

    family: Literal["astro"]
    expect: Literal["lit_in_day", "dark_at_night"]
    on_offset_min: float = 0.0  # added to sunset
    off_offset_min: float = 0.0  # added to sunrise


class NoiseRuleConfig(_RuleBase):
    """Noise against day/night limits in the city's local time (GB 12523: 70 / 55 dB(A))."""

    family: Literal["noise"]
    day_limit: float = 70.0
    night_limit: float = 55.0
    day_start_h: float = Field(6.0, ge=0, le=24)
    day_end_h: float = Field(22.0, ge=0, le=24)
    hysteresis: float = Field(2.0, ge=0)  # clears this far below the limit


_ZoneKind = Literal[
    "construction_site",
    "disposal_site",
    "treatment_plant",
    "collection_point",
    "depot",
    "banned_zone",
    "approved_route",
]


class _VehicleRule(_RuleBase):
    """Vehicle rules run on assembled fixes (lat, lon, speed, cover_open of one ts), not
    on single fields; ``fleets`` limits them to vehicles whose ``attrs.fleet`` is listed."""

    domain: Literal["vehicle"] = "vehicle"
    kind: DeviceKind = DeviceKind.VEHICLE
    field: str = "fix"
    fleets: list[str] = Field(default_factory=list)  # empty: every fleet

    @model_validator(mode="after")
    def _guard_star(self) -> _VehicleRule:
        if self.guard is not None:
            raise ValueError("vehicle rules take no guard (use fleets)")
        return self


class GeofenceRuleConfig(_VehicleRule):
    """Inside a geofence of one of ``zones`` for ``for_s`` (0: on entering); clears on exit.
    Subject: (rule, device, geofence)."""

    family: Literal["geofence"]
    zones: list[_ZoneKind] = Field(min_length=1)


class StopRuleConfig(_VehicleRule):
    """Stopped (speed below ``stop_speed_kmh``, within ``stop_radius_m`` of where the stop
    began) for ``for_s`` outside every geofence of the ``allowed`` kinds: suspected dumping."""

    family: Literal["stop"]
    for_s: float = Field(gt=0)
    allowed: list[_ZoneKind] = Field(
        default_factory=lambda: ["construction_site", "disposal_site", "depot"]
    )
    stop_speed_kmh: float = Field(3.0, gt=0)
    stop_radius_m: float = Field(50.0, gt=0)


class RouteRuleConfig(_VehicleRule):
    """Outside the corridor of an approved_route that lists the vehicle (or its fleet) for
    ``for_s``, unless inside a geofence of the ``exempt`` kinds. Subject: (rule, device, route)."""

    family: Literal["route"]
    exempt: list[_ZoneKind] = Field(
        default_factory=lambda: ["construction_site", "disposal_site", "depot"]
    )


class BannedZoneRuleConfig(_VehicleRule):
    """Inside a banned_zone that applies to the vehicle's fleet during the zone's local
    ``hours`` (all day without hours) for ``for_s``. Subject: (rule, device, zone)."""

    family: Literal["banned_zone"]


class CoverRuleConfig(_VehicleRule):
    """Cover open (``cover_open`` >= 0.5) while moving faster than ``min_speed_kmh``."""

    family: Literal["cover_moving"]
    field: str = "cover_open"
    min_speed_kmh: float = Field(5.0, ge=0)


class FleetSpeedRuleConfig(_VehicleRule):
    """Speed above ``max_speed_kmh`` for ``for_s`` (e.g. a sweeper above working speed)."""

    family: Literal["fleet_speed"]
    field: str = "speed"
    max_speed_kmh: float = Field(gt=0)


class CollectionRuleConfig(_VehicleRule):
    """A collection_point listing the vehicle not visited (entered) between the start and the
    end of its local ``hours``; checked by ``RulesEngine.tick`` at the end of the hours."""

    family: Literal["collection_miss"]


VehicleRuleConfig = (
    GeofenceRuleConfig
    | StopRuleConfig
    | RouteRuleConfig
    | BannedZoneRuleConfig
    | CoverRuleConfig
    | FleetSpeedRuleConfig
    | CollectionRuleConfig
)
VEHICLE_FAMILIES = (
    "geofence",
    "stop",
    "route",
    "banned_zone",
    "cover_moving",
    "fleet_speed",
    "collection_miss",
)


def _family(v: Any) -> str:
    if isinstance(v, dict):
        return str(v.get("family", "threshold"))
    return str(getattr(v, "family", "threshold"))


AnyRuleConfig = Annotated[
    Union[  # noqa: UP007 - Tag annotations need the explicit Union
        Annotated[RuleConfig, Tag("threshold")],
        Annotated[WindowRuleConfig, Tag("window")],
        Annotated[StaleRuleConfig, Tag("stale")],
        Annotated[FlatlineRuleConfig, Tag("flatline")],
        Annotated[RateRuleConfig, Tag("rate")],
        Annotated[CrossRuleConfig, Tag("cross")],
        Annotated[AstroRuleConfig, Tag("astro")],
        Annotated[NoiseRuleConfig, Tag("noise")],
        Annotated[GeofenceRuleConfig, Tag("geofence")],
        Annotated[StopRuleConfig, Tag("stop")],
        Annotated[RouteRuleConfig, Tag("route")],
        Annotated[BannedZoneRuleConfig, Tag("banned_zone")],
        Annotated[CoverRuleConfig, Tag("cover_moving")],
        Annotated[FleetSpeedRuleConfig, Tag("fleet_speed")],
        Annotated[CollectionRuleConfig, Tag("collection_miss")],
    ],
    Discriminator(_family),
]
RULE_FAMILIES = (
    "threshold",
    "window",
    "stale",
    "flatline",
    "rate",
    "cross",
    "astro",
    "noise",
    *VEHICLE_FAMILIES,
)
