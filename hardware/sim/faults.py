"""Faults the simulated city can suffer: validation, scenario timelines and ground truth.

A fault is a dict ``{"kind": ..., "device": ..., <parameters>}``. A scenario file is YAML
with ``faults: [{at_s: 5, kind: door_open, device: LC-0002}, ...]``, ``at_s`` and
``duration_s`` in simulated seconds from the moment the city starts. An optional
``clock: {start: "20:30", scale: 60, stamps: sim}`` sets the simulated clock (see
:mod:`hardware.sim.clock`): where it starts (``HH:MM`` today or an ISO date-time, China
time), how fast it runs, and which time the devices stamp. Every injected fault is
appended to the ground-truth file as one JSON line ``{"ts_ns", "kind", "device", ...}``
with times on the clock's stamps, so detection can be scored.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from contracts.astro import CST
from contracts.faults import FAULT_RULES, rule_for
from hardware.sim.clock import MAX_SPEED, ClockError, SimClock, parse_start

__all__ = [
    "FAULT_KINDS",
    "RULE_FAMILY",
    "OFFLINE_KINDS",
    "subject_of",
    "FaultError",
    "Fault",
    "validate_fault",
    "Scenario",
    "load_scenario",
    "GroundTruth",
    "truth_line",
]

# kind -> (device kinds it applies to, default parameters)
FAULT_KINDS: dict[str, tuple[frozenset[str], dict[str, Any]]] = {
    "door_open": (frozenset({"lighting_cabinet"}), {"duration_s": 300.0}),
    "cable_theft": (frozenset({"lighting_cabinet"}), {"circuit": 1, "duration_s": None}),
    "lamp_failure": (
        frozenset({"lighting_cabinet"}),
        {"circuit": 1, "lamps": 3, "duration_s": None},
    ),
    "voltage_sag": (frozenset({"lighting_cabinet"}), {"voltage": 185.0, "duration_s": 60.0}),
    "supply_loss": (frozenset({"lighting_cabinet"}), {"duration_s": 60.0}),
    "leakage": (frozenset({"lighting_cabinet"}), {"ma": 45.0, "duration_s": 300.0}),
    "dust_episode": (frozenset({"dust_monitor"}), {"pm10": 400.0, "duration_s": 600.0}),
    "sensor_flatline": (frozenset({"dust_monitor"}), {"duration_s": 600.0}),
    "sensor_spike": (frozenset({"dust_monitor"}), {"factor": 8.0, "duration_s": 600.0}),
    "pm25_over_pm10": (frozenset({"dust_monitor"}), {"ratio": 1.25, "duration_s": 600.0}),
    "sensor_fault": (frozenset({"dust_monitor"}), {"duration_s": 600.0}),  # HJ 212 flag D
    "maintenance": (frozenset({"dust_monitor"}), {"duration_s": 600.0}),  # HJ 212 flag M
    "overspeed": (frozenset({"vehicle"}), {"speed": 85.0, "duration_s": 120.0}),
    "cover_open": (frozenset({"vehicle"}), {"duration_s": 300.0}),
    "long_stop": (frozenset({"vehicle"}), {"duration_s": 900.0}),
    "illegal_dumping": (frozenset({"vehicle"}), {"duration_s": 900.0}),
    "route_deviation": (frozenset({"vehicle"}), {"offset_m": 800.0, "duration_s": 600.0}),
    "banned_hours": (frozenset({"vehicle"}), {"duration_s": 1800.0}),
    "missed_collection": (frozenset({"vehicle"}), {"duration_s": 900.0}),
    "gps_jump": (frozenset({"vehicle"}), {"distance_m": 5000.0, "duration_s": 1.0}),
    "blind_area": (frozenset({"vehicle"}), {"duration_s": 120.0}),  # late (0x0704) points
    "tracker_offline": (frozenset({"vehicle"}), {"duration_s": 600.0}),
    "device_offline": (
        frozenset({"lighting_cabinet", "dust_monitor", "vehicle"}),
        {"duration_s": 60.0},
    ),
}

# kind -> the rule family expected to detect it (the shared ground-truth contract)
RULE_FAMILY = FAULT_RULES
# Faults that take the device off the network (handled by the city, not the device model).
OFFLINE_KINDS = frozenset({"device_offline", "tracker_offline"})


class FaultError(ValueError):
    """A fault or scenario that cannot be applied; the message says which and why."""


@dataclass
class Fault:
    """An active fault on one device, from ``start`` until ``until`` (simulated epoch s;
    None: forever)."""

    kind: str
    device: str
    params: dict[str, Any] = field(default_factory=dict)
    start: float = 0.0
    until: float | None = None

    def active(self, now: float) -> bool:
        """Whether the fault is in effect at ``now``."""
        return self.start <= now and (self.until is None or now < self.until)


def validate_fault(fault: dict[str, Any], device_kinds: dict[str, str]) -> dict[str, Any]:
    """The fault with defaults filled in; FaultError when kind, device or parameters are wrong."""
    if not isinstance(fault, dict):
        raise FaultError(f"a fault must be a mapping, got {type(fault).__name__}")
    kind, device = fault.get("kind"), fault.get("device")
    if kind not in FAULT_KINDS:
        raise FaultError(f"unknown fault kind {kind!r}; known: {', '.join(sorted(FAULT_KINDS))}")
    if device not in device_kinds:
        raise FaultError(f"fault {kind}: unknown device {device!r}")
    allowed, defaults = FAULT_KINDS[kind]
    if device_kinds[device] not in allowed:
        raise FaultError(f"fault {kind} does not apply to {device} ({device_kinds[device]})")
    out = {**defaults, **{k: v for k, v in fault.items() if k != "at_s"}}
    for key, default in defaults.items():
        value = out[key]
        if value is None:
            continue
        if isinstance(default, int) and not isinstance(default, bool):
            if not isinstance(value, int) or isinstance(value, bool):
                raise FaultError(
                    f"fault {kind} on {device}: {key} must be an integer, got {value!r}"
                )
        elif not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
            raise FaultError(
                f"fault {kind} on {device}: {key} must be a number >= 0, got {value!r}"
            )
    return out


def subject_of(fault: dict[str, Any]) -> str:
    """What part of the device the fault concerns: a circuit, a channel, the fix, the link."""
    kind = fault["kind"]
    if "circuit" in fault:
        return f"circuit{fault['circuit']}"
    if kind in ("door_open", "leakage", "voltage_sag", "supply_loss"):
        return {"door_open": "door", "leakage": "leakage_current"}.get(kind, "supply")
    if kind in ("dust_episode", "sensor_spike"):
        return "pm10"
    if kind == "pm25_over_pm10":
        return "pm25"
    if kind in ("sensor_flatline", "sensor_fault", "maintenance"):
        return "sensor"
    if kind in ("overspeed",):
        return "speed"
    if kind == "cover_open":
        return "cover"
    if kind in OFFLINE_KINDS:
        return "link"
    return "position"


@dataclass
class Scenario:
    """A fault timeline, and optionally the simulated clock's start, speed and stamps."""

    faults: list[tuple[float, dict[str, Any]]]
    clock_start: str | None = None  # "HH:MM" China Standard Time today, or ISO date-time
    time_scale: float = 1.0
    stamps: str | None = None  # "sim" | "wall"; None: the clock's default


