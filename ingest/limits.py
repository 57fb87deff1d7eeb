"""Physical plausibility per (kind, field): values outside are quarantined as out_of_range.

The defaults suit Chengdu's devices (positions inside China's bounding box, speeds of
city trucks, the ranges of the dust monitors and cabinet meters in hardware/profiles).
A deployment overrides or extends them with :func:`limits_frame`'s ``overrides``; a
field with no entry is not range-checked. Bounds are inclusive; ``"*"`` as a field
stands for the channel number of ``circuit<n>_...`` fields.
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

__all__ = ["DEFAULT_LIMITS", "Limits", "config_limits", "limits_frame", "field_key"]

#: (kind, field) -> (min, max), inclusive.
Limits = Mapping[tuple[str, str], tuple[float, float]]

DEFAULT_LIMITS: dict[tuple[str, str], tuple[float, float]] = {
    # vehicles: China's bounding box; a city truck does not exceed 200 km/h
    ("vehicle", "lat"): (18.0, 54.0),
    ("vehicle", "lon"): (73.0, 136.0),
    ("vehicle", "speed"): (0.0, 200.0),
    ("vehicle", "heading"): (0.0, 360.0),
    ("vehicle", "altitude"): (-200.0, 6000.0),
    ("vehicle", "odometer"): (0.0, 5_000_000.0),
    # dust monitors, µg/m³ after scaling; dB(A); m/s; °C; %RH
    ("dust_monitor", "pm25"): (0.0, 10_000.0),
    ("dust_monitor", "pm10"): (0.0, 10_000.0),
    ("dust_monitor", "tsp"): (0.0, 20_000.0),
    ("dust_monitor", "noise"): (20.0, 140.0),
    ("dust_monitor", "wind_speed"): (0.0, 75.0),
    ("dust_monitor", "wind_direction"): (0.0, 360.0),
    ("dust_monitor", "temperature"): (-40.0, 70.0),
    ("dust_monitor", "humidity"): (0.0, 100.0),
    # lighting cabinets: 380/220 V supply, kA-free feeders
    ("lighting_cabinet", "voltage_l1"): (0.0, 500.0),
    ("lighting_cabinet", "voltage_l2"): (0.0, 500.0),
    ("lighting_cabinet", "voltage_l3"): (0.0, 500.0),
    ("lighting_cabinet", "current_l1"): (0.0, 1000.0),
    ("lighting_cabinet", "current_l2"): (0.0, 1000.0),
    ("lighting_cabinet", "current_l3"): (0.0, 1000.0),
    ("lighting_cabinet", "active_power"): (-10.0, 1000.0),
    ("lighting_cabinet", "power_factor"): (-1.0, 1.0),
    ("lighting_cabinet", "leakage_current"): (0.0, 10_000.0),
    ("lighting_cabinet", "temperature"): (-40.0, 90.0),
    ("lighting_cabinet", "humidity"): (0.0, 100.0),
    ("lighting_cabinet", "circuit*_current"): (0.0, 1000.0),
    ("lighting_cabinet", "circuit*_on"): (0.0, 1.0),
}


def limits_frame(overrides: Limits | None = None) -> pl.DataFrame:
    """The limits as a frame (kind, field or pattern, lo, hi) for a vectorised join."""
    table = {**DEFAULT_LIMITS, **(overrides or {})}
    rows = [(k, f, float(lo), float(hi)) for (k, f), (lo, hi) in table.items()]
    for k, f, lo, hi in rows:
        if not lo <= hi:
            raise ValueError(f"limits for {k}.{f}: min {lo} > max {hi}")
    return pl.DataFrame(
        rows,
        schema={"kind": pl.Utf8, "field": pl.Utf8, "_lo": pl.Float64, "_hi": pl.Float64},
        orient="row",
    )


def config_limits(section: Mapping[str, tuple[float, float]]) -> Limits:
    """The config's ``ingest.limits`` (``"kind.field": [lo, hi]``) keyed by (kind, field)."""
    out: dict[tuple[str, str], tuple[float, float]] = {}
    for key, (lo, hi) in section.items():
        kind, _, field = key.partition(".")
        out[(kind, field)] = (float(lo), float(hi))
    return out


def field_key(expr: pl.Expr) -> pl.Expr:
    """The lookup key of a field name: digits of numbered channels become ``*``."""
    return expr.str.replace(r"^(circuit)\d+_", "${1}*_")
