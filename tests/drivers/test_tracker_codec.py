"""MQTT tracker JSON codec: good fixes, and garbage rejected with a reason."""

from __future__ import annotations

import json

import pytest

from drivers.mqtt_tracker.codec import FixError, decode_fix
from hardware.profiles import load_profile

PROFILE = load_profile("mqtt_json_tracker")
GOOD = {
    "devId": "TRK-0001",
    "gpsTime": 1763942400000,
    "lat": 30.65,
    "lng": 104.06,
    "spd": 32.5,
    "dir": 90,
    "cover": 0,
}


def _fix(**changes):
    doc = {**GOOD, **changes}
    return json.dumps({k: v for k, v in doc.items() if v is not ...}).encode()


def test_good_fix():
    rows = decode_fix(_fix(), PROFILE, "TRK-0001", "vehicle")
    assert {r.field: r.value for r in rows} == {
        "lat": 30.65,
        "lon": 104.06,
        "speed": 32.5,
        "heading": 90.0,
        "cover_open": 0.0,
    }
    assert {r.ts for r in rows} == {1763942400000 * 1_000_000}
    assert {r.device_id for r in rows} == {"TRK-0001"} and {r.kind for r in rows} == {"vehicle"}


def test_optional_member_may_be_absent_and_bool_maps_to_one():
    rows = decode_fix(_fix(spd=..., cover=True), PROFILE, "TRK-0001", "vehicle")
    values = {r.field: r.value for r in rows}
    assert "speed" not in values and values["cover_open"] == 1.0


@pytest.mark.parametrize(
    "payload,reason",
    [
        (b"", "not JSON"),
        (b"\xff\xfe garbage", "not JSON"),
        (b'{"lat": 30.6', "not JSON"),
        (b"[1, 2]", "not an object"),
        (b"null", "not an object"),
        (_fix(gpsTime=...), "missing time"),
        (_fix(gpsTime="yesterday"), "time member"),
        (_fix(gpsTime=-5), "time member"),
        (_fix(lat=...), "missing member 'lat'"),
        (_fix(lng=None), "missing member 'lng'"),
        (_fix(lat=91.0), "lat 91.0 outside"),
        (_fix(lng=-180.5), "lon -180.5 outside"),
        (_fix(spd="fast"), "not a finite number"),
        (b'{"devId":"TRK-0001","gpsTime":1,"lat":NaN,"lng":104}', "not a finite number"),
        (_fix(devId="TRK-9999"), "names device"),
    ],
)
def test_rejects(payload, reason):
    with pytest.raises(FixError, match=reason):
        decode_fix(payload, PROFILE, "TRK-0001", "vehicle")
