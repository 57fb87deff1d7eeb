"""MQTT tracker settings of one device, resolved once from its DeviceConfig and profile."""

from __future__ import annotations

from dataclasses import dataclass

from contracts.config import DeviceConfig
from drivers.base import BadConfig
from hardware.profiles import Profile, load_profile

__all__ = ["TrackerSettings", "settings_for"]


@dataclass(frozen=True)
class TrackerSettings:
    """Topic, profile and buffer bound of one tracker."""

    topic: str
    profile: Profile
    max_buffered: int


def settings_for(device: DeviceConfig) -> TrackerSettings:
    """Resolve topic and profile; BadConfig names the problem."""
    topic = device.endpoint
    if not topic or "#" in topic or "+" in topic or topic.startswith("/"):
        raise BadConfig(f"{device.id}: endpoint {topic!r} must be a plain MQTT topic")
    try:
        profile = load_profile(device.profile)
    except KeyError as exc:
        raise BadConfig(f"{device.id}: {exc.args[0]}") from None
    if profile.protocol != "mqtt_tracker":
        raise BadConfig(
            f"{device.id}: profile {profile.name!r} is for {profile.protocol}, not mqtt_tracker"
        )
    max_buffered = device.address.get("max_buffered", 10_000)
    if type(max_buffered) is not int or max_buffered < 1:
        raise BadConfig(f"{device.id}: address.max_buffered must be an integer >= 1")
    return TrackerSettings(topic=topic, profile=profile, max_buffered=max_buffered)
