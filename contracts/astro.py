"""Astronomical clock (shared by the simulators and the lighting rules): sunrise and sunset
for a place and day, and the switching rule.

Uses the NOAA solar equations (fractional-year series for the equation of time and the
declination, zenith 90.833° for refraction and the solar disc), iterated once so the
series is evaluated at the event's own hour. Good to about a minute at Chengdu's latitude.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone

__all__ = ["CST", "sun_times", "lights_on", "switch_times"]

CST = timezone(timedelta(hours=8), "CST")  # China Standard Time; no daylight saving
_ZENITH = math.radians(90.833)


def _solar(doy: int, hour_utc: float) -> tuple[float, float]:
    """(equation of time in minutes, declination in radians) at a UTC hour of a day."""
    g = 2 * math.pi / 365 * (doy - 1 + (hour_utc - 12) / 24)
    eqtime = 229.18 * (
        0.000075
        + 0.001868 * math.cos(g)
        - 0.032077 * math.sin(g)
        - 0.014615 * math.cos(2 * g)
        - 0.040849 * math.sin(2 * g)
    )
    decl = (
        0.006918
        - 0.399912 * math.cos(g)
        + 0.070257 * math.sin(g)
        - 0.006758 * math.cos(2 * g)
        + 0.000907 * math.sin(2 * g)
        - 0.002697 * math.cos(3 * g)
        + 0.00148 * math.sin(3 * g)
    )
    return eqtime, decl


def _event_minutes(lat: float, lon: float, doy: int, rising: bool) -> float | None:
    """Minutes after 00:00 UTC of the event, or None if the sun does not rise/set that day."""
    minutes = 720.0 - 4 * lon + (-360 if rising else 360)  # first guess: 6 h from solar noon
    phi = math.radians(lat)
    for _ in range(3):
        eqtime, decl = _solar(doy, minutes / 60)
        cos_ha = math.cos(_ZENITH) / (math.cos(phi) * math.cos(decl)) - math.tan(phi) * math.tan(
            decl
        )
        if not -1.0 <= cos_ha <= 1.0:
            return None  # polar day or night
        ha = math.degrees(math.acos(cos_ha))
        minutes = 720.0 - 4 * (lon + (ha if rising else -ha)) - eqtime
    return minutes


def sun_times(lat: float, lon: float, day: date) -> tuple[datetime | None, datetime | None]:
    """Sunrise and sunset (UTC-aware datetimes) for the local calendar ``day`` at a place."""
    doy = day.timetuple().tm_yday
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    out: list[datetime | None] = []
    for rising in (True, False):
        m = _event_minutes(lat, lon, doy, rising)
        out.append(None if m is None else midnight + timedelta(minutes=m))
    return out[0], out[1]


def switch_times(
    lat: float, lon: float, day: date, on_offset_min: float = 0.0, off_offset_min: float = 0.0
) -> tuple[datetime, datetime]:
    """(lights off in the morning, lights on in the evening) for a local day, with offsets.

    Offsets are minutes added to sunrise (off) and sunset (on); a positive on-offset
    switches on later than sunset.
    """
    rise, set_ = sun_times(lat, lon, day)
    if rise is None or set_ is None:
        raise ValueError(f"no sunrise/sunset at lat {lat} on {day}")
    return rise + timedelta(minutes=off_offset_min), set_ + timedelta(minutes=on_offset_min)


def lights_on(
    lat: float, lon: float, when: datetime, on_offset_min: float = 0.0, off_offset_min: float = 0.0
) -> bool:
    """Whether the astronomical clock has the lights on at ``when`` (an aware datetime)."""
    local_day = when.astimezone(CST).date()
    off, on = switch_times(lat, lon, local_day, on_offset_min, off_offset_min)
    return not off <= when < on
