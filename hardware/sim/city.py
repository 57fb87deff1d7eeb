"""The simulated city: every device of an inventory, served over its real protocol.

One asyncio loop runs it all: an OPC-UA server per cabinet profile, a Modbus TCP port
per Modbus device, one MQTT tracker gateway, and a tick that advances the device models,
pushes OPC-UA values, plays the scenario timeline and takes devices off and on line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from contracts.astro import CST
from contracts.config import BrokerConfig
from hardware.inventory import Inventory
from hardware.profiles import load_profile
from hardware.sim.dust import DustModel
from hardware.sim.faults import (
    OFFLINE_KINDS,
    RULE_FAMILY,
    Fault,
    FaultError,
    GroundTruth,
    Scenario,
    load_scenario,
    subject_of,
    validate_fault,
)
from hardware.sim.lighting import CabinetModel
from hardware.sim.modbus_server import ModbusDeviceServer, unit
from hardware.sim.mqtt_trackers import TrackerPublisher, tracker_topic
from hardware.sim.opcua_server import OpcUaCabinetServer
from hardware.sim.push import PushDevices, protocol_of
from hardware.sim.trucks import TruckModel

__all__ = ["SimulatedCity", "FaultError"]

log = logging.getLogger(__name__)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, CST).isoformat(timespec="milliseconds")


def _sim_start(now: float, clock_start: str | None) -> float:
    """Epoch seconds of today's ``HH:MM`` (CST) if given, else ``now``."""
    if clock_start is None:
        return now
    hh, mm = (int(x) for x in clock_start.split(":"))
    today = datetime.fromtimestamp(now, CST)
    return today.replace(hour=hh, minute=mm, second=0, microsecond=0).timestamp()


