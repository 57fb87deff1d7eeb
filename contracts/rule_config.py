"""Rule definitions in the deployment config: one model per rule family, chosen by ``family:``
(a rule without it is a threshold rule)."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import AliasChoices, Discriminator, Field, Tag, field_validator, model_validator

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
    "SpikeRuleConfig",
    "GeofenceRuleConfig",
    "StopRuleConfig",
    "RouteRuleConfig",
    "BannedZoneRuleConfig",
    "CoverRuleConfig",
    "FleetSpeedRuleConfig",
    "CollectionRuleConfig",
    "PlantDetourRuleConfig",
    "VehicleRuleConfig",
    "VEHICLE_FAMILIES",
    "AnyRuleConfig",
    "RULE_FAMILIES",
]


class GuardConfig(_Model):
    """A condition on a field of the same device: its latest value equals, is above or is
    below a level (a field never seen fails). A rule holds only while all its guards do."""

    field: str
    equals: float | None = None
    above: float | None = None
    below: float | None = None

    @model_validator(mode="after")
    def _one_test(self) -> GuardConfig:
        if sum(x is not None for x in (self.equals, self.above, self.below)) != 1:
            raise ValueError("a guard takes exactly one of equals, above, below")
        return self

    @property
    def test(self) -> tuple[str, float]:
        """(``equals`` | ``above`` | ``below``, level)."""
        for name in ("equals", "above", "below"):
            v = getattr(self, name)
            if v is not None:
                return name, float(v)
        raise AssertionError("validated: one test is set")


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
    # ``guard:`` takes one condition or a list (all must hold)
    guards: list[GuardConfig] = Field(
        default_factory=list, max_length=8, validation_alias=AliasChoices("guards", "guard")
    )
    # The clock (``RulesEngine.tick``) confirms a pending condition whose rows stopped
    # (report by exception) only while the device was heard within this long before the
    # condition became due: a device gone silent raises its offline rule, not a stale value.
    max_silence_s: float = Field(300.0, gt=0)
    severity: Severity = Severity.MAJOR
    category: CategoryConfig = Field(default_factory=CategoryConfig)
    message: str = ""

    @field_validator("field")
    @classmethod
    def _one_star(cls, v: str) -> str:
        if v.count("*") > 1:
            raise ValueError("at most one '*' in a field pattern")
        return v

    @field_validator("guards", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict | GuardConfig) else v

    @model_validator(mode="after")
    def _guard_star(self) -> _RuleBase:
        # a guard's '*' binds to the text the rule field's '*' matched; a plain guard field
        # is the same for every subject (e.g. a phase voltage for every circuit)
        if any("*" in g.field for g in self.guards) and "*" not in self.field:
            raise ValueError("a guard field may use '*' only when the rule field does")
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
    # set/clear as shares of a per-subject expected value computed from the device's attrs
    # (``expected_current``: lamps of the circuit x lamp watts / (nominal V x power factor));
    # the rule does not apply to devices without those attrs
    relative_to: Literal["expected_current"] | None = None


class WindowRuleConfig(_Hysteresis):
    """Mean or max of the rows in the last ``window_s`` (at ``window_s / buckets``
    resolution, so irregular timestamps need no resampling) against set/clear levels."""

    family: Literal["window"]
    agg: Literal["mean", "max"] = "mean"
    window_s: float = Field(gt=0)
    buckets: int = Field(30, ge=1, le=240)
    # share of the window's buckets holding at least one row before the aggregate counts
    # (HJ 663 / GB 3095: an hourly mean needs 45 of its 60 minutes, so 0.75); below it
    # the row neither crosses nor releases
    min_coverage: float = Field(0.75, ge=0, le=1)


class StaleRuleConfig(_RuleBase):
    """Deadman: the device sent none of ``field`` (default: anything) for more than
    ``silent_s``; checked by ``RulesEngine.tick`` and cleared by its next row."""

    family: Literal["stale"]
    field: str = "*"
    silent_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _guard_star(self) -> StaleRuleConfig:
        # the subject is the device: a guard names one plain field of it (e.g. on_duty)
        if any("*" in g.field for g in self.guards):
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


class SpikeRuleConfig(_RuleBase):
    """An isolated spike: a row more than ``factor`` times both its neighbours (each taken
    as at least ``floor``), seen when the next row arrives; clears on the row after."""

    family: Literal["spike"]
    factor: float = Field(4.0, gt=1)
    floor: float = Field(1.0, gt=0)


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
        if self.guards:
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


class PlantDetourRuleConfig(_VehicleRule):
    """Kitchen waste taken somewhere other than the treatment plant (suspected illegal
    disposal). A truck is loaded from entering a collection_point until it enters a
    treatment_plant. Loaded and outside every geofence of the ``allowed`` kinds, it raises
    after ``for_s`` of standing still (speed below ``stop_speed_kmh``) or, once every
    collection point listing it has been visited since it last unloaded, of driving outside
    the corridor to a plant: the ellipse round its last collection point and the plant in
    which the way through the truck is at most ``detour_ratio`` times the direct distance
    plus ``corridor_m`` (streets are not straight: an L-shaped route is 1.41 times the
    direct line). Subject: the vehicle; the alarm names the plant nearest to its last
    collection point."""

    family: Literal["plant_detour"]
    for_s: float = Field(gt=0)
    allowed: list[_ZoneKind] = Field(
        default_factory=lambda: ["collection_point", "treatment_plant", "depot"]
    )
    stop_speed_kmh: float = Field(3.0, gt=0)
    detour_ratio: float = Field(1.5, ge=1)
    corridor_m: float = Field(300.0, ge=0)


VehicleRuleConfig = (
    GeofenceRuleConfig
    | StopRuleConfig
    | RouteRuleConfig
    | BannedZoneRuleConfig
    | CoverRuleConfig
    | FleetSpeedRuleConfig
    | CollectionRuleConfig
    | PlantDetourRuleConfig
)
VEHICLE_FAMILIES = (
    "geofence",
    "stop",
    "route",
    "banned_zone",
    "cover_moving",
    "fleet_speed",
    "collection_miss",
    "plant_detour",
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
        Annotated[SpikeRuleConfig, Tag("spike")],
        Annotated[GeofenceRuleConfig, Tag("geofence")],
        Annotated[StopRuleConfig, Tag("stop")],
        Annotated[RouteRuleConfig, Tag("route")],
        Annotated[BannedZoneRuleConfig, Tag("banned_zone")],
        Annotated[CoverRuleConfig, Tag("cover_moving")],
        Annotated[FleetSpeedRuleConfig, Tag("fleet_speed")],
        Annotated[CollectionRuleConfig, Tag("collection_miss")],
        Annotated[PlantDetourRuleConfig, Tag("plant_detour")],
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
    "spike",
    *VEHICLE_FAMILIES,
)
