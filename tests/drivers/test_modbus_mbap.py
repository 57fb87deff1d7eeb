"""Modbus TCP framing from tables of hex frames (spec examples included), frames that must
be rejected, and the block decoder against the per-point codec as its oracle."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.modbus.codec import WIDTH, CodecError, block_decoder, decode_value
from drivers.modbus.mbap import (
    ExceptionResponse,
    FrameError,
    frame,
    parse_read,
    parse_write,
    read_request,
    split,
    write_coil_request,
    write_registers_request,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# (builder, expected request bytes) — PDUs as in the application protocol spec §6.
REQUESTS = [
    (lambda: frame(1, 17, read_request("holding", 107, 3)), "0001 0000 0006 11 03 006B 0003"),
    (lambda: read_request("coil", 19, 19), "01 0013 0013"),
    (lambda: read_request("discrete", 196, 22), "02 00C4 0016"),
    (lambda: read_request("input", 8, 1), "04 0008 0001"),
    (lambda: write_coil_request(172, True), "05 00AC FF00"),
    (lambda: write_coil_request(172, False), "05 00AC 0000"),
    (lambda: write_registers_request(1, [0x000A, 0x0102]), "10 0001 0002 04 000A 0102"),
]


@pytest.mark.parametrize("build,expected", REQUESTS)
def test_requests(build, expected):
    assert build() == h(expected)


@pytest.mark.parametrize(
    "args", [("holding", 0, 0), ("holding", 0, 126), ("coil", 0, 2001), ("nope", 0, 1)]
)
def test_requests_the_spec_forbids(args):
    with pytest.raises(ValueError):
        read_request(*args)


# (answer PDU, function, count, expected values)
ANSWERS = [
    ("03 06 022B 0000 0064", 3, 3, [555, 0, 100]),
    ("04 02 000A", 4, 1, [10]),
    ("01 03 CD 6B 05", 1, 19, [bool(int(c)) for c in "1011001111010110101"]),
    ("02 03 AC DB 35", 2, 22, [bool(int(c)) for c in "0011010111011011101011"]),
]


@pytest.mark.parametrize("pdu,fc,count,expected", ANSWERS)
def test_read_answers(pdu, fc, count, expected):
    assert parse_read(h(pdu), fc, count) == expected


@pytest.mark.parametrize(
    "pdu,fc,count,error",
    [
        ("83 02", 3, 1, ExceptionResponse),  # illegal data address
        ("84 0B", 4, 1, ExceptionResponse),  # gateway target failed to respond
        ("03 04 0001 0002", 3, 1, FrameError),  # two registers for one asked
        ("03 05 0001 0002", 3, 2, FrameError),  # byte count disagrees with the bytes
        ("04 02 0001", 3, 1, FrameError),  # answer to another function
        ("83 02 00", 3, 1, FrameError),  # exception answer too long
        ("01 02 FF", 1, 9, FrameError),  # 9 bits need 2 bytes
        ("", 3, 1, FrameError),
    ],
)
def test_read_answers_rejected(pdu, fc, count, error):
    with pytest.raises(error) as info:
        parse_read(h(pdu), fc, count)
    if error is ExceptionResponse:
        assert info.value.code == h(pdu)[1]


def test_write_answers_echo_the_request():
    coil = write_coil_request(3, True)
    parse_write(coil, coil)
    regs = write_registers_request(1, [1, 2])
    parse_write(h("10 0001 0002"), regs)
    with pytest.raises(FrameError):
        parse_write(h("05 0003 0000"), coil)
    with pytest.raises(ExceptionResponse):
        parse_write(h("90 03"), regs)


def test_split_streams_into_messages():
    one = frame(7, 1, h("03 02 0001"))
    two = frame(8, 2, h("83 02"))
    stream = one + two + one[:5]
    messages, used = split(stream)
    assert messages == [(7, 1, h("03 02 0001")), (8, 2, h("83 02"))]
    assert used == len(one) + len(two)
    assert split(b"")[0] == [] and split(one[:7]) == ([], 0)
    with pytest.raises(FrameError, match="protocol 1"):
        split(h("0001 0001 0003 01 03 00"))
    with pytest.raises(FrameError, match="length 0"):
        split(h("0001 0000 0000 01"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_split_and_parse_never_crash_on_garbage(raw):
    try:
        messages, used = split(raw)
    except FrameError:
        return
    assert 0 <= used <= len(raw)
    for _tid, _unit, pdu in messages:
        for fc, count in ((1, 8), (3, 2)):
            try:
                parse_read(pdu, fc, count)
            except (FrameError, ExceptionResponse):
                pass


_TYPES = sorted(WIDTH)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(_TYPES), st.integers(0, 12)), min_size=1, max_size=8),
    st.lists(st.integers(0, 0xFFFF), min_size=16, max_size=16),
    st.sampled_from(["big", "little"]),
    st.sampled_from(["big", "little"]),
)
def test_block_decoder_agrees_with_the_per_point_codec(points, words, wo, bo):
    pts = [(t, start, 0.1, -5.0) for t, start in points]
    decode = block_decoder(pts, 16, word_order=wo, byte_order=bo)
    got = decode(words)
    for (t, start, scale, offset), value in zip(pts, got):
        want = decode_value(
            words[start : start + WIDTH[t]], t, word_order=wo, byte_order=bo,
            scale=scale, offset=offset,
        )  # fmt: skip
        assert (value is None and want is None) or value == pytest.approx(want, nan_ok=True)


def test_block_decoder_rejects_what_the_codec_rejects():
    decode = block_decoder([("float32", 0, 1.0, 0.0)], 2)
    assert decode(list(struct.unpack(">2H", struct.pack(">f", 25.0)))) == [25.0]
    with pytest.raises(CodecError):
        decode([0x10000, 0])
    with pytest.raises(CodecError):
        decode([1])
    with pytest.raises(CodecError):
        block_decoder([("float64", 0, 1.0, 0.0)], 2)
