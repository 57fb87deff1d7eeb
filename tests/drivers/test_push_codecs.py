"""HJ 212 and JT/T 808 codecs from tables of frames, row mapping, replies, CLI decode."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from contracts.config import DeviceConfig
from drivers import hj212, jt808
from drivers.hj212.codec import Hj212Frame, build_reply, crc16, decode_frame, encode_frame
from drivers.hj212.config import frame_rows
from drivers.hj212.config import settings_for as hj_settings
from drivers.jt808 import messages as m
from drivers.jt808.config import location_rows
from drivers.jt808.config import settings_for as jt_settings

FRAMES = Path(__file__).parent / "frames"
HJ = yaml.safe_load((FRAMES / "hj212.yaml").read_text(encoding="utf-8"))
JT = yaml.safe_load((FRAMES / "jt808.yaml").read_text(encoding="utf-8"))
MN = "88888880000001"


def _hj_dev(**address):
    return DeviceConfig(
        id="DM-0001",
        kind="dust_monitor",
        protocol="hj212",
        profile="hj212_dust_monitor",
        endpoint="tcp://127.0.0.1:9212",
        address={"mn": MN, **address},
    )


def test_crc_matches_the_example_printed_in_the_standard():
    data = b"QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;"
    data += b"Flag=5;CP=&&RtdInterval=30&&"
    assert crc16(data) == 0x1C80
    assert encode_frame(data.decode()).endswith(b"&&1C80\r\n")


@pytest.mark.parametrize("case", HJ["ok"], ids=lambda c: c["name"])
def test_hj212_good_frames(case):
    doc = hj212.decode_cli(case["frame"])
    for k, v in case["expect"].items():
        assert doc[k] == v, k


@pytest.mark.parametrize("case", HJ["bad"], ids=lambda c: c["name"])
def test_hj212_bad_frames_are_rejected_with_the_reason(case):
    with pytest.raises(hj212.FrameError) as exc:
        decode_frame(case["frame"])
    assert case["reason"] in str(exc.value)


def test_hj212_rows_flags_units_and_time():
    frame = decode_frame(HJ["ok"][1]["frame"] + "\r\n")
    s = hj_settings(_hj_dev(scale={"noise": 2.0}))
    rows = {r.field: r for r in frame_rows(frame, s, "DM-0001", "dust_monitor")}
    assert rows["pm10"].value == pytest.approx(85.0)  # mg/m3 -> ug/m3 by the profile's scale
    assert rows["pm25"].value == pytest.approx(41.0)
    assert rows["noise"].value == pytest.approx(124.6)  # per-device scale override
    assert "tsp" not in rows and rows["tsp_flag"].value == 5.0  # C (calibration) -> 5
    want = dt.datetime(2025, 11, 24, 2, 15, tzinfo=dt.UTC)  # 10:15 Beijing time
    assert {r.ts for r in rows.values()} == {int(want.timestamp()) * 10**9}
    hourly = decode_frame(HJ["ok"][2]["frame"] + "\r\n")
    fields = {r.field: r.value for r in frame_rows(hourly, s, "DM-0001", "dust_monitor")}
    assert fields == {"pm10_avg_1h": pytest.approx(70.0)}


def test_hj212_reply_only_when_the_ack_bit_asks():
    asked = decode_frame(HJ["ok"][1]["frame"] + "\r\n")
    reply = build_reply(asked)
    assert reply is not None
    back = decode_frame(reply)
    assert (back.cn, back.st, back.qn, back.mn, back.flag) == ("9014", "91", asked.qn, MN, 4)
    assert build_reply(decode_frame(HJ["ok"][2]["frame"] + "\r\n")) is None
    assert build_reply(Hj212Frame("1", "32", "1062", "", MN, 5)) is None  # not a data upload


def test_hj212_cli_accepts_a_typed_crlf():
    doc = hj212.decode_cli(HJ["ok"][0]["frame"] + "\\r\\n")
    assert doc["cp"] == {"RtdInterval": "30"} and doc["reply"] is None


@pytest.mark.parametrize("case", JT["ok"], ids=lambda c: c["name"])
def test_jt808_good_frames(case):
    doc = jt808.decode_cli(case["hex"])
    for k, v in case["expect"].items():
        assert doc[k] == v, k
    for k, v in case.get("body", {}).items():
        assert doc["body"][k] == (pytest.approx(v) if isinstance(v, float) else v), k


@pytest.mark.parametrize("case", JT["bad"], ids=lambda c: c["name"])
def test_jt808_bad_frames_are_rejected_with_the_reason(case):
    with pytest.raises(jt808.FrameError) as exc:
        jt808.decode_cli(case["hex"])
    assert case["reason"] in str(exc.value)


def test_jt808_round_trip_escaping_and_both_headers():
    body = bytes(range(0x70, 0x80)) * 3  # holds 0x7d and 0x7e
    for version in (None, 1):
        raw = jt808.encode_frame(0x0900, "013912345678", 0x7E7D, body, version=version)
        assert raw.count(b"\x7e") == 2
        f = jt808.decode_frame(raw)
        assert (f.msg_id, f.phone, f.serial, f.body, f.version) == (
            0x0900,
            "13912345678",
            0x7E7D,
            body,
            version,
        )


def test_jt808_location_rows_south_west_bits_and_extra():
    dev = DeviceConfig(
        id="TRK-9",
        kind="vehicle",
        protocol="jt808",
        profile="jt808_tracker",
        endpoint="tcp://127.0.0.1:9808",
        address={"phone": "013800138000"},
    )
    s = jt_settings(dev)
    assert s.phone == "13800138000"
    when = dt.datetime(2025, 11, 24, 2, 15, tzinfo=dt.UTC)
    body = m.location_body(
        -30.5,
        -104.25,
        when,
        alarm=1 << 1,
        status=(1 << 12) | 1,
        speed_kmh=42.3,
        direction=270,
        extra={0x01: (1234).to_bytes(4, "big")},
    )
    loc = m.decode_location(body)
    rows = {r.field: r.value for r in location_rows(loc, s, "TRK-9", "vehicle")}
    assert rows == {
        "lat": -30.5,
        "lon": -104.25,
        "speed": pytest.approx(42.3),
        "heading": 270.0,
        "altitude": 0.0,
        "acc_on": 1.0,
        "cover_open": 1.0,
        "alarm_overspeed": 1.0,
        "odometer": pytest.approx(123.4),
    }
    assert loc["ts"] == int(when.timestamp()) * 10**9
    batch = m.BATCH_LOCATION
    frame_body = b"\x00\x02\x01" + b"".join(len(body).to_bytes(2, "big") + body for _ in "ab")
    f = jt808.decode_frame(jt808.encode_frame(batch, "13800138000", 5, frame_body))
    doc = m.decode_body(f)
    assert doc["count"] == 2 and doc["type"] == "blind_area" and len(doc["items"]) == 2
