"""Device behaviour: electrical consistency, overrides, faults, dust ordering, truck motion."""

from __future__ import annotations

import random
from datetime import datetime

import pytest

from contracts.astro import CST
from hardware.inventory import build_inventory
from hardware.sim.dust import DustModel
from hardware.sim.faults import Fault
from hardware.sim.lighting import CabinetModel, CircuitError
from hardware.sim.trucks import TruckModel

NIGHT = datetime(2026, 6, 21, 22, 0, tzinfo=CST).timestamp()
NOON = datetime(2026, 6, 21, 12, 0, tzinfo=CST).timestamp()


def _cabinet(i: int = 0) -> CabinetModel:
    return CabinetModel(build_inventory("tiny").cabinets[i], random.Random(3))


def test_circuit_current_is_lamps_times_watts_over_volts_times_pf() -> None:
    m = _cabinet()
    m.step(NIGHT)
    s = m.state(NIGHT)
    for c in range(1, m.cab.circuits + 1):
        assert s[f"circuit{c}_on"] is True
        phase_v = s[f"voltage_l{(c - 1) % 3 + 1}"]
        expected = m.cab.lamps_per_circuit[c - 1] * m.cab.lamp_watts / (phase_v * 0.95)
        assert s[f"circuit{c}_current"] == pytest.approx(expected, rel=0.02)
    assert s["current_l1"] == pytest.approx(sum(s[f"circuit{c}_current"] for c in (1, 4)))
    assert 210 < s["voltage_l2"] < 230


def test_schedule_by_day_and_manual_override_until_the_clock_moves_on() -> None:
    m = _cabinet()
    m.step(NOON)
    assert not any(m.on) and m.state(NOON)["active_power"] == 0
    assert m.command(2, True, NOON) is True
    m.step(NOON + 60)
    assert m.on[1] and m.state(NOON + 60)["circuit2_current"] > 1
    m.step(NIGHT)  # sunset passed: automatic again, everything lit
    m.command(2, False, NIGHT)
    m.step(NIGHT + 60)
    assert not m.on[1] and m.on[0]
    with pytest.raises(CircuitError):
        m.command(7, True, NIGHT)


def test_energy_accumulates_with_power() -> None:
    m = _cabinet()
    m.step(NIGHT)
    e0, p = m.energy, m.active_power
    m.step(NIGHT + 3600)
    assert m.energy - e0 == pytest.approx(m.active_power, rel=0.05) and p > 1


def test_cable_theft_collapses_current_with_contactor_closed() -> None:
    m = _cabinet()
    m.faults.append(Fault("cable_theft", m.cab.id, {"circuit": 1}, NIGHT, None))
    m.step(NIGHT)
    s = m.state(NIGHT)
    assert s["circuit1_on"] is True and s["circuit1_current"] < 0.1
    assert s["circuit2_current"] > 5


def test_dust_ordering_diurnal_band_and_episode() -> None:
    mon = build_inventory("tiny").dust_monitors[0]
    d = DustModel(mon, random.Random(5))
    for k in range(200):
        d.step(NOON + 60 * k)
        v = d.state(NOON + 60 * k)
        assert v["pm25"] < v["pm10"] < v["tsp"] and 55 <= v["pm10"] <= 125
        assert 50 <= v["noise"] <= 68
    d.faults.append(Fault("dust_episode", mon.id, {"pm10": 420}, NOON, NOON + 600))
    d.step(NOON + 10)
    v = d.state(NOON + 10)
    assert 400 < v["pm10"] < 440 and v["pm25"] < v["pm10"] < v["tsp"]
    d.step(NOON + 700)
    assert d.state(NOON + 700)["pm10"] < 130


def test_trucks_drive_at_plausible_speed_and_obey_overspeed() -> None:
    inv = build_inventory("tiny")
    t = TruckModel(inv.vehicles[0], inv, random.Random(9))
    t.step(NOON)
    prev = (t.lat, t.lon)
    t.step(NOON + 2)
    assert 20 <= t.speed <= 50 and (t.lat, t.lon) != prev
    assert 30.3 < t.lat < 31.0 and 103.7 < t.lon < 104.5
    t.faults.append(Fault("overspeed", t.veh.id, {"speed": 85.0}, NOON, NOON + 120))
    t.step(NOON + 4)
    assert t.state(NOON + 4)["speed"] > 80
