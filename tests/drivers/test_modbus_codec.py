"""Modbus codec: register sets (hex) to values, in every word and byte order, and rejects."""

from __future__ import annotations

import math

import pytest

from drivers.modbus.codec import CodecError, decode_bits, decode_value, encode_value

# (registers, type, word_order, byte_order, scale, offset, expected)
CASES = [
    ([0x41C8, 0x0000], "float32", "big", "big", 1.0, 0.0, 25.0),  # ABCD
    ([0x0000, 0x41C8], "float32", "little", "big", 1.0, 0.0, 25.0),  # CDAB
    ([0xC841, 0x0000], "float32", "big", "little", 1.0, 0.0, 25.0),  # BADC
    ([0x0000, 0xC841], "float32", "little", "little", 1.0, 0.0, 25.0),  # DCBA
    ([0x3D4C, 0xCCCD], "float32", "big", "big", 1000.0, 0.0, 50.0),  # 0.05 mg/m³ -> µg/m³
    ([0xCCCD, 0x3D4C], "float32", "little", "big", 1000.0, 0.0, 50.0),
    ([0xFFFF], "int16", "big", "big", 1.0, 0.0, -1.0),
    ([0xFFFF], "uint16", "big", "big", 1.0, 0.0, 65535.0),
    ([0x8000], "int16", "big", "big", 1.0, 0.0, -32768.0),
    ([0x0100], "uint16", "big", "little", 1.0, 0.0, 1.0),
    ([0x0001, 0x0000], "uint32", "big", "big", 0.1, 0.0, 6553.6),
    ([0x0000, 0x0001], "uint32", "little", "big", 0.1, 0.0, 6553.6),
    ([0xFFFF, 0xFFFE], "int32", "big", "big", 1.0, 0.0, -2.0),
    ([0x00FA], "int16", "big", "big", 0.1, -40.0, -15.0),  # 250 * 0.1 - 40
    ([0x4059, 0x0000, 0x0000, 0x0000], "float64", "big", "big", 1.0, 0.0, 100.0),
    ([0x0000, 0x0000, 0x0000, 0x4059], "float64", "little", "big", 1.0, 0.0, 100.0),
    ([0x0001], "bool", "big", "big", 1.0, 0.0, 1.0),
    ([0x0000], "bool", "big", "big", 1.0, 0.0, 0.0),
]


@pytest.mark.parametrize("regs,type_,wo,bo,scale,offset,expected", CASES)
def test_decode(regs, type_, wo, bo, scale, offset, expected):
    got = decode_value(regs, type_, word_order=wo, byte_order=bo, scale=scale, offset=offset)
    assert got == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize(
    "regs,type_,wo,bo,scale,offset,expected", [c for c in CASES if c[1] != "bool"]
)
def test_encode_is_the_inverse(regs, type_, wo, bo, scale, offset, expected):
    out = encode_value(expected, type_, word_order=wo, byte_order=bo, scale=scale, offset=offset)
    back = decode_value(out, type_, word_order=wo, byte_order=bo, scale=scale, offset=offset)
    assert back == pytest.approx(expected, rel=1e-6)
    if type_ != "float32" or scale == 1.0:
        assert out == regs


def test_nan_is_no_reading():
    assert decode_value([0x7FC0, 0x0000], "float32") is None
    assert decode_value([0x7F80, 0x0000], "float32") is None  # +inf


@pytest.mark.parametrize(
    "regs,type_,reason",
    [
        ([0x41C8], "float32", "needs 2"),
        ([0x0000, 0x0000, 0x0000], "float32", "needs 2"),
        ([0x1, 0x2], "int16", "needs 1"),
        ([0x10000, 0], "uint32", "16-bit"),
        ([-1], "int16", "16-bit"),
        ([0x1], "int8", "unknown type"),
        (["ab", 0], "float32", "16-bit"),
    ],
)
def test_rejects(regs, type_, reason):
    with pytest.raises(CodecError, match=reason):
        decode_value(regs, type_)


def test_encode_rejects_overflow_and_nan():
    with pytest.raises(CodecError, match="does not fit"):
        encode_value(70000, "int16")
    with pytest.raises(CodecError, match="finite"):
        encode_value(math.nan, "int32")


def test_bits():
    assert decode_bits([True]) == 1.0
    assert decode_bits([0]) == 0.0
    with pytest.raises(CodecError):
        decode_bits([True, False])
