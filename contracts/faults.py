"""Ground truth's contract: which rule is expected to detect each injected fault kind.

The simulators write it into every ground-truth line; the scorer (``rongguan evaluate``)
matches alarms against it. One table, so the two cannot drift apart.
"""

from __future__ import annotations

__all__ = ["FAULT_RULES", "FLEET_RULES", "OFFLINE", "rule_for"]

#: device_offline is one fault kind but one offline rule per domain; it maps to this name
OFFLINE = "device.offline"

#: fault kind -> the rule id expected to detect it (ids of rules/defaults)
FAULT_RULES: dict[str, str] = {
    "door_open": "lighting.door_open",
    "cable_theft": "lighting.cable_theft",
    "lamp_failure": "lighting.lamp_failure",
    "voltage_sag": "lighting.voltage_sag",
    "supply_loss": "lighting.supply_loss",
    "leakage": "lighting.leakage",
    "dust_episode": "dust.pm10_stop_work",
    "sensor_flatline": "dust.sensor_flatline",
    "sensor_spike": "dust.sensor_spike",
    "pm25_over_pm10": "dust.pm25_over_pm10",
    "sensor_fault": "dust.sensor_fault",
    "maintenance": "dust.maintenance",
    "overspeed": "vehicle.overspeed",
    "cover_open": "vehicle.cover_open_moving",
    "long_stop": "vehicle.illegal_dumping",
    "illegal_dumping": "vehicle.illegal_dumping",
    "route_deviation": "vehicle.route_deviation",
    "banned_hours": "vehicle.banned_hours",
    "missed_collection": "vehicle.missed_collection",
    "gps_jump": "vehicle.gps_jump",
    "blind_area": "vehicle.late_points",
    "tracker_offline": "vehicle.tracker_offline",
    "device_offline": OFFLINE,
}

#: (fault kind, fleet) -> the rule that detects it on that fleet's trucks instead: a
#: kitchen-waste truck that dumps its load is caught as a detour before the plant
FLEET_RULES: dict[tuple[str, str], str] = {
    ("illegal_dumping", "kitchen_waste"): "vehicle.kitchen_detour",
    # a sweeper driven faster than its working speed (well under the road limit)
    ("overspeed", "sanitation"): "vehicle.sweeper_speed",
}


def rule_for(kind: str, fleet: str | None = None) -> str:
    """The rule expected to detect a fault of ``kind`` (on a truck of ``fleet``)."""
    return FLEET_RULES.get((kind, fleet or ""), FAULT_RULES[kind])
