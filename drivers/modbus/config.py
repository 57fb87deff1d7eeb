"""Modbus settings of one device, resolved once from its DeviceConfig and profile."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from contracts.config import DeviceConfig
from drivers.base import BadConfig
from drivers.modbus.planner import ReadRequest, plan
from hardware.profiles import Point, Profile, load_profile

__all__ = ["DEFAULT_MAX_GAP", "ModbusSettings", "parse_endpoint", "settings_for"]

#: Hole (in addresses) a read may span when neither the device nor its profile says more.
DEFAULT_MAX_GAP = 8


@dataclass(frozen=True)
class ModbusSettings:
    """Where a device is, how to address it and which reads one poll makes."""

    host: str
    port: int
    unit_id: int
    timeout_s: float
    profile: Profile
    points: dict[str, Point]
    requests: tuple[ReadRequest, ...]


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``modbus://host:port`` (or ``tcp://``) -> (host, port); port 502 by default."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("modbus", "modbus+tcp", "tcp") or not parts.hostname:
        raise BadConfig(f"endpoint {endpoint!r}: expected modbus://HOST[:PORT]")
    try:
        port = parts.port or 502
    except ValueError:
        raise BadConfig(f"endpoint {endpoint!r}: bad port") from None
    return parts.hostname, port


def settings_for(device: DeviceConfig) -> ModbusSettings:
    """Resolve endpoint, unit id, profile and read plan; BadConfig names the problem."""
    host, port = parse_endpoint(device.endpoint)
    try:
        profile = load_profile(device.profile)
    except KeyError as exc:
        raise BadConfig(f"{device.id}: {exc.args[0]}") from None
    if profile.protocol != "modbus":
        raise BadConfig(
            f"{device.id}: profile {profile.name!r} is for {profile.protocol}, not modbus"
        )
    points = {p.key: p for p in profile.expanded()}
    for p in points.values():
        if p.table is None or p.address is None:
            raise BadConfig(
                f"{device.id}: point {p.key!r} of {profile.name!r} has no table/address"
            )
    default_gap = DEFAULT_MAX_GAP if profile.max_gap is None else profile.max_gap
    max_gap = device.address.get("max_gap", default_gap)
    if type(max_gap) is not int or max_gap < 0:
        raise BadConfig(f"{device.id}: address.max_gap must be an integer >= 0, got {max_gap!r}")
    try:
        requests = plan(
            ((p.key, p.table, p.type, p.address) for p in points.values()), max_gap=max_gap
        )  # type: ignore[misc]
    except ValueError as exc:
        raise BadConfig(f"{device.id}: {exc}") from None
    return ModbusSettings(
        host=host,
        port=port,
        unit_id=1 if device.unit_id is None else device.unit_id,
        timeout_s=device.timeout_s,
        profile=profile,
        points=points,
        requests=tuple(requests),
    )
