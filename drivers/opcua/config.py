"""OPC-UA settings of one device, resolved once from its DeviceConfig and profile."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from contracts.config import DeviceConfig
from drivers.base import BadConfig
from hardware.profiles import Point, Profile, load_profile

__all__ = ["OpcUaSettings", "settings_for"]


@dataclass(frozen=True)
class OpcUaSettings:
    """Endpoint, namespace, node prefix and points of one OPC-UA device."""

    endpoint: str
    namespace: str
    prefix: str  # string node ids are "<prefix>.<node>"; the device object is "<prefix>"
    timeout_s: float
    profile: Profile
    points: tuple[Point, ...]
    methods: dict[str, str]


def settings_for(device: DeviceConfig) -> OpcUaSettings:
    """Resolve endpoint, namespace and points; BadConfig names the problem."""
    if urlsplit(device.endpoint).scheme != "opc.tcp" or not urlsplit(device.endpoint).hostname:
        raise BadConfig(f"{device.id}: endpoint {device.endpoint!r}: expected opc.tcp://HOST:PORT")
    try:
        profile = load_profile(device.profile)
    except KeyError as exc:
        raise BadConfig(f"{device.id}: {exc.args[0]}") from None
    if profile.protocol != "opcua":
        raise BadConfig(
            f"{device.id}: profile {profile.name!r} is for {profile.protocol}, not opcua"
        )
    namespace = device.address.get("namespace") or profile.namespace
    if not namespace or not isinstance(namespace, str):
        raise BadConfig(f"{device.id}: no OPC-UA namespace in address.namespace or the profile")
    prefix = device.address.get("node_prefix", device.id)
    if not isinstance(prefix, str) or not prefix:
        raise BadConfig(f"{device.id}: address.node_prefix must be a non-empty string")
    points = tuple(profile.expanded())
    for p in points:
        if not p.node:
            raise BadConfig(f"{device.id}: point {p.key!r} of {profile.name!r} has no node")
    return OpcUaSettings(
        endpoint=device.endpoint,
        namespace=namespace,
        prefix=prefix,
        timeout_s=device.timeout_s,
        profile=profile,
        points=points,
        methods=dict(profile.methods),
    )
