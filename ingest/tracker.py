"""Third-party GPS trackers' JSON (one fix per message) as telemetry frames.

The default format is the common "flat fix" these trackers publish, e.g. on
``trackers/<device_id>/gps``::

    {"devId": "TRK-0001", "gpsTime": 1763942400000, "lat": 30.65, "lng": 104.06,
     "spd": 32.5, "dir": 90, "cover": 0}

A message may also carry a JSON array of such objects. Members map to fields of kind
``vehicle``; booleans become 0/1; a missing member is simply not a row. Rows then go
through the same validation as agent batches (inventory, ranges, time window).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import polars as pl

from contracts.telemetry import BatchError
from ingest.frames import SCHEMA

__all__ = ["TrackerFormat"]

_TIME_UNITS = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


@dataclass(frozen=True, slots=True)
class TrackerFormat:
    """Where a tracker's JSON keeps the device id, the fix time and each quantity."""

    id_member: str = "devId"
    time_member: str = "gpsTime"
    time_unit: str = "ms"
    kind: str = "vehicle"
    members: tuple[tuple[str, str], ...] = (
        ("lat", "lat"),
        ("lng", "lon"),
        ("spd", "speed"),
        ("dir", "heading"),
        ("cover", "cover_open"),
    )

    def decode(self, payload: bytes) -> pl.DataFrame:
        """The fixes of one message; raises :class:`BatchError` naming what is wrong."""
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BatchError(f"tracker message is not JSON: {exc}") from None
        fixes = doc if isinstance(doc, list) else [doc]
        scale = _TIME_UNITS[self.time_unit]
        rows = []
        for fix in fixes:
            if not isinstance(fix, dict):
                raise BatchError("tracker fix is not a JSON object")
            dev, t = fix.get(self.id_member), fix.get(self.time_member)
            if not isinstance(dev, str) or not dev:
                raise BatchError(f"tracker fix without a string {self.id_member!r}")
            if isinstance(t, bool) or not isinstance(t, int | float):
                raise BatchError(f"tracker fix without a numeric {self.time_member!r}")
            for member, field in self.members:
                if member not in fix:
                    continue
                v = fix[member]
                if v is not None and not isinstance(v, int | float):
                    raise BatchError(f"tracker member {member!r} is not a number: {v!r}")
                rows.append(
                    (dev, self.kind, int(t * scale), field, None if v is None else float(v))
                )
        return pl.DataFrame(rows, schema=SCHEMA, orient="row")
