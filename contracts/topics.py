"""The MQTT topic layout, in one place.

Telemetry topics carry a partition so that ingest and rules workers can each own a
share of the devices (``rg/v1/tele/<partition>/<agent>``); everything else is keyed
by agent, device or alarm.
"""

from __future__ import annotations

__all__ = [
    "ROOT",
    "telemetry",
    "telemetry_filter",
    "agent_status",
    "device_availability",
    "availability_filter",
    "command",
    "command_ack",
    "command_ack_filter",
    "alarm",
    "alarm_filter",
    "alarm_action",
    "partition_of",
]

ROOT = "rg/v1"


def partition_of(device_id: str, partitions: int) -> int:
    """Stable partition of a device (FNV-1a, independent of Python's hash seed)."""
    h = 0x811C9DC5
    for b in device_id.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h % max(1, partitions)


def telemetry(partition: int, agent_id: str) -> str:
    """Topic an agent publishes its telemetry batches on."""
    return f"{ROOT}/tele/{partition}/{agent_id}"


def telemetry_filter(partition: int | None = None) -> str:
    """Subscription for one partition's telemetry, or all of it."""
    return f"{ROOT}/tele/{'+' if partition is None else partition}/+"


def agent_status(agent_id: str) -> str:
    """Retained agent health ("online"/"offline"); the agent's last will goes here."""
    return f"{ROOT}/agents/{agent_id}/status"


def device_availability(device_id: str) -> str:
    """Retained device availability (online / degraded / offline) as JSON."""
    return f"{ROOT}/devices/{device_id}/availability"


def availability_filter() -> str:
    """Subscription for every device's availability."""
    return f"{ROOT}/devices/+/availability"


def command(agent_id: str) -> str:
    """Commands for the devices an agent owns."""
    return f"{ROOT}/cmd/{agent_id}"


def command_ack(agent_id: str) -> str:
    """Progress of commands (received, sent, acknowledged, confirmed, failed)."""
    return f"{ROOT}/cmd-ack/{agent_id}"


def command_ack_filter() -> str:
    """Subscription for every agent's command progress."""
    return f"{ROOT}/cmd-ack/+"


def alarm(alarm_id: str) -> str:
    """Retained current state of one alarm; an empty retained payload removes it."""
    return f"{ROOT}/alarms/{alarm_id}"


def alarm_filter() -> str:
    """Subscription for every alarm."""
    return f"{ROOT}/alarms/+"


def alarm_action() -> str:
    """Operator actions on alarms (acknowledge, comment, shelve, ...) for the rules service."""
    return f"{ROOT}/alarm-actions"
