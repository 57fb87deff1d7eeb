"""Pure codec of a tracker's JSON fix, mapped by the device profile.

    {"devId": "TRK-0001", "gpsTime": 1763942400000, "lat": 30.65, "lng": 104.06,
     "spd": 32.5, "dir": 90, "cover": 0}
      -> rows lat, lon, speed, heading, cover_open at ts = gpsTime (ms -> ns)

The profile names the members (``points[].member``), the time member and its unit, and
the member that names the device. A fix without time or position, with a position off
the globe, or with a non-numeric value is rejected with :class:`FixError`.
"""

from __future__ import annotations

import json
import math
from typing import Any

from contracts.telemetry import TelemetryRow
from hardware.profiles import Profile

__all__ = ["FixError", "decode_fix", "TIME_UNITS"]

TIME_UNITS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_RANGES = {"lat": (-90.0, 90.0), "lon": (-180.0, 180.0)}
_REQUIRED = ("lat", "lon")


class FixError(ValueError):
    """A payload that is not a usable fix; the message says why."""


def _number(doc: dict[str, Any], member: str) -> float:
    v = doc[member]
    if isinstance(v, bool):
        return 1.0 if v else 0.0
    if not isinstance(v, (int, float)) or not math.isfinite(v):
        raise FixError(f"member {member!r} is not a finite number: {v!r}")
    return float(v)


def decode_fix(payload: bytes, profile: Profile, device_id: str, kind: str) -> list[TelemetryRow]:
    """Rows of one fix; FixError for garbage, missing members or impossible positions."""
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FixError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise FixError(f"fix is a JSON {type(doc).__name__}, not an object")
    if profile.id_member and profile.id_member in doc and str(doc[profile.id_member]) != device_id:
        raise FixError(f"fix names device {doc[profile.id_member]!r}, expected {device_id!r}")
    time_member = profile.time.get("member")
    unit = profile.time.get("unit", "ms")
    if unit not in TIME_UNITS:
        raise FixError(f"profile time unit {unit!r} not one of {sorted(TIME_UNITS)}")
    if not time_member or time_member not in doc:
        raise FixError(f"missing time member {time_member!r}")
    t = doc[time_member]
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
        raise FixError(f"time member {time_member!r} is not a positive number: {t!r}")
    ts = int(t * TIME_UNITS[unit])
    rows: list[TelemetryRow] = []
    for p in profile.points:
        member = p.member or p.key
        if member not in doc or doc[member] is None:
            if p.key in _REQUIRED:
                raise FixError(f"missing member {member!r} ({p.key})")
            continue  # optional members may be absent on some tracker firmwares
        value = _number(doc, member)
        lo_hi = _RANGES.get(p.key)
        if lo_hi and not lo_hi[0] <= value <= lo_hi[1]:
            raise FixError(f"{p.key} {value} outside {lo_hi[0]}..{lo_hi[1]}")
        rows.append(TelemetryRow(device_id, kind, ts, p.key, value * p.scale + p.offset))
    return rows
