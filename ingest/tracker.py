"""Third-party GPS trackers' JSON (one fix per message) as telemetry frames.

The default format is the common "flat fix" these trackers publish, e.g. on
``trackers/<device_id>/gps``::

    {"devId": "TRK-0001", "gpsTime": 1763942400000, "lat": 30.65, "lng": 104.06,
     "spd": 32.5, "dir": 90, "cover": 0}

A message may also carry a JSON array of such objects. Members map to fields of kind
``vehicle``; booleans become 0/1; a missing member is simply not a row. Rows then go
through the same validation as agent batches (inventory, ranges, time window).

One bad member refuses only its own row (``wrong_type``, the raw member kept); a fix
without a usable id or time refuses its own rows (``missing_key`` when absent,
``wrong_type`` otherwise). Only a message with no fix object at all is a bad batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import polars as pl

from contracts.telemetry import BatchError
from ingest.frames import SCHEMA, WRONG_SCHEMA, WRONG_TYPE, is_float_value, raw_json

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
        """The fixes of one message; raises :class:`BatchError` if anything is wrong."""
        good, wrong = self.decode_rows(payload)
        if wrong.height:
            raise BatchError(f"bad tracker fix: {wrong.get_column('raw')[0]}")
        return good

    def decode_rows(self, payload: bytes) -> tuple[pl.DataFrame, pl.DataFrame]:
        """(good rows, refused rows) of one message; :class:`BatchError` if it has no fix."""
        try:
            doc = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BatchError(f"tracker message is not JSON: {exc}") from None
        fixes = doc if isinstance(doc, list) else [doc]
        if not any(isinstance(fix, dict) for fix in fixes):
            raise BatchError("tracker message holds no fix object")
        scale = _TIME_UNITS[self.time_unit]
        rows: list[tuple] = []
        wrong: list[tuple] = []
        for fix in fixes:
            if not isinstance(fix, dict):
                wrong.append((None, self.kind, None, None, None, WRONG_TYPE, raw_json(fix)))
                continue
            dev, t = fix.get(self.id_member), fix.get(self.time_member)
            bad_dev = not isinstance(dev, str) or not dev
            bad_t = (
                isinstance(t, bool)
                or not isinstance(t, int | float)
                or not abs(t * scale) < 9.2e18  # NaN and int64 overflow
            )
            ts = None if bad_t else int(t * scale)  # type: ignore[operator]
            if bad_dev or bad_t:
                absent = (bad_dev and not dev) or (bad_t and t is None)
                reason = "missing_key" if absent else WRONG_TYPE
                raw = {k: fix.get(k) for k in (self.id_member, self.time_member)}
                dev_s = None if bad_dev else dev
                wrong.append((dev_s, self.kind, ts, None, None, reason, raw_json(raw)))
                continue
            for member, field in self.members:
                if member not in fix:
                    continue
                v = fix[member]
                if not is_float_value(v):
                    wrong.append(
                        (dev, self.kind, ts, field, None, WRONG_TYPE, raw_json({member: v}))
                    )
                    continue
                rows.append((dev, self.kind, ts, field, None if v is None else float(v)))
        return (
            pl.DataFrame(rows, schema=SCHEMA, orient="row"),
            pl.DataFrame(wrong, schema=WRONG_SCHEMA, orient="row"),
        )
