"""Pure OPC-UA value mapping: node ids from the profile, variant values to telemetry.

    string node id   ns=<index of the profile namespace>;s=<prefix>.<node>
    e.g.             ns=2;s=LC-0001.Circuit2.On

Values become floats (booleans 0/1) scaled by the point; a bad status, a null or a
non-numeric value becomes None (no reading) instead of failing the whole poll.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["node_string", "to_float", "is_good"]


def node_string(ns: int, prefix: str, node: str | None = None) -> str:
    """The string NodeId of a device object (node None) or one of its variables."""
    ident = prefix if node is None else f"{prefix}.{node}"
    return f"ns={ns};s={ident}"


def is_good(status_code: int) -> bool:
    """OPC-UA status severity Good (top two bits 00); Uncertain and Bad are not."""
    return (status_code >> 30) == 0


def to_float(value: Any, scale: float = 1.0, offset: float = 0.0) -> float | None:
    """A variant value as a canonical float, or None when it carries no number."""
    if isinstance(value, bool):
        return (1.0 if value else 0.0) * scale + offset
    if isinstance(value, (int, float)):
        v = float(value)
        return v * scale + offset if math.isfinite(v) else None
    return None
