"""Behaviour of a street-lighting cabinet: schedule, contactors, metering and faults.

Each circuit hangs between one phase and neutral (circuit n on phase ((n-1) mod 3) + 1).
Its current is lamps lit × lamp watts / (phase voltage × power factor). Contactors follow
the astronomical clock (with offsets; secondary roads run their last circuit on a
half-night program) unless a command overrides them; an override holds until the
schedule next changes that circuit. Every time argument is simulated epoch seconds (see
:mod:`hardware.sim.clock`).
"""

from __future__ import annotations

import math
import random
from datetime import date, datetime

from contracts.astro import CST, switch_times
from hardware.inventory import Cabinet
from hardware.sim.faults import Fault

__all__ = ["CabinetModel", "CircuitError"]

_PF = 0.95  # LED drivers with active PFC
_HALF_NIGHT = (0, 5)  # local hours the half-night circuit is dark (00:00-05:00)


class CircuitError(ValueError):
    """A command named a circuit the cabinet does not have."""


class CabinetModel:
    """Ground-truth state of one cabinet, advanced by :meth:`step`."""

    def __init__(
        self,
        cab: Cabinet,
        rng: random.Random,
        on_offset_min: float = 10.0,
        off_offset_min: float = -10.0,
    ):
        self.cab = cab
        self.rng = rng
        self.on_offset_min = on_offset_min
        self.off_offset_min = off_offset_min
        n = cab.circuits
        self.half_night = {n} if cab.road_class == "secondary" and n > 1 else set()
        self.on = [False] * n
        self.override: list[bool | None] = [None] * n
        self._sched_at_override = [False] * n
        self.circuit_current = [0.0] * n
        self.voltage = [220.0, 220.0, 220.0]
        self.phase_current = [0.0, 0.0, 0.0]
        self.active_power = 0.0
        self.power_factor = 0.0
        self.energy = round(rng.uniform(2_000, 60_000), 1)
        self.leakage = rng.uniform(4.0, 12.0)
        self.door_open = False
        self.faults: list[Fault] = []
        self._last: float | None = None
        self._phase_offset = rng.uniform(0, 2 * math.pi)
        self._day: date | None = None  # local day of the cached switching times
        self._off = self._on = 0.0

    def scheduled(self, now: float) -> list[bool]:
        """What the clock (and half-night program) wants for each circuit at ``now``."""
        local = datetime.fromtimestamp(now, CST)
        day = local.date()
        if day != self._day:  # the switching times change once a day: compute them once
            off, on = switch_times(
                self.cab.lat, self.cab.lon, day, self.on_offset_min, self.off_offset_min
            )
            self._day, self._off, self._on = day, off.timestamp(), on.timestamp()
        dark = not self._off <= now < self._on
        hour = local.hour
        late = _HALF_NIGHT[0] <= hour < _HALF_NIGHT[1]
        return [dark and not (late and c + 1 in self.half_night) for c in range(self.cab.circuits)]

    def command(self, circuit: int, on: bool, now: float) -> bool:
        """Switch circuit (1-based) by hand; returns the contactor state read back."""
        if not isinstance(circuit, int) or not 1 <= circuit <= self.cab.circuits:
            raise CircuitError(
                f"{self.cab.id} has circuits 1..{self.cab.circuits}, not {circuit!r}"
            )
        i = circuit - 1
        self.override[i] = bool(on)
        self._sched_at_override[i] = self.scheduled(now)[i]
        self.step(now)  # currents and power follow the contactor at once
        return self.on[i]

    def _active(self, kind: str, now: float) -> list[Fault]:
        return [f for f in self.faults if f.kind == kind and f.active(now)]

    def step(self, now: float) -> None:
        """Advance contactors, metering and energy to ``now``."""
        dt = 0.0 if self._last is None else max(0.0, now - self._last)
        self._last = now
        self.faults = [f for f in self.faults if f.until is None or now < f.until]
        sched = self.scheduled(now)
        for i, s in enumerate(sched):
            if self.override[i] is not None and s != self._sched_at_override[i]:
                self.override[i] = None  # the clock moved on: back to automatic
            self.on[i] = s if self.override[i] is None else bool(self.override[i])
        rng = self.rng
        drift = 2.0 * math.sin(now / 900.0 + self._phase_offset)  # slow grid swing
        self.voltage = [220.0 + drift + rng.gauss(0, 0.6) for _ in range(3)]
        for f in self._active("voltage_sag", now):
            self.voltage = [float(f.params["voltage"]) + rng.gauss(0, 0.5) for _ in range(3)]
        if self._active("supply_loss", now):
            self.voltage = [0.0, 0.0, 0.0]
        stolen = {int(f.params["circuit"]) for f in self._active("cable_theft", now)}
        failed: dict[int, int] = {}
        for f in self._active("lamp_failure", now):
            failed[int(f.params["circuit"])] = failed.get(int(f.params["circuit"]), 0) + int(
                f.params["lamps"]
            )
        self.phase_current = [0.0, 0.0, 0.0]
        power = 0.0
        for i in range(self.cab.circuits):
            ph = i % 3
            # A circuit draws nothing when open, unpowered, or cut (theft leaves mA of noise).
            if not self.on[i] or self.voltage[ph] < 50:
                amps = 0.0
            elif i + 1 in stolen:
                amps = abs(rng.gauss(0.02, 0.01))
            else:
                lamps = max(0, self.cab.lamps_per_circuit[i] - failed.get(i + 1, 0))
                amps = (
                    lamps
                    * self.cab.lamp_watts
                    / (self.voltage[ph] * _PF)
                    * rng.uniform(0.985, 1.015)
                )
            self.circuit_current[i] = amps
            self.phase_current[ph] += amps
            power += self.voltage[ph] * amps * _PF
        self.active_power = power / 1000.0
        self.power_factor = (_PF + rng.gauss(0, 0.005)) if power > 50 else 0.0
        self.energy += self.active_power * dt / 3600.0
        self.leakage = min(30.0, max(1.0, self.leakage + rng.gauss(0, 0.2)))
        self.door_open = bool(self._active("door_open", now))

    def leakage_now(self, now: float) -> float:
        """Leakage current in mA, with an injected leakage fault on top."""
        extra = [float(f.params["ma"]) for f in self._active("leakage", now)]
        return max([self.leakage, *extra])

    def state(self, now: float) -> dict[str, float | bool]:
        """Current values keyed by the profile's point keys."""
        out: dict[str, float | bool] = {
            "voltage_l1": self.voltage[0],
            "voltage_l2": self.voltage[1],
            "voltage_l3": self.voltage[2],
            "current_l1": self.phase_current[0],
            "current_l2": self.phase_current[1],
            "current_l3": self.phase_current[2],
            "active_power": self.active_power,
            "power_factor": self.power_factor,
            "energy": self.energy,
            "leakage_current": self.leakage_now(now),
            "door_open": self.door_open,
        }
        for i in range(self.cab.circuits):
            out[f"circuit{i + 1}_on"] = self.on[i]
            out[f"circuit{i + 1}_current"] = self.circuit_current[i]
        return out
