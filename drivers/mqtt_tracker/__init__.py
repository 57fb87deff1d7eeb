"""MQTT JSON tracker driver: subscribed fixes, mapped by the profile, drained on read."""

from __future__ import annotations

from drivers.mqtt_tracker.client import MqttTrackerDriver
from drivers.mqtt_tracker.codec import FixError, decode_fix

__all__ = ["MqttTrackerDriver", "FixError", "decode_fix"]
