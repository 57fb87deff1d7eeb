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
    ],
    Discriminator(_family),
]
RULE_FAMILIES = ("threshold", "window", "stale", "flatline", "rate", "cross", "astro", "noise")
