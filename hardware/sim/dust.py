"""Behaviour of a construction-site dust and noise monitor.

PM10 follows a diurnal baseline (night-time inversions high, afternoon mixing low) plus
construction activity in working hours and AR(1) noise; PM2.5 and TSP follow PM10 with
slowly wandering ratios, so PM2.5 < PM10 < TSP holds unless a fault breaks it. Values are
canonical (µg/m³, dB(A), m/s, °, °C, %RH); the protocol servers convert units. Every time
argument is simulated epoch seconds (see :mod:`hardware.sim.clock`).
"""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime

from contracts.astro import CST
from hardware.inventory import DustMonitor
from hardware.sim.faults import Fault

__all__ = ["DustModel"]

_RANGE_UGM3 = 10_000.0  # the particulate channels' measuring range (10 mg/m³)


class DustModel:
    """Ground-truth state of one dust monitor, advanced by :meth:`step`."""

    def __init__(self, mon: DustMonitor, rng: random.Random):
        self.mon = mon
        self.rng = rng
        self.base = rng.uniform(70.0, 100.0)  # site's typical PM10
        self.pm25_ratio = rng.uniform(0.5, 0.65)
        self.tsp_ratio = rng.uniform(1.5, 1.8)
        self._resid = 0.0
        self.wind_direction = rng.uniform(0, 360)
        self.wind_speed = rng.uniform(0.5, 2.5)
        self.faults: list[Fault] = []
        self.values: dict[str, float] = {}
        self._frozen: dict[str, float] | None = None

    def step(self, now: float) -> None:
        """Advance every quantity to ``now``."""
        self.faults = [f for f in self.faults if f.until is None or now < f.until]
        if any(f.kind == "sensor_flatline" for f in self.faults) and self.values:
            self._frozen = self._frozen or dict(self.values)
            self.values = dict(self._frozen)
            return
        self._frozen = None
        rng = self.rng
        local = datetime.fromtimestamp(now, UTC).astimezone(CST)
        h = local.hour + local.minute / 60
        working = 7 <= h < 19
        diurnal = 1 + 0.2 * math.cos(2 * math.pi * (h - 3) / 24)
        self._resid = 0.97 * self._resid + rng.gauss(0, 2.0)
        pm10 = self.base * diurnal + (12.0 if working else 0.0) + self._resid
        pm10 = min(125.0, max(55.0, pm10))  # keep the everyday baseline in the 60-120 band
        self.pm25_ratio = min(0.7, max(0.45, self.pm25_ratio + rng.gauss(0, 0.003)))
        self.tsp_ratio = min(1.9, max(1.4, self.tsp_ratio + rng.gauss(0, 0.005)))
        pm25_ratio = self.pm25_ratio
        for f in self.faults:
            if f.kind == "dust_episode" and f.active(now):
                pm10 = float(f.params["pm10"]) * rng.uniform(0.97, 1.03)
            elif f.kind == "sensor_spike" and f.active(now) and rng.random() < 0.3:
                pm10 *= float(f.params["factor"])  # isolated one-sample spikes
            elif f.kind == "pm25_over_pm10" and f.active(now):
                pm25_ratio = float(f.params["ratio"])  # a miscalibrated PM2.5 channel
        self.wind_speed = min(6.0, max(0.2, self.wind_speed + rng.gauss(0, 0.1)))
        self.wind_direction = (self.wind_direction + rng.gauss(0, 3)) % 360
        t_mean = 16.5 - 10.5 * math.cos(2 * math.pi * (local.month - 1) / 12)
        temp = t_mean + 4 * math.sin(2 * math.pi * (h - 9) / 24) + rng.gauss(0, 0.1)
        noise = (
            (rng.uniform(55, 66) + (2 if rng.random() < 0.1 else 0))
            if 6 <= h < 22
            else rng.uniform(42, 50)
        )
        self.values = {
            "pm25": pm10 * pm25_ratio,
            "pm10": pm10,
            "tsp": pm10 * self.tsp_ratio,
            "noise": noise,
            "wind_speed": self.wind_speed,
            "wind_direction": self.wind_direction,
            "temperature": temp,
            "humidity": min(98.0, max(35.0, 78 - 2.0 * (temp - t_mean) + rng.gauss(0, 0.5))),
        }

    def flags(self, now: float) -> dict[str, str]:
        """HJ 212 data flag per point key: N normal, D sensor fault, M maintenance, T over range."""
        flag = "N"
        for f in self.faults:
            if f.active(now) and f.kind in ("sensor_fault", "maintenance"):
                flag = "D" if f.kind == "sensor_fault" else "M"
        values = self.values or self.state(now)
        over = {k for k in ("pm25", "pm10", "tsp") if values.get(k, 0.0) > _RANGE_UGM3}
        return {k: ("T" if flag == "N" and k in over else flag) for k in values}

    def state(self, now: float) -> dict[str, float]:
        """Current canonical values keyed by point key."""
        if not self.values:
            self.step(now)
        return dict(self.values)