class SimulatedCity:
    """All simulated devices of an inventory, with fault injection and ground truth."""

    def __init__(
        self,
        inventory: Inventory,
        *,
        host: str = "127.0.0.1",
        mqtt: BrokerConfig | None = None,
        scenario: str | Path | None = None,
        ground_truth: str | Path | None = None,
        tracker_interval_s: float = 2.0,
        tick_s: float = 1.0,
        clock_start: str | None = None,
        time_scale: float | None = None,
        agent_listeners: dict[str, tuple[str, int]] | None = None,
        push_interval_s: float = 20.0,
        hj212_minute_s: float = 60.0,
    ):
        self.inventory = inventory
        self.host = host
        self.mqtt = mqtt
        self.tracker_interval_s = tracker_interval_s
        self.tick_s = tick_s
        seed = inventory.seed
        self.cabinets = {
            c.id: CabinetModel(c, random.Random(f"{seed}/{c.id}")) for c in inventory.cabinets
        }
        self.dust = {
            d.id: DustModel(d, random.Random(f"{seed}/{d.id}")) for d in inventory.dust_monitors
        }
        self.trucks = {
            v.id: TruckModel(v, inventory, random.Random(f"{seed}/{v.id}"))
            for v in inventory.vehicles
        }
        self.kinds = {
            **{k: "lighting_cabinet" for k in self.cabinets},
            **{k: "dust_monitor" for k in self.dust},
            **{k: "vehicle" for k in self.trucks},
        }
        plan = load_scenario(scenario, self.kinds) if scenario is not None else Scenario([])
        self.timeline = plan.faults
        # The simulated clock drives schedules and diurnal cycles; faults and energy use wall time.
        self.clock_start = clock_start or plan.clock_start
        self.time_scale = time_scale if time_scale is not None else plan.time_scale
        # Until start() the clocks count from construction (faults injected early get sane times).
        self._sim_t0 = _sim_start(time.time(), self.clock_start)
        self.ground_truth = GroundTruth(ground_truth)
        self.agent_listeners = agent_listeners or {}
        self.push_interval_s = push_interval_s
        self.hj212_minute_s = hj212_minute_s
        self.push: PushDevices | None = None
        self.offline: list[Fault] = []
        self.injected = 0
        self._opcua: list[OpcUaCabinetServer] = []
        self._modbus: dict[str, ModbusDeviceServer] = {}
        self._trackers: TrackerPublisher | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._t0 = time.time()
        self._next_fault = 0
        self.endpoints: dict[str, list[dict[str, Any]]] = {}

    def sim_time(self, now: float | None = None) -> float:
        """Simulated epoch seconds at wall time ``now`` (default: the present)."""
        now = time.time() if now is None else now
        return self._sim_t0 + (now - self._t0) * self.time_scale

    def is_offline(self, device_id: str) -> bool:
        """Whether a device_offline fault holds the device off the network right now."""
        now = time.time()
        return any(f.device == device_id and f.active(now) for f in self.offline)

    async def start(self) -> dict[str, list[dict[str, Any]]]:
        """Start every server on free loopback ports; returns the endpoints (JSON-ready)."""
        now = time.time()
        self._t0 = now
        self._sim_t0 = _sim_start(now, self.clock_start)
        for model in (*self.cabinets.values(), *self.dust.values(), *self.trucks.values()):
            model.clock = self.sim_time
        self._step(now)
        try:
            await self._start_opcua()
            await self._start_modbus()
            mqtt_trucks = [
                t for t in self.trucks.values() if protocol_of(t.veh.profile) == "mqtt_tracker"
            ]
            if self.mqtt is not None and mqtt_trucks:
                self._trackers = TrackerPublisher(
                    mqtt_trucks, self.mqtt, self.tracker_interval_s, self.is_offline
                )
                await self._trackers.start()
            if self.agent_listeners:
                self.push = PushDevices(
                    self.dust,
                    self.trucks,
                    self.agent_listeners,
                    self.is_offline,
                    hj212_interval_s=self.push_interval_s,
                    hj212_minute_s=self.hj212_minute_s,
                    jt808_interval_s=self.push_interval_s,
                )
                self.push.start()
        except BaseException:
            await self.stop()
            raise
        self.endpoints = {
            "opcua": [
                {
                    "endpoint": s.endpoint,
                    "namespace": s.profile.namespace,
                    "devices": list(s.cabinets),
                }
                for s in self._opcua
            ],
            "modbus": [
                {
                    "endpoint": s.endpoint,
                    "unit_id": s.unit.unit_id,
                    "device_id": dev,
                    "profile": s.unit.profile.name,
                }
                for dev, s in self._modbus.items()
            ],
            "mqtt_trackers": [
                {"device_id": v, "topic": tracker_topic(v), "interval_s": self.tracker_interval_s}
                for v in ([t.veh.id for t in self._trackers.trucks] if self._trackers else [])
            ],
            **(self.push.endpoints() if self.push else {"hj212": [], "jt808": []}),
        }
        self._task = asyncio.create_task(self._run(), name="sim-city")
        return self.endpoints

    async def _start_opcua(self) -> None:
        groups: dict[str, list[CabinetModel]] = {}
        for cab in self.cabinets.values():
            if load_profile(cab.cab.profile).protocol == "opcua":
                groups.setdefault(cab.cab.profile, []).append(cab)
        for profile, cabs in groups.items():
            for attempt in range(5):  # the free port may be taken between probe and bind
                srv = OpcUaCabinetServer(
                    cabs, profile, self.host, _free_port(self.host), self.is_offline
                )
                try:
                    await srv.start()
                    break
                except OSError:
                    if attempt == 4:
                        raise
            self._opcua.append(srv)
            for cab in cabs:
                await srv.push(cab.cab.id, cab.state(time.time()))

    async def _start_modbus(self) -> None:
        devices: list[tuple[str, str, Any, Any]] = []
        for cab_id, cab in self.cabinets.items():
            if load_profile(cab.cab.profile).protocol == "modbus":
                devices.append(
                    (
                        cab_id,
                        cab.cab.profile,
                        cab,
                        lambda c, on, m=cab: m.command(c, on, time.time()),
                    )
                )
        for dm_id, dm in self.dust.items():
            if protocol_of(dm.mon.profile) == "modbus":
                devices.append((dm_id, dm.mon.profile, dm, None))
        for i, (dev_id, profile, model, command) in enumerate(devices):
            srv = ModbusDeviceServer(
                unit(dev_id, 1 + i % 247, profile, lambda m=model: m.state(time.time()), command),
                self.host,
            )
            await srv.start()
            self._modbus[dev_id] = srv

    async def stop(self) -> None:
        """Stop every server and task; safe to call twice."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._trackers is not None:
            await self._trackers.stop()
            self._trackers = None
        if self.push is not None:
            await self.push.stop()
            self.push = None
        for srv in self._modbus.values():
            await srv.stop()
        for opc in self._opcua:
            with contextlib.suppress(Exception):
                await opc.stop()
        self._opcua = []

    def inject(self, fault: dict[str, Any]) -> None:
        """Apply a fault now and record it as ground truth; FaultError when it makes no sense."""
        f = validate_fault(fault, self.kinds)
        now = time.time()
        dur = f.get("duration_s")
        params = {k: v for k, v in f.items() if k not in ("kind", "device")}
        active = Fault(
            f["kind"], f["device"], params, now, None if dur is None else now + float(dur)
        )
        if f["kind"] == "cable_theft" or f["kind"] == "lamp_failure":
            circuits = self.cabinets[f["device"]].cab.circuits
            if not 1 <= int(f["circuit"]) <= circuits:
                raise FaultError(
                    f"{f['kind']}: {f['device']} has circuits 1..{circuits}, not {f['circuit']}"
                )
        extra: dict[str, Any] = {}
        if f["kind"] in OFFLINE_KINDS:
            self.offline.append(active)
        else:
            truck = self.trucks.get(f["device"])
            if truck is not None:  # picks the geofence it breaks (FaultError when none)
                extra = truck.plan(active, now)
            model = self.cabinets.get(f["device"]) or self.dust.get(f["device"]) or truck
            model.faults.append(active)  # type: ignore[union-attr]
        end = active.until
        self.ground_truth.record(
            {
                **f,
                **extra,
                "subject": subject_of(f),
                "family": RULE_FAMILY[f["kind"]],
                "start_ns": int(now * 1e9),
                "end_ns": None if end is None else int(end * 1e9),
                "sim_start": _iso(self.sim_time(now)),
                "sim_end": None if end is None else _iso(self.sim_time(end)),
                "time_scale": self.time_scale,
                "protocol": protocol_of(self._profile(f["device"])),
            },
            int(now * 1e9),
        )
        self.injected += 1
        log.info("fault injected: %s", f)
        self._wake.set()

    def _profile(self, device_id: str) -> str:
        dev = self.inventory.get(device_id)
        return dev.profile

    def state(self, device_id: str) -> dict[str, Any]:
        """Ground-truth current values of a device (profile point keys, canonical units)."""
        now = time.time()
        model = (
            self.cabinets.get(device_id) or self.dust.get(device_id) or self.trucks.get(device_id)
        )
        if model is None:
            raise KeyError(f"no device {device_id!r}")
        return {**model.state(now), "online": not self.is_offline(device_id)}

    def _step(self, now: float) -> None:
        for cab in self.cabinets.values():
            cab.step(now)
        for dm in self.dust.values():
            dm.step(now)

    async def _run(self) -> None:
        while True:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bad tick must not stop the city
                log.exception("simulated city tick failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.tick_s)

    async def _tick(self) -> None:
        now = time.time()
        while (
            self._next_fault < len(self.timeline)
            and self.timeline[self._next_fault][0] <= now - self._t0
        ):
            fault = self.timeline[self._next_fault][1]
            self._next_fault += 1
            try:
                self.inject(fault)
            except FaultError as exc:
                log.error("scenario fault skipped: %s", exc)
        self.offline = [f for f in self.offline if f.until is None or now < f.until]
        self._step(now)
        for srv in self._opcua:
            for cab_id, cab in srv.cabinets.items():
                await srv.push(cab_id, None if self.is_offline(cab_id) else cab.state(now))
        for dev_id, srv in self._modbus.items():
            down = self.is_offline(dev_id)
            if down and srv.server is not None:
                await srv.stop()
            elif not down and srv.server is None:
                await srv.start()  # same port as before: the device comes back where it was
