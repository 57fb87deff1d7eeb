"""Ground truth's contract: which rule is expected to detect each injected fault kind.

The simulators write it into every ground-truth line; the scorer (``rongguan evaluate``)
matches alarms against it. One table, so the two cannot drift apart.
"""

from __future__ import annotations

__all__ = ["FAULT_RULES", "OFFLINE"]

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
