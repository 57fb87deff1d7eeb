"""Bodies of the JT/T 808 messages the platform understands, and the platform's replies.

Terminal -> platform: 0x0100 register, 0x0102 auth, 0x0002 heartbeat, 0x0200 location,
0x0704 batch location. Platform -> terminal: 0x8001 general reply, 0x8100 register reply.
"""

from __future__ import annotations

import datetime as dt
import struct
from typing import Any

from drivers.jt808.codec import FrameError, Jt808Frame, bcd_to_str

__all__ = [
    "REGISTER",
    "AUTH",
    "HEARTBEAT",
    "LOCATION",
    "BATCH_LOCATION",
    "GENERAL_REPLY",
    "REGISTER_REPLY",
    "decode_body",
    "decode_location",
    "general_reply_body",
    "register_reply_body",
    "location_body",
]

HEARTBEAT, REGISTER, AUTH, LOCATION, BATCH_LOCATION = 0x0002, 0x0100, 0x0102, 0x0200, 0x0704
GENERAL_REPLY, REGISTER_REPLY = 0x8001, 0x8100
_BEIJING = dt.timezone(dt.timedelta(hours=8))
_STATUS_SOUTH, _STATUS_WEST = 1 << 2, 1 << 3


def _text(raw: bytes) -> str:
    # Strings are GBK; fixed-width fields are padded with NULs (or spaces on some units).
    return raw.rstrip(b"\x00 ").decode("gbk", "replace")


def decode_location(body: bytes) -> dict[str, Any]:
    """A 0x0200 body: position, speed, time (ns UTC), bit fields and extra items."""
    if len(body) < 28:
        raise FrameError(f"location body of {len(body)} bytes is shorter than 28")
    alarm, status, lat, lon, alt, speed, direction = struct.unpack_from(">IIIIHHH", body, 0)
    when = bcd_to_str(body[22:28], "location time")
    try:
        t = dt.datetime.strptime("20" + when, "%Y%m%d%H%M%S").replace(tzinfo=_BEIJING)
    except ValueError:
        raise FrameError(f"bad location time: {when}") from None
    lat_deg = lat / 1e6 * (-1 if status & _STATUS_SOUTH else 1)
    lon_deg = lon / 1e6 * (-1 if status & _STATUS_WEST else 1)
    if not (abs(lat_deg) <= 90 and abs(lon_deg) <= 180):
        raise FrameError(f"position {lat_deg}, {lon_deg} is off the globe")
    extra: dict[str, int | str] = {}
    pos = 28
    while pos < len(body):
        if pos + 2 > len(body):
            raise FrameError(f"extra item header cut at byte {pos}")
        item_id, n = body[pos], body[pos + 1]
        value = body[pos + 2 : pos + 2 + n]
        if len(value) != n:
            raise FrameError(f"extra item 0x{item_id:02x} says {n} bytes, {len(value)} left")
        key = f"0x{item_id:02x}"
        extra[key] = int.from_bytes(value, "big") if n in (1, 2, 4) else value.hex()
        pos += 2 + n
    return {
        "alarm": alarm,
        "status": status,
        "lat": lat_deg,
        "lon": lon_deg,
        "altitude": alt,
        "speed": speed / 10,
        "direction": direction,
        "time": t.isoformat(),
        "ts": int(t.timestamp()) * 1_000_000_000,
        "extra": extra,
    }


def _decode_batch(body: bytes) -> dict[str, Any]:
    if len(body) < 3:
        raise FrameError(f"batch location body of {len(body)} bytes is shorter than 3")
    count, kind = struct.unpack_from(">HB", body, 0)
    pos, items = 3, []
    for i in range(count):
        if pos + 2 > len(body):
            raise FrameError(f"batch item {i + 1} of {count} missing")
        (n,) = struct.unpack_from(">H", body, pos)
        chunk = body[pos + 2 : pos + 2 + n]
        if len(chunk) != n:
            raise FrameError(f"batch item {i + 1} says {n} bytes, {len(chunk)} left")
        items.append(decode_location(chunk))
        pos += 2 + n
    if pos != len(body):
        raise FrameError(f"{len(body) - pos} bytes after the {count} batch items")
    return {"count": count, "type": "blind_area" if kind == 1 else "normal", "items": items}


