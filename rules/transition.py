"""Small value types shared by the numba engine and the reference engine."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Transition", "subject_of"]


@dataclass(frozen=True, slots=True)
class Transition:
    """A rule subject raising or clearing, at the timestamp of the row that caused it."""

    rule_id: str
    device_id: str
    subject: str
    field: str
    kind: Literal["raise", "clear"]
    ts: int
    value: float
    threshold: float
    geofence: str = ""  # id of the geofence a vehicle transition is about ("" for none)
    lat: float | None = None  # where a vehicle was at the transition (None: not a vehicle's)
    lon: float | None = None


def subject_of(device_id: str, field: str, per_field: bool) -> str:
    """The alarm subject: the device, or ``device/field`` for per-field (``*``) rules."""
    return f"{device_id}/{field}" if per_field else device_id
