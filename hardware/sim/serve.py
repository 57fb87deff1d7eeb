"""The protocol servers of a simulated city: OPC-UA endpoints and Modbus TCP ports.

Cabinets sharing a profile are served by OPC-UA endpoints of at most ``per_server``
cabinets each (a district's lighting gateway; one endpoint per cabinet at 1). Modbus
devices sit behind ports of at most ``per_port`` unit ids (a TCP gateway in front of an
RS-485 bus; at 1, a device with its own Ethernet module and a varied unit id).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from contracts.ports import free_port
from hardware.profiles import load_profile
from hardware.sim.clock import SimClock
from hardware.sim.dust import DustModel
from hardware.sim.lighting import CabinetModel
from hardware.sim.modbus_server import ModbusDeviceServer, unit
from hardware.sim.mqtt_trackers import TrackerPublisher, tracker_topic
from hardware.sim.opcua_server import OpcUaCabinetServer
from hardware.sim.push import PushDevices

__all__ = [
    "start_opcua",
    "start_modbus",
    "modbus_devices",
    "chunks",
    "describe",
    "counters",
    "ModbusDevice",
]

#: (device id, profile, model with .state(t), command(circuit, on) or None)
ModbusDevice = tuple[str, str, Any, Callable[[int, bool], Any] | None]


def chunks(items: list[Any], size: int) -> list[list[Any]]:
    """``items`` in consecutive groups of at most ``size``."""
    if size < 1:
        raise ValueError(f"group size must be >= 1, got {size}")
    return [items[i : i + size] for i in range(0, len(items), size)]


async def start_opcua(
    cabinets: list[CabinetModel],
    host: str,
    clock: SimClock,
    is_offline: Callable[[str], bool],
    per_server: int,
) -> list[OpcUaCabinetServer]:
    """Start OPC-UA endpoints for every OPC-UA cabinet; the caller stops them."""
    groups: dict[str, list[CabinetModel]] = {}
    for cab in cabinets:
        if load_profile(cab.cab.profile).protocol == "opcua":
            groups.setdefault(cab.cab.profile, []).append(cab)
    servers: list[OpcUaCabinetServer] = []
    try:
        for profile, cabs in groups.items():
            for group in chunks(cabs, per_server):
                servers.append(await _start_one(group, profile, host, clock, is_offline))
    except BaseException:
        for srv in servers:
            await srv.stop()
        raise
    return servers


async def _start_one(
    cabs: list[CabinetModel],
    profile: str,
    host: str,
    clock: SimClock,
    is_offline: Callable[[str], bool],
) -> OpcUaCabinetServer:
    for attempt in range(5):  # the free port may be taken between probe and bind
        srv = OpcUaCabinetServer(cabs, profile, host, free_port(host), is_offline, clock=clock)
        try:
            await srv.start()
            return srv
        except OSError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


def modbus_devices(
    cabinets: dict[str, CabinetModel], dust: dict[str, DustModel], clock: SimClock
) -> list[ModbusDevice]:
    """The Modbus lighting controllers (switchable) and dust monitors among the models."""
    out: list[ModbusDevice] = []
    for cab_id, cab in cabinets.items():
        if load_profile(cab.cab.profile).protocol == "modbus":
            cmd = lambda c, on, m=cab: m.command(c, on, clock.now())  # noqa: E731
            out.append((cab_id, cab.cab.profile, cab, cmd))
    for dm_id, dm in dust.items():
        if load_profile(dm.mon.profile).protocol == "modbus":
            out.append((dm_id, dm.mon.profile, dm, None))
    return out


async def start_modbus(
    devices: list[ModbusDevice],
    host: str,
    clock: SimClock,
    is_offline: Callable[[str], bool],
    per_port: int,
) -> dict[str, ModbusDeviceServer]:
    """Start the Modbus ports; returns device id -> the server it sits behind."""
    if not 1 <= per_port <= 247:
        raise ValueError(f"units per Modbus port must be 1..247, got {per_port}")
    out: dict[str, ModbusDeviceServer] = {}
    try:
        for g, group in enumerate(chunks(devices, per_port)):
            units = []
            for i, (dev_id, profile, model, command) in enumerate(group):
                # Alone on a port, unit ids vary so that clients must address them right.
                uid = 1 + (g % 247 if per_port == 1 else i)
                units.append(
                    unit(dev_id, uid, profile, lambda m=model: m.state(clock.now()), command)
                )
            srv = ModbusDeviceServer(units, host, is_offline=is_offline)
            await srv.start()
            for u in units:
                out[u.device_id] = srv
    except BaseException:
        for srv in set(out.values()):
            await srv.stop()
        raise
    return out


def describe(
    opcua: list[OpcUaCabinetServer],
    modbus: dict[str, ModbusDeviceServer],
    trackers: TrackerPublisher | None,
    push: PushDevices | None,
) -> dict[str, list[dict[str, Any]]]:
    """JSON-ready endpoints of every server and client, per protocol."""
    return {
        "opcua": [
            {"endpoint": s.endpoint, "namespace": s.profile.namespace, "devices": list(s.cabinets)}
            for s in opcua
        ],
        "modbus": [
            {"endpoint": s.endpoint, "unit_id": u.unit_id, "device_id": dev,
             "profile": u.profile.name}
            for dev, s in modbus.items()
            for u in s.units
            if u.device_id == dev
        ],
        "mqtt_trackers": [
            {"device_id": t.veh.id, "topic": tracker_topic(t.veh.id),
             "interval_s": round(trackers.intervals[t.veh.id], 3)}
            for t in (trackers.trucks if trackers else [])
        ],
        **(push.endpoints() if push else {"hj212": [], "jt808": []}),
    }  # fmt: skip


def counters(
    modbus: dict[str, ModbusDeviceServer],
    trackers: TrackerPublisher | None,
    push: PushDevices | None,
) -> dict[str, float]:
    """Requests served, messages published and dropped, frames pushed."""
    ports = set(modbus.values())
    return {
        "modbus_requests": sum(s.requests for s in ports),
        "modbus_errors": sum(s.errors for s in ports),
        "mqtt_published": trackers.published if trackers else 0,
        "mqtt_acked": trackers.acked if trackers else 0,
        "mqtt_failed": trackers.failed if trackers else 0,
        "mqtt_dropped": trackers.dropped if trackers else 0,
        "mqtt_late_s": trackers.late_s if trackers else 0.0,
        **(push.counters() if push else {}),
    }