def _decode_register(body: bytes, v2019: bool) -> dict[str, Any]:
    maker, model, term = (11, 30, 30) if v2019 else (5, 20, 7)
    fixed = 4 + maker + model + term + 1
    if len(body) < fixed:
        raise FrameError(f"register body of {len(body)} bytes is shorter than {fixed}")
    province, city = struct.unpack_from(">HH", body, 0)
    p = 4
    out = {"province": province, "city": city, "maker": _text(body[p : p + maker])}
    p += maker
    out["model"] = _text(body[p : p + model])
    p += model
    out["terminal_id"] = _text(body[p : p + term])
    p += term
    out["plate_color"] = body[p]
    out["plate"] = _text(body[p + 1 :])
    return out


def _decode_auth(body: bytes, v2019: bool) -> dict[str, Any]:
    if not v2019:
        return {"auth_code": _text(body)}
    if not body or len(body) < 1 + body[0] + 35:
        raise FrameError(f"2019 auth body of {len(body)} bytes is too short")
    n = body[0]
    return {
        "auth_code": _text(body[1 : 1 + n]),
        "imei": _text(body[1 + n : 16 + n]),
        "software": _text(body[16 + n : 36 + n]),
    }


def decode_body(frame: Jt808Frame) -> dict[str, Any]:
    """The body of a known message as a dict; ``{}`` for heartbeats and unknown ids."""
    if frame.encryption:
        raise FrameError(f"encrypted body (encryption bits {frame.encryption}) not supported")
    if frame.packets is not None and frame.packets > 1:
        return {}  # packets of a split message are acknowledged, not reassembled
    v2019 = frame.version is not None
    if frame.msg_id == LOCATION:
        return decode_location(frame.body)
    if frame.msg_id == BATCH_LOCATION:
        return _decode_batch(frame.body)
    if frame.msg_id == REGISTER:
        return _decode_register(frame.body, v2019)
    if frame.msg_id == AUTH:
        return _decode_auth(frame.body, v2019)
    if frame.msg_id == HEARTBEAT and frame.body:
        raise FrameError(f"heartbeat with a {len(frame.body)}-byte body")
    return {}


def general_reply_body(serial: int, msg_id: int, result: int) -> bytes:
    """0x8001: reply serial, reply id, result (0 ok, 1 failed, 2 bad message, 3 unsupported)."""
    return struct.pack(">HHB", serial, msg_id, result)


def register_reply_body(serial: int, result: int, auth_code: str) -> bytes:
    """0x8100: reply serial, result (0 ok, 2 no such vehicle, 4 no such terminal), auth code."""
    body = struct.pack(">HB", serial, result)
    return body + auth_code.encode("gbk") if result == 0 else body


def location_body(
    lat: float,
    lon: float,
    when: dt.datetime,
    *,
    alarm: int = 0,
    status: int = 0,
    altitude: int = 0,
    speed_kmh: float = 0.0,
    direction: int = 0,
    extra: dict[int, bytes] | None = None,
) -> bytes:
    """A 0x0200 body (for simulators and tests); S/W set the status bits 2/3."""
    if lat < 0:
        status |= _STATUS_SOUTH
    if lon < 0:
        status |= _STATUS_WEST
    local = when.astimezone(_BEIJING).strftime("%y%m%d%H%M%S")
    body = struct.pack(
        ">IIIIHHH",
        alarm,
        status,
        round(abs(lat) * 1e6),
        round(abs(lon) * 1e6),
        altitude,
        round(speed_kmh * 10),
        direction,
    )
    body += bytes.fromhex(local)
    for item_id, value in (extra or {}).items():
        body += bytes([item_id, len(value)]) + value
    return body