def load_scenario(path: str | Path, device_kinds: dict[str, str]) -> Scenario:
    """A scenario file, faults sorted by time; every error names its entry."""
    source = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise FaultError(f"{source}: cannot read scenario: {exc}") from None
    entries = (data or {}).get("faults", []) if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise FaultError(f"{source}: expected a mapping with a 'faults' list")
    clock = data.get("clock") or {}
    if not isinstance(clock, dict):
        raise FaultError(f"{source}: clock must be a mapping like {{start: '20:30', scale: 1}}")
    start, scale = clock.get("start"), clock.get("scale", clock.get("speed", 1.0))
    if isinstance(start, int) and not isinstance(start, bool):
        start = f"{start // 60:02d}:{start % 60:02d}"  # YAML 1.1 reads unquoted 20:30 as 1230
    elif start is not None and not isinstance(start, str):
        start = start.isoformat() if hasattr(start, "isoformat") else start  # YAML timestamps
    try:
        parse_start(start, time.time())
    except ClockError as exc:
        raise FaultError(f"{source}: clock.start: {exc}") from None
    if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not 0 < scale <= MAX_SPEED:
        raise FaultError(
            f"{source}: clock.scale must be a number in (0, {MAX_SPEED:g}], got {scale!r}"
        )
    stamps = clock.get("stamps")
    if stamps not in (None, "sim", "wall"):
        raise FaultError(f"{source}: clock.stamps must be 'sim' or 'wall', got {stamps!r}")
    timeline, errors = [], []
    for i, entry in enumerate(entries):
        try:
            at = entry.get("at_s") if isinstance(entry, dict) else None
            if not isinstance(at, (int, float)) or isinstance(at, bool) or at < 0:
                raise FaultError(f"at_s must be a number >= 0, got {at!r}")
            timeline.append((float(at), validate_fault(entry, device_kinds)))
        except FaultError as exc:
            errors.append(f"{source}: faults[{i}]: {exc}")
    if errors:
        raise FaultError("\n".join(errors))
    return Scenario(
        sorted(timeline, key=lambda p: p[0]),
        None if start is None else str(start),
        float(scale),
        stamps,
    )


class GroundTruth:
    """Appends injected faults as JSON lines; a no-op without a path."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path is not None else None
        self.written = 0
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)

    def record(self, fault: dict[str, Any], ts_ns: int | None = None) -> dict[str, Any]:
        """Write one ground-truth line and return it (``ts_ns``: the line's own, or now)."""
        line = {
            "ts_ns": fault.get("ts_ns", time.time_ns()) if ts_ns is None else ts_ns,
            "kind": fault.get("kind"),
            "device": fault.get("device"),
            **fault,
        }
        if self.path is not None:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
        self.written += 1
        return line


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, CST).isoformat(timespec="milliseconds")


def truth_line(
    fault: dict[str, Any], clock: SimClock, start: float, end: float | None, protocol: str
) -> dict[str, Any]:
    """The ground-truth line of a fault applied at simulated ``start`` (until ``end``).

    ``ts_ns``/``start_ns``/``end_ns`` are on the time base the telemetry carries (the
    clock's stamps), so alarms can be scored against them; ``sim_start``/``sim_end`` are
    simulated China time, ``wall_ns`` the moment it happened on this machine."""
    start_ns = int(clock.stamp(start) * 1e9)
    return {
        "ts_ns": start_ns,
        "kind": fault["kind"],
        "device": fault["device"],
        **fault,
        "subject": subject_of(fault),
        "family": rule_for(fault["kind"], fault.get("fleet")),
        "start_ns": start_ns,
        "end_ns": None if end is None else int(clock.stamp(end) * 1e9),
        "sim_start": _iso(start),
        "sim_end": None if end is None else _iso(end),
        "wall_ns": int(clock.wall() * 1e9),
        "time_scale": clock.speed,
        "stamps": clock.stamps,
        "protocol": protocol,
    }
