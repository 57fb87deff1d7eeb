"""Pure codec of JT/T 808 frames (2013 and 2019 headers).

    7e | msg id u16 | body attrs u16 | [version u8] | phone BCD[6|10] | serial u16 |
         [packets u16, index u16] | body | xor | 7e

Between the 0x7e flags, 0x7e is sent as 7d 02 and 0x7d as 7d 01. The check byte is the
XOR of every unescaped byte from the message id to the end of the body. Body attributes:
bits 0-9 body length, 10-12 encryption, 13 split into packets, 14 the 2019 version flag
(then a version byte and a 10-byte BCD phone follow; 2013 has a 6-byte phone).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "FrameError",
    "Jt808Frame",
    "unescape",
    "escape",
    "xor_check",
    "decode_frame",
    "encode_frame",
    "bcd_to_str",
    "str_to_bcd",
]

_LEN_MASK = 0x03FF
_ENC_SHIFT = 10
_SPLIT_BIT = 1 << 13
_V2019_BIT = 1 << 14


class FrameError(ValueError):
    """A frame that is not valid JT/T 808; the message says exactly why."""


@dataclass(frozen=True)
class Jt808Frame:
    """One decoded frame: header and raw body (messages are decoded in ``messages``)."""

    msg_id: int
    phone: str
    serial: int
    body: bytes
    version: int | None = None  # None: 2013 header; else the 2019 protocol version byte
    encryption: int = 0
    packets: int | None = None
    index: int | None = None


def unescape(data: bytes) -> bytes:
    """Undo 7d 02 -> 7e and 7d 01 -> 7d; FrameError for any other escape."""
    if 0x7D not in data:
        return data
    out = bytearray()
    i = 0
    while i < len(data):
        b = data[i]
        if b == 0x7D:
            nxt = data[i + 1] if i + 1 < len(data) else None
            if nxt == 0x02:
                out.append(0x7E)
            elif nxt == 0x01:
                out.append(0x7D)
            else:
                got = "end of frame" if nxt is None else f"0x{nxt:02x}"
                raise FrameError(f"bad escape at byte {i}: 0x7d followed by {got}")
            i += 2
        else:
            out.append(b)
            i += 1
    return bytes(out)


def escape(data: bytes) -> bytes:
    """Escape 0x7d and 0x7e for sending."""
    return data.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")


def xor_check(data: bytes) -> int:
    """The XOR of every byte."""
    x = 0
    for b in data:
        x ^= b
    return x


def bcd_to_str(data: bytes, what: str) -> str:
    """Packed BCD digits as text; FrameError for a nibble above 9."""
    text = data.hex()
    if not text.isdigit():
        raise FrameError(f"bad BCD in {what}: {text}")
    return text


def str_to_bcd(digits: str, size: int) -> bytes:
    """Digits left-padded with zeros to ``size`` BCD bytes."""
    if not digits.isascii() or not digits.isdigit() or len(digits) > size * 2:
        raise FrameError(f"{digits!r} is not at most {size * 2} decimal digits")
    return bytes.fromhex(digits.rjust(size * 2, "0"))


def decode_frame(raw: bytes) -> Jt808Frame:
    """Decode one frame with or without its 0x7e flags; FrameError with the exact reason."""
    if raw[:1] == b"\x7e":
        if len(raw) < 2 or raw[-1] != 0x7E:
            raise FrameError("frame starts with 0x7e but does not end with 0x7e")
        raw = raw[1:-1]
    if b"\x7e" in raw:
        raise FrameError("unescaped 0x7e inside the frame")
    data = unescape(raw)
    if len(data) < 13:
        raise FrameError(f"frame of {len(data)} bytes is shorter than the 13-byte minimum")
    check, data = data[-1], data[:-1]
    want = xor_check(data)
    if check != want:
        raise FrameError(f"bad check code: expected 0x{want:02x}, got 0x{check:02x}")
    msg_id, attrs = struct.unpack_from(">HH", data, 0)
    length = attrs & _LEN_MASK
    if attrs & _V2019_BIT:
        if len(data) < 17:
            raise FrameError(f"2019 header needs 17 bytes, frame has {len(data)}")
        version: int | None = data[4]
        phone = bcd_to_str(data[5:15], "phone")
        pos = 15
    else:
        version = None
        phone = bcd_to_str(data[4:10], "phone")
        pos = 10
    (serial,) = struct.unpack_from(">H", data, pos)
    pos += 2
    packets = index = None
    if attrs & _SPLIT_BIT:
        if len(data) < pos + 4:
            raise FrameError("packet fields missing from a split message header")
        packets, index = struct.unpack_from(">HH", data, pos)
        pos += 4
        if not 1 <= index <= packets:
            raise FrameError(f"packet index {index} outside 1..{packets}")
    body = data[pos:]
    if len(body) != length:
        raise FrameError(f"body length mismatch: header says {length}, body is {len(body)}")
    return Jt808Frame(
        msg_id=msg_id,
        phone=phone.lstrip("0") or "0",
        serial=serial,
        body=body,
        version=version,
        encryption=(attrs >> _ENC_SHIFT) & 0x7,
        packets=packets,
        index=index,
    )


def encode_frame(
    msg_id: int, phone: str, serial: int, body: bytes, *, version: int | None = None
) -> bytes:
    """A whole escaped frame with flags (single packet, no encryption)."""
    if len(body) > _LEN_MASK:
        raise FrameError(f"body of {len(body)} bytes exceeds {_LEN_MASK}")
    attrs = len(body)
    if version is None:
        head = struct.pack(">HH", msg_id, attrs) + str_to_bcd(phone, 6)
    else:
        head = struct.pack(">HHB", msg_id, attrs | _V2019_BIT, version) + str_to_bcd(phone, 10)
    data = head + struct.pack(">H", serial & 0xFFFF) + body
    return b"\x7e" + escape(data + bytes([xor_check(data)])) + b"\x7e"
