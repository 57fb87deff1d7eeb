"""The simulated city: every device of an inventory, served over its real protocol.

One asyncio loop runs it all: OPC-UA endpoints for the cabinets, Modbus TCP ports, one
MQTT tracker gateway, the pushing HJ 212 / JT/T 808 clients, and a tick that advances the
device models, pushes OPC-UA values, plays the scenario timeline and takes devices off
and on line. One :class:`~hardware.sim.clock.SimClock` drives all of it, so a night can
run in minutes with every timestamp and ground-truth line in simulated time. A city too
big for one process is served in parts (``part=(i, n)``): each process serves every n-th
device of each kind and plays the scenario's faults for its own devices.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from pathlib import Path
from typing import Any

from contracts.config import BrokerConfig
from hardware.inventory import Inventory
from hardware.sim.clock import SimClock
from hardware.sim.dust import DustModel
from hardware.sim.faults import (
    OFFLINE_KINDS,
    Fault,
    FaultError,
    GroundTruth,
    Scenario,
    load_scenario,
    truth_line,
    validate_fault,
)
from hardware.sim.lighting import CabinetModel
from hardware.sim.modbus_server import ModbusDeviceServer
from hardware.sim.mqtt_trackers import TrackerPublisher
from hardware.sim.opcua_server import OpcUaCabinetServer
from hardware.sim.push import PushDevices, protocol_of
from hardware.sim.serve import counters, describe, modbus_devices, start_modbus, start_opcua
from hardware.sim.trucks import TruckModel

__all__ = ["SimulatedCity", "FaultError"]

log = logging.getLogger(__name__)


class SimulatedCity:
    """All simulated devices of an inventory (or of one part of it), with fault injection
    and ground truth, on one simulated clock."""

    def __init__(
        self,
        inventory: Inventory,
        *,
        host: str = "127.0.0.1",
        mqtt: BrokerConfig | None = None,
        scenario: str | Path | None = None,
        ground_truth: str | Path | None = None,
        tracker_interval_s: float | tuple[float, float] = 2.0,
        tick_s: float = 1.0,
        clock_start: str | None = None,
        time_scale: float | None = None,
        stamps: str | None = None,
        clock: SimClock | None = None,  # instead of clock_start/time_scale/stamps/scenario's
        clock_anchor: float | None = None,
        agent_listeners: dict[str, tuple[str, int]] | None = None,
        push_interval_s: float = 20.0,
        hj212_minute_s: float = 60.0,
        part: tuple[int, int] = (0, 1),
        cabinets_per_server: int = 500,
        units_per_port: int = 1,
    ):
        i, n = part
        if not 0 <= i < n:
            raise ValueError(f"part must be (i, n) with 0 <= i < n, got {part!r}")
        self.inventory = inventory
        self.host = host
        self.mqtt = mqtt
        self.tracker_interval_s = tracker_interval_s
        self.tick_s = tick_s  # simulated seconds between model steps and OPC-UA pushes
        self.part = part
        self.cabinets_per_server = cabinets_per_server
        self.units_per_port = units_per_port
        seed = inventory.seed
        # Every n-th device of each kind: each part carries a like share of every load.
        self.cabinets = {
            c.id: CabinetModel(c, random.Random(f"{seed}/{c.id}")) for c in inventory.cabinets[i::n]
        }
        self.dust = {
            d.id: DustModel(d, random.Random(f"{seed}/{d.id}"))
            for d in inventory.dust_monitors[i::n]
        }
        self.trucks = {
            v.id: TruckModel(v, inventory, random.Random(f"{seed}/{v.id}"))
            for v in inventory.vehicles[i::n]
        }
        self.kinds = {  # every device of the inventory: scenarios are checked against all
            **{c.id: "lighting_cabinet" for c in inventory.cabinets},
            **{d.id: "dust_monitor" for d in inventory.dust_monitors},
            **{v.id: "vehicle" for v in inventory.vehicles},
        }
        plan = load_scenario(scenario, self.kinds) if scenario is not None else Scenario([])
        self.timeline = [(at, f) for at, f in plan.faults if self.serves(f["device"])]
        self.clock_start = clock_start or plan.clock_start
        self.time_scale = time_scale if time_scale is not None else plan.time_scale
        self.clock = clock or SimClock(
            self.clock_start, self.time_scale, stamps or plan.stamps, anchor=clock_anchor
        )
        self.time_scale = self.clock.speed
        self.ground_truth = GroundTruth(ground_truth)
        self.agent_listeners = agent_listeners or {}
        self.push_interval_s = push_interval_s
        self.hj212_minute_s = hj212_minute_s
        self.push: PushDevices | None = None
        self.offline: list[Fault] = []
        self.injected = 0
        self.ticks = 0
        self.tick_overruns = 0  # ticks that took longer than their wall-time budget
        self.cabinet_updates = 0  # cabinets whose OPC-UA values a tick pushed
        self._opcua: list[OpcUaCabinetServer] = []
        self._modbus: dict[str, ModbusDeviceServer] = {}
        self._trackers: TrackerPublisher | None = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._next_fault = 0
        self.endpoints: dict[str, list[dict[str, Any]]] = {}

    def serves(self, device_id: str) -> bool:
        """Whether this part of the city serves the device."""
        return device_id in self.cabinets or device_id in self.dust or device_id in self.trucks

    def sim_time(self, now: float | None = None) -> float:
        """Simulated epoch seconds at wall time ``now`` (default: the present)."""
        return self.clock.now() if now is None else self.clock.at(now)

    def is_offline(self, device_id: str) -> bool:
        """Whether a device_offline fault holds the device off the network right now."""
        now = self.clock.now()
        return any(f.device == device_id and f.active(now) for f in self.offline)

    async def start(self) -> dict[str, list[dict[str, Any]]]:
        """Start every server on free loopback ports; returns the endpoints (JSON-ready)."""
        self.clock.restart()
        self._step(self.clock.now())
        try:
            self._opcua = await start_opcua(
                list(self.cabinets.values()),
                self.host,
                self.clock,
                self.is_offline,
                self.cabinets_per_server,
            )
            self._modbus = await start_modbus(
                modbus_devices(self.cabinets, self.dust, self.clock),
                self.host,
                self.clock,
                self.is_offline,
                self.units_per_port,
            )
            # The city starts when its servers are up (a city takes a while to build): the
            # clock, and the scenario's at_s, count from here.
            self.clock.restart()
            self._step(self.clock.now())
            mqtt_trucks = [
                t for t in self.trucks.values() if protocol_of(t.veh.profile) == "mqtt_tracker"
            ]
            if self.mqtt is not None and mqtt_trucks:
                self._trackers = TrackerPublisher(
                    mqtt_trucks, self.mqtt, self.tracker_interval_s, self.is_offline, self.clock
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
                    clock=self.clock,
                )
                self.push.start()
        except BaseException:
            await self.stop()
            raise
        self.endpoints = describe(self._opcua, self._modbus, self._trackers, self.push)
        self._task = asyncio.create_task(self._run(), name="sim-city")
        return self.endpoints

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
        for srv in set(self._modbus.values()):
            await srv.stop()
        for opc in self._opcua:
            with contextlib.suppress(Exception):
                await opc.stop()
        self._opcua = []

    def counters(self) -> dict[str, float]:
        """Work done and trouble met so far, per protocol (for metrics and benchmarks)."""
        return {
            "ticks": self.ticks,
            "tick_overruns": self.tick_overruns,
            "cabinet_updates": self.cabinet_updates,
            "faults_injected": self.injected,
            **counters(self._modbus, self._trackers, self.push),
        }

    def inject(self, fault: dict[str, Any]) -> None:
        """Apply a fault now and record it as ground truth; FaultError when it makes no sense."""
        self._inject(fault, self.clock.now())

    def _inject(self, fault: dict[str, Any], now: float) -> None:
        f = validate_fault(fault, self.kinds)
        if not self.serves(f["device"]):
            raise FaultError(f"{f['device']} is served by another part of the city")
        clock = self.clock
        dur = f.get("duration_s")
        params = {k: v for k, v in f.items() if k not in ("kind", "device")}
        end = None if dur is None else now + float(dur)
        active = Fault(f["kind"], f["device"], params, now, end)
        if f["kind"] == "cable_theft" or f["kind"] == "lamp_failure":
            circuits = self.cabinets[f["device"]].cab.circuits
            if not 1 <= int(f["circuit"]) <= circuits:
                raise FaultError(
                    f"{f['kind']}: {f['device']} has circuits 1..{circuits}, not {f['circuit']}"
                )
        extra: dict[str, Any] = {}
        if f["kind"] in OFFLINE_KINDS:
            self.offline.append(active)
            if self.push is not None:
                self.push.wake(f["device"])
        else:
            truck = self.trucks.get(f["device"])
            if truck is not None:  # picks the geofence it breaks (FaultError when none)
                extra = {"fleet": truck.veh.fleet, **truck.plan(active, now, clock.stamp(now))}
            model = self.cabinets.get(f["device"]) or self.dust.get(f["device"]) or truck
            model.faults.append(active)  # type: ignore[union-attr]
        protocol = protocol_of(self.inventory.get(f["device"]).profile)
        self.ground_truth.record(truth_line({**f, **extra}, clock, now, end, protocol))
        self.injected += 1
        log.info("fault injected: %s", f)
        self._wake.set()

    def state(self, device_id: str) -> dict[str, Any]:
        """Ground-truth current values of a device (profile point keys, canonical units)."""
        now = self.clock.now()
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
        clock = self.clock
        while True:
            began = clock.wall()
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # a bad tick must not stop the city
                log.exception("simulated city tick failed")
            self.ticks += 1
            budget = clock.wall_s(self.tick_s)
            left = began + budget - clock.wall()
            if left < 0:
                self.tick_overruns += 1
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                # Never less than 1 ms: an overloaded city slows down instead of spinning.
                await asyncio.wait_for(self._wake.wait(), max(0.001, left))

    async def _tick(self) -> None:
        clock = self.clock
        now = clock.now()
        while self._next_fault < len(self.timeline) and self.timeline[self._next_fault][
            0
        ] <= clock.elapsed(now):
            fault = self.timeline[self._next_fault][1]
            self._next_fault += 1
            try:
                self._inject(fault, now)  # at the tick's time: on the wire with this tick
            except FaultError as exc:
                log.error("scenario fault skipped: %s", exc)
        self.offline = [f for f in self.offline if f.until is None or now < f.until]
        self._step(now)
        stamp = clock.stamp(now)
        pushed = 0
        for srv in self._opcua:
            for cab_id, cab in srv.cabinets.items():
                await srv.push(cab_id, None if self.is_offline(cab_id) else cab.state(now), stamp)
                pushed += 1
                self.cabinet_updates += 1
                if pushed % 100 == 0:
                    await asyncio.sleep(0)  # let requests and subscriptions through
        for dev_id, srv in self._modbus.items():
            if len(srv.units) > 1:
                continue  # behind a gateway an offline unit answers exception 0B instead
            down = self.is_offline(dev_id)
            if down and srv.server is not None:
                await srv.stop()
            elif not down and srv.server is None:
                await srv.start()  # same port as before: the device comes back where it was
