"""JT/T 808 driver: terminals on a shared TCP listener, 2013 and 2019 headers."""

from __future__ import annotations

from typing import Any

from drivers.jt808.client import Jt808Driver
from drivers.jt808.codec import FrameError, Jt808Frame, decode_frame, encode_frame
from drivers.jt808.messages import decode_body

__all__ = [
    "Jt808Driver",
    "FrameError",
    "Jt808Frame",
    "decode_frame",
    "encode_frame",
    "decode_body",
    "decode_cli",
]


def decode_cli(hex_text: str) -> dict[str, Any]:
    """Decode a frame given as hex (spaces allowed) for ``rongguan decode jt808``."""
    cleaned = "".join(hex_text.split())
    if cleaned[:2].lower() == "0x":
        cleaned = cleaned[2:]
    try:
        raw = bytes.fromhex(cleaned)
    except ValueError as exc:
        raise FrameError(f"not hex: {exc}") from None
    frame = decode_frame(raw)
    return {
        "msg_id": f"0x{frame.msg_id:04x}",
        "phone": frame.phone,
        "serial": frame.serial,
        "version": frame.version,
        "header": "2019" if frame.version is not None else "2013",
        "encryption": frame.encryption,
        "packets": frame.packets,
        "index": frame.index,
        "body_hex": frame.body.hex(),
        "body": decode_body(frame),
    }
