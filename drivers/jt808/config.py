"""JT/T 808 settings of one terminal and the mapping of a location report to rows.

Point codes name members of the decoded location: ``lat``, ``lon``, ``speed``,
``direction``, ``altitude``, ``status.<bit>``, ``alarm.<bit>`` (0/1) and
``extra.0x<id>`` (the extra item's integer value; absent items give no row).
Values are ``raw * scale + offset`` (e.g. odometer 0.1 km units -> km).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from contracts.config import DeviceConfig
from contracts.telemetry import TelemetryRow
from drivers.base import BadConfig
from drivers.hj212.config import parse_endpoint
from hardware.profiles import Point, Profile, load_profile

__all__ = ["Jt808Settings", "settings_for", "location_rows", "auth_code_for"]

_PLAIN = ("lat", "lon", "speed", "direction", "altitude")


@dataclass(frozen=True)
class Jt808Settings:
    """Listener endpoint, phone, profile points and buffer bound of one terminal."""

    host: str
    port: int
    phone: str  # digits without leading zeros, as decoded from the header
    profile: Profile
    points: list[Point]
    max_buffered: int
    stale_s: float


def _check_code(device_id: str, code: str) -> None:
    head, _, tail = code.partition(".")
    if code in _PLAIN:
        return
    if head in ("status", "alarm") and tail.isdigit() and int(tail) < 32:
        return
    if head == "extra" and tail.startswith("0x"):
        try:
            if 0 <= int(tail, 16) <= 0xFF:
                return
        except ValueError:
            pass
    raise BadConfig(f"{device_id}: JT/T 808 point code {code!r} is not understood")


def settings_for(device: DeviceConfig) -> Jt808Settings:
    """Resolve endpoint, phone and profile; BadConfig names the problem."""
    host, port = parse_endpoint(device.id, device.endpoint)
    phone = str(device.address.get("phone", ""))
    if not phone.isascii() or not phone.isdigit() or len(phone) > 20:
        raise BadConfig(f"{device.id}: address.phone must be the terminal's digits, got {phone!r}")
    try:
        profile = load_profile(device.profile)
    except KeyError as exc:
        raise BadConfig(f"{device.id}: {exc.args[0]}") from None
    if profile.protocol != "jt808":
        raise BadConfig(f"{device.id}: profile {profile.name!r} is for {profile.protocol}")
    points = profile.expanded()
    for p in points:
        _check_code(device.id, p.code or p.key)
    max_buffered = device.address.get("max_buffered", 10_000)
    if type(max_buffered) is not int or max_buffered < 1:
        raise BadConfig(f"{device.id}: address.max_buffered must be an integer >= 1")
    stale_s = float(device.address.get("stale_s", max(60.0, 3 * device.interval_s)))
    return Jt808Settings(
        host, port, phone.lstrip("0") or "0", profile, points, max_buffered, stale_s
    )


def auth_code_for(phone: str) -> str:
    """The auth code the platform hands a terminal at registration."""
    return f"RG{phone}"


def _raw(loc: dict[str, Any], code: str) -> float | None:
    head, _, tail = code.partition(".")
    if code in _PLAIN:
        return float(loc[code])
    if head in ("status", "alarm"):
        return float((loc[head] >> int(tail)) & 1)
    value = loc["extra"].get(f"0x{int(tail, 16):02x}")
    return float(value) if isinstance(value, int) else None


def location_rows(
    loc: dict[str, Any], s: Jt808Settings, device_id: str, kind: str
) -> list[TelemetryRow]:
    """Rows of one decoded location report."""
    rows = []
    for p in s.points:
        raw = _raw(loc, p.code or p.key)
        if raw is not None:
            rows.append(TelemetryRow(device_id, kind, loc["ts"], p.key, raw * p.scale + p.offset))
    return rows
