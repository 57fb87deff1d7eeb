"""Geofences in the deployment config: the places vehicle rules and fleet maps know about.

Coordinates are WGS-84 ``[lon, lat]`` pairs (GeoJSON order). A zone is a polygon, or a
circle given by ``center`` and ``radius_m``; a route is a polyline with a corridor width.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from contracts._model import ID_PATTERN, Model

__all__ = ["GeofenceConfig", "GEOFENCE_KINDS"]

GEOFENCE_KINDS = (
    "construction_site",  # 工地: where construction-waste trucks load
    "disposal_site",  # 消纳场: where they may unload
    "treatment_plant",  # kitchen-waste treatment plant
    "collection_point",  # registered kitchen-waste collection point (restaurant)
    "depot",  # where trucks park off duty
    "banned_zone",  # no trucks (of the listed fleets) during the listed hours
    "approved_route",  # the corridor a truck must stay in
)


class GeofenceConfig(Model):
    """One place or corridor."""

    id: str = Field(pattern=ID_PATTERN)
    kind: Literal[
        "construction_site",
        "disposal_site",
        "treatment_plant",
        "collection_point",
        "depot",
        "banned_zone",
        "approved_route",
    ]
    name: str = ""
    polygon: list[tuple[float, float]] | None = None  # closed or open ring of [lon, lat]
    center: tuple[float, float] | None = None  # [lon, lat]
    radius_m: float | None = Field(None, gt=0)
    line: list[tuple[float, float]] | None = None  # approved_route: polyline of [lon, lat]
    corridor_m: float = Field(100.0, gt=0)  # approved_route: allowed distance from the line
    buffer_m: float = Field(30.0, ge=0)  # GPS noise allowance at the boundary
    fleets: list[str] = Field(default_factory=list)  # empty: applies to every fleet
    hours: tuple[str, str] | None = None  # banned_zone: local "HH:MM" start and end
    vehicles: list[str] = Field(default_factory=list)  # approved_route / collection_point: who

    @model_validator(mode="after")
    def _shape(self) -> GeofenceConfig:
        if self.kind == "approved_route":
            if not self.line or len(self.line) < 2:
                raise ValueError("an approved_route needs a line of at least 2 [lon, lat] points")
        elif self.polygon is None and (self.center is None or self.radius_m is None):
            raise ValueError("a zone needs a polygon, or a center and radius_m")
        if self.polygon is not None and len(self.polygon) < 3:
            raise ValueError("a polygon needs at least 3 [lon, lat] points")
        for lon, lat in (
            (self.polygon or []) + (self.line or []) + ([self.center] if self.center else [])
        ):
            if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                raise ValueError(f"[lon, lat] out of range: [{lon}, {lat}]")
        return self
