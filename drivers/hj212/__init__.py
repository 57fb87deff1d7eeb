"""HJ 212-2017 driver: pushed frames on a shared TCP listener, the standard's own CRC."""

from __future__ import annotations

from typing import Any

from drivers.hj212.client import Hj212Driver
from drivers.hj212.codec import FrameError, Hj212Frame, build_reply, crc16, decode_frame

__all__ = [
    "Hj212Driver",
    "FrameError",
    "Hj212Frame",
    "build_reply",
    "crc16",
    "decode_frame",
    "decode_cli",
]


def decode_cli(frame: str) -> dict[str, Any]:
    """Decode a frame given as text (CRLF optional) for ``rongguan decode hj212``.

    A trailing literal ``\\r\\n`` (as typed on a shell line) or a missing CRLF is
    normalised to a real CRLF; FrameError carries the exact reason of a rejection.
    """
    text = frame.rstrip("\n").rstrip("\r")
    if text.endswith("\\r\\n"):
        text = text[:-4]
    decoded = decode_frame(text + "\r\n")
    doc = decoded.to_dict()
    reply = build_reply(decoded)
    doc["reply"] = reply.decode("ascii").rstrip("\r\n") if reply else None
    return doc
