"""Fuzz every decoder: arbitrary input never raises anything but the codec's own error."""

from __future__ import annotations

import json
import struct

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.config import DeviceConfig
from drivers.hj212 import codec as hjc
from drivers.hj212.config import frame_rows
from drivers.hj212.config import settings_for as hj_settings
from drivers.jt808 import codec as jtc
from drivers.jt808 import decode_cli
from drivers.jt808 import messages as m
from drivers.jt808.config import location_rows
from drivers.jt808.config import settings_for as jt_settings
from drivers.modbus.codec import WIDTH, CodecError, decode_bits, decode_value
from drivers.mqtt_tracker.codec import FixError, decode_fix
from hardware.profiles import load_profile

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=300)
HJ = hj_settings(
    DeviceConfig(
        id="DM-1",
        kind="dust_monitor",
        protocol="hj212",
        profile="hj212_dust_monitor",
        endpoint="tcp://127.0.0.1:1",
        address={"mn": "MN1"},
    )
)
JT = jt_settings(
    DeviceConfig(
        id="TRK-1",
        kind="vehicle",
        protocol="jt808",
        profile="jt808_tracker",
        endpoint="tcp://127.0.0.1:1",
        address={"phone": "13800138000"},
    )
)
TRACKER = load_profile("mqtt_json_tracker")
# Pieces of real frames make the fuzzer reach the deeper parsers more often.
HJ_PIECES = st.lists(
    st.sampled_from(
        [
            "QN=20251124101500123",
            "ST=22",
            "CN=2011",
            "CN=2061",
            "MN=MN1",
            "Flag=5",
            "PW=1",
            "CP=&&",
            "&&",
            ";",
            ",",
            "=",
            "-",
            "a34002-Rtd=",
            "a34002-Flag=",
            "N",
            "C",
            "X",
            "DataTime=20251124101500",
            "DataTime=2025",
            "1.5",
            "-0",
            "abc",
            "a34002-Avg=1",
        ]
    ),  # fmt: skip
    max_size=30,
).map("".join)


@FUZZ
@given(st.binary(max_size=300) | TEXT.map(lambda t: t.encode("utf-8")))
def test_hj212_arbitrary_bytes(raw):
    try:
        hjc.decode_frame(raw)
    except hjc.FrameError:
        pass


@FUZZ
@given(TEXT | HJ_PIECES)
def test_hj212_arbitrary_data_segment_with_a_valid_crc(data):
    try:
        frame = hjc.decode_frame(hjc.encode_frame(data))
        frame_rows(frame, HJ, "DM-1", "dust_monitor")
        hjc.build_reply(frame)
    except hjc.FrameError:
        pass


@FUZZ
@given(st.binary(max_size=200))
def test_jt808_arbitrary_bytes(raw):
    try:
        f = jtc.decode_frame(raw)
        m.decode_body(f)
    except jtc.FrameError:
        pass
    try:
        decode_cli(raw.hex())
    except jtc.FrameError:
        pass


@FUZZ
@given(
    st.sampled_from([m.REGISTER, m.AUTH, m.HEARTBEAT, m.LOCATION, m.BATCH_LOCATION, 0x0900]),
    st.binary(max_size=120),
    st.sampled_from([None, 1]),
    st.integers(0, 0xFFFF),
)
def test_jt808_arbitrary_body_in_a_valid_frame(msg_id, body, version, attrs_extra):
    raw = jtc.encode_frame(msg_id, "13800138000", 1, body, version=version)
    # also flip header attribute bits (encryption, split) while keeping the check valid
    data = bytearray(jtc.unescape(raw[1:-1])[:-1])
    struct.pack_into(">H", data, 2, (len(body) & 0x3FF) | (attrs_extra & 0xFC00))
    flipped = b"\x7e" + jtc.escape(bytes(data) + bytes([jtc.xor_check(bytes(data))])) + b"\x7e"
    for frame_bytes in (raw, flipped):
        try:
            f = jtc.decode_frame(frame_bytes)
            doc = m.decode_body(f)
            if f.msg_id == m.LOCATION and doc:
                location_rows(doc, JT, "TRK-1", "vehicle")
        except jtc.FrameError:
            pass


@FUZZ
@given(
    st.lists(st.integers(-(2**17), 2**17) | st.none() | st.floats(), max_size=5),
    st.sampled_from([*WIDTH, "int8", ""]),
    st.sampled_from(["big", "little"]),
    st.sampled_from(["big", "little"]),
)
def test_modbus_register_decode(words, type_, word_order, byte_order):
    try:
        decode_value(words, type_, word_order=word_order, byte_order=byte_order, scale=0.1)
    except CodecError:
        pass
    try:
        decode_bits(words)
    except CodecError:
        pass


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids),
    max_leaves=10,
)
TRACKER_DOCS = st.fixed_dictionaries(
    {},
    optional={k: JSON for k in ("devId", "gpsTime", "lat", "lng", "spd", "dir", "cover")},
)


@FUZZ
@given(st.binary(max_size=200) | TRACKER_DOCS.map(lambda d: json.dumps(d).encode()))
def test_tracker_json(payload):
    try:
        decode_fix(payload, TRACKER, "TRK-0001", "vehicle")
    except FixError:
        pass
