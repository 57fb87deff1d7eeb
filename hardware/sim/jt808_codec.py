"""JT/T 808 framing for the device side: escaping, XOR check code, 2013/2019 headers, bodies.

A frame is 0x7E + escaped(header + body + check) + 0x7E, where the check code is the XOR
of header and body and escaping maps 0x7E → 0x7D 0x02 and 0x7D → 0x7D 0x01. The 2013
header is id(2) props(2) phone(BCD 6) serial(2); the 2019 header sets props bit 14 and
adds a protocol version byte and a 10-byte BCD phone. Multi-byte fields are big-endian.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from datetime import datetime

from contracts.astro import CST

__all__ = [
    "escape",
    "unescape",
    "check_code",
    "bcd",
    "Message",
    "encode",
    "decode",
    "location_body",
    "register_body",
    "auth_body",
    "STATUS_ACC",
    "STATUS_FIX",
    "STATUS_COVER",
    "ALARM_OVERSPEED",
]

STATUS_ACC, STATUS_FIX, STATUS_COVER = 1 << 0, 1 << 1, 1 << 12  # cover: door 1 per the profile
ALARM_OVERSPEED = 1 << 1


def escape(raw: bytes) -> bytes:
    """Escape 0x7D first, then 0x7E (so the inserted 0x7D are not escaped again)."""
    return raw.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")


def unescape(data: bytes) -> bytes:
    """Undo :func:`escape`; ValueError on a dangling or unknown escape."""
    out, i = bytearray(), 0
    while i < len(data):
        b = data[i]
        if b == 0x7D:
            if i + 1 >= len(data) or data[i + 1] not in (1, 2):
                raise ValueError("bad JT/T 808 escape sequence")
            out.append(0x7D if data[i + 1] == 1 else 0x7E)
            i += 2
        else:
            out.append(b)
            i += 1
    return bytes(out)


def check_code(raw: bytes) -> int:
    """XOR of every byte."""
    x = 0
    for b in raw:
        x ^= b
    return x


def bcd(digits: str, size: int) -> bytes:
    """Left-zero-padded packed BCD of ``size`` bytes."""
    digits = digits.rjust(size * 2, "0")
    if len(digits) != size * 2 or not digits.isdigit():
        raise ValueError(f"cannot pack {digits!r} into {size} BCD bytes")
    return bytes.fromhex(digits)


@dataclass(frozen=True)
class Message:
    """A decoded frame."""

    msg_id: int
    phone: str
    serial: int
    body: bytes
    version: int | None = None  # None: 2013 header; else the 2019 protocol version


def encode(msg_id: int, phone: str, serial: int, body: bytes, version: int | None = None) -> bytes:
    """A whole escaped frame with flags."""
    if len(body) > 0x3FF:
        raise ValueError(f"body of {len(body)} bytes needs sub-packaging")
    props = len(body)
    if version is None:
        head = struct.pack(">HH", msg_id, props) + bcd(phone, 6)
    else:
        head = struct.pack(">HHB", msg_id, props | 1 << 14, version) + bcd(phone, 10)
    raw = head + struct.pack(">H", serial & 0xFFFF) + body
    return b"\x7e" + escape(raw + bytes([check_code(raw)])) + b"\x7e"


def decode(frame: bytes) -> Message:
    """One frame (with or without its 0x7E flags); ValueError on a bad check code."""
    raw = unescape(frame.strip(b"\x7e"))
    if len(raw) < 13 or check_code(raw[:-1]) != raw[-1]:
        raise ValueError("JT/T 808 frame too short or check code mismatch")
    msg_id, props = struct.unpack(">HH", raw[:4])
    if props & 1 << 14:
        version, phone, serial = raw[4], raw[5:15].hex(), struct.unpack(">H", raw[15:17])[0]
        start = 17
    else:
        version, phone, serial = None, raw[4:10].hex(), struct.unpack(">H", raw[10:12])[0]
        start = 12
    if props & 1 << 13:
        start += 4  # package count and number
    body = raw[start:-1]
    if len(body) != props & 0x3FF:
        raise ValueError("JT/T 808 body length does not match the header")
    return Message(msg_id, phone, serial, body, version)


def location_body(
    *,
    lat: float,
    lon: float,
    speed_kmh: float,
    heading: float,
    when: float,
    alarm: int = 0,
    status: int = STATUS_ACC | STATUS_FIX,
    altitude_m: float = 500.0,
    odometer_km: float | None = None,
) -> bytes:
    """A 0x0200 body (also one item of a 0x0704 batch); time is BCD YYMMDDhhmmss in GMT+8."""
    if lat < 0:
        status |= 1 << 2
    if lon < 0:
        status |= 1 << 3
    t = datetime.fromtimestamp(when, CST).strftime("%y%m%d%H%M%S")
    out = struct.pack(
        ">IIIIHHH",
        alarm,
        status,
        round(abs(lat) * 1e6),
        round(abs(lon) * 1e6),
        max(0, round(altitude_m)),
        max(0, round(speed_kmh * 10)),
        round(heading) % 360,
    ) + bcd(t, 6)
    if odometer_km is not None:
        out += struct.pack(">BBI", 0x01, 4, round(odometer_km * 10))  # extra 0x01: 1/10 km
    return out


def register_body(plate: str, terminal_id: str, version: int | None) -> bytes:
    """A 0x0100 body: province 51 (Sichuan), city 0100 (Chengdu), maker, model, id, plate."""
    maker, model_len, tid_len = (5, 20, 7) if version is None else (11, 30, 30)
    return (
        struct.pack(">HH", 51, 100)
        + b"RGSIM".ljust(maker, b"\0")
        + b"RG-808".ljust(model_len, b"\0")
        + terminal_id.encode("ascii")[:tid_len].ljust(tid_len, b"\0")
        + bytes([2])  # plate colour: yellow (heavy goods vehicles)
        + plate.replace("·", "").encode("gbk")
    )


def auth_body(code: bytes, imei: str, version: int | None) -> bytes:
    """A 0x0102 body: the code alone (2013), or length + code + IMEI + firmware (2019)."""
    if version is None:
        return code
    return (
        bytes([len(code)]) + code + imei.encode()[:15].ljust(15, b"0") + b"1.0.0".ljust(20, b"\0")
    )
