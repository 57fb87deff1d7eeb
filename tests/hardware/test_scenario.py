"""Scenario timelines inject faults at their time, visibly on the wire, with ground truth."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from asyncua import Client

from hardware.inventory import build_inventory
from hardware.sim.city import SimulatedCity
from hardware.sim.clock import SimClock
from hardware.sim.faults import FaultError, load_scenario
from tests.hardware.conftest import run

_SCENARIO = """
clock: {start: "21:30"}   # night, so the circuits are lit when the cable goes
faults:
  - {at_s: 0.5, kind: cable_theft, device: LC-0001, circuit: 1}
  - {at_s: 0.5, kind: door_open, device: LC-0002}
  - {at_s: 0.2, kind: dust_episode, device: DM-0001, pm10: 420, duration_s: 600}
"""


def test_cable_theft_collapses_current_with_contactor_closed(tmp_path: Path) -> None:
    scenario = tmp_path / "theft.yaml"
    scenario.write_text(_SCENARIO, encoding="utf-8")
    truth = tmp_path / "truth.jsonl"

    wall = [time.time()]  # the test holds the clock still until it has read "before"

    async def body() -> None:
        clock = SimClock("21:30", wall=lambda: wall[0])
        city = SimulatedCity(
            build_inventory("tiny"), scenario=scenario, ground_truth=truth, clock=clock
        )
        endpoints = await city.start()
        try:
            server = endpoints["opcua"][0]
            async with Client(server["endpoint"], timeout=5) as client:
                idx = await client.get_namespace_index(server["namespace"])
                on = client.get_node(f"ns={idx};s=LC-0001.Circuit1.On")
                amps = client.get_node(f"ns={idx};s=LC-0001.Circuit1.Current")
                before = await amps.read_value()
                assert before > 5 and await on.read_value() is True
                assert city.injected == 0
                wall[0] += 1.0  # past every fault's at_s
                deadline = time.monotonic() + 15
                while (now_amps := await amps.read_value()) > 0.1:
                    assert time.monotonic() < deadline, f"current still {now_amps} A"
                    await asyncio.sleep(0.05)
                assert await on.read_value() is True  # contactor still closed
                assert (
                    await client.get_node(f"ns={idx};s=LC-0001.Circuit2.Current").read_value() > 5
                )
                assert await client.get_node(f"ns={idx};s=LC-0002.DoorOpen").read_value() is True
            pm10 = city.state("DM-0001")["pm10"]
            assert (
                pm10 > 400 and city.state("DM-0001")["tsp"] > pm10 > city.state("DM-0001")["pm25"]
            )
        finally:
            await city.stop()

    run(body())
    lines = [json.loads(line) for line in truth.read_text(encoding="utf-8").splitlines()]
    assert [(x["kind"], x["device"]) for x in lines] == [
        ("dust_episode", "DM-0001"),
        ("cable_theft", "LC-0001"),
        ("door_open", "LC-0002"),
    ]
    assert lines[1]["circuit"] == 1 and lines[0]["pm10"] == 420 and lines[0]["duration_s"] == 600
    assert all(isinstance(x["ts_ns"], int) for x in lines)


def test_shipped_demo_scenario_is_valid_for_both_sizes(repo_root: Path) -> None:
    path = repo_root / "hardware" / "scenarios" / "demo.yaml"
    for size in ("tiny", "district"):
        city = SimulatedCity(build_inventory(size), scenario=path)
        kinds = [(f["kind"], f["device"]) for _, f in city.timeline]
        assert ("cable_theft", "LC-0001") in kinds and ("overspeed", "TRK-0002") in kinds
        assert city.clock_start == "20:30"


def test_bad_scenarios_and_faults_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "faults:\n  - {at_s: 1, kind: meteor, device: LC-0001}\n"
        "  - {at_s: -1, kind: door_open, device: LC-0001}\n"
        "  - {at_s: 2, kind: overspeed, device: LC-0001}\n"
        "  - {at_s: 2, kind: door_open, device: LC-9999}\n",
        encoding="utf-8",
    )
    kinds = {"LC-0001": "lighting_cabinet"}
    with pytest.raises(FaultError) as err:
        load_scenario(bad, kinds)
    text = str(err.value)
    assert "faults[0]: unknown fault kind 'meteor'" in text
    assert "faults[1]: at_s must be a number >= 0" in text
    assert "faults[2]: fault overspeed does not apply to LC-0001" in text
    assert "faults[3]: fault door_open: unknown device 'LC-9999'" in text
    city = SimulatedCity(build_inventory("tiny"))
    with pytest.raises(FaultError, match="circuits 1..6"):
        city.inject({"kind": "cable_theft", "device": "LC-0001", "circuit": 9})
    with pytest.raises(FaultError, match="pm10 must be a number"):
        city.inject({"kind": "dust_episode", "device": "DM-0001", "pm10": "lots"})
    assert city.injected == 0
