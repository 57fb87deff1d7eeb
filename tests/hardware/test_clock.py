"""One simulated clock: a night at 3600× with lights, ground truth and stamps in simulated time."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from asyncua import Client, ua

from contracts.astro import CST, lights_on, switch_times
from hardware.inventory import build_inventory
from hardware.sim.city import SimulatedCity
from hardware.sim.clock import ClockError, SimClock
from hardware.sim.faults import FaultError, load_scenario
from hardware.sim.hj212_device import encode_frame
from tests.hardware.conftest import run, wait_for

_NIGHT = "2026-12-21T16:30"  # winter solstice: the longest night
_SPEED = 3600.0  # an hour a second
_TICK_S = 60.0  # simulated seconds between samples


def _cst(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=CST).timestamp()


def test_a_deployment_given_the_city_clock_reads_the_same_time() -> None:
    from contracts.config import ClockConfig

    wall = [_cst("2026-12-21T08:00") + 0.123]  # a fractional anchor must survive the trip
    for start in ("17:30", None):
        city = SimClock(start, 120, wall=lambda: wall[0])
        city.restart()
        c = city.describe()  # what `rongguan simulate` writes into endpoints.json
        deployment = ClockConfig(speed=c["speed"], start=c["start"], anchor=c["anchor"]).build()
        for step in (0.0, 7.5, 3600.0):
            w = wall[0] + step
            assert abs(deployment.at(w) - city.at(w)) < 1e-3, (start, step)


def test_clock_maps_wall_to_simulated_time_and_chooses_stamps() -> None:
    wall = [1_000.0]
    clock = SimClock(_NIGHT, 60, wall=lambda: wall[0])
    assert clock.now() == _cst(_NIGHT) and clock.stamps == "sim"
    wall[0] += 30
    assert clock.now() == _cst(_NIGHT) + 1800 and clock.elapsed() == 1800
    assert clock.wall_of(clock.now()) == wall[0] and clock.wall_s(600) == 10
    assert clock.stamp(clock.now()) == clock.now()
    shifted = SimClock("20:30", wall=lambda: wall[0])  # the live demo: stamps stay wall time
    assert shifted.stamps == "wall" and shifted.stamp(shifted.now()) == wall[0]
    assert datetime.fromtimestamp(shifted.now(), CST).strftime("%H:%M") == "20:30"
    assert SimClock(speed=1, stamps="sim", wall=lambda: wall[0]).stamp(5.0) == 5.0
    anchored = SimClock(_NIGHT, 10, anchor=wall[0] - 6, wall=lambda: wall[0])
    assert anchored.elapsed() == 60  # parts of a city sharing an anchor share the time


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"start": "25:00"}, "HH:MM or an ISO date-time"),
        ({"start": "tonight"}, "HH:MM or an ISO date-time"),
        ({"speed": 0}, "speed must be in"),
        ({"speed": 10_000}, "speed must be in"),
        ({"speed": "fast"}, "speed must be a number"),
        ({"stamps": "gps"}, "stamps must be 'sim' or 'wall'"),
    ],
)
def test_bad_clock_settings_are_clear_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ClockError, match=message):
        SimClock(**kwargs)


def test_scenario_clock_takes_dates_speed_and_stamps(tmp_path: Path) -> None:
    kinds = {"LC-0001": "lighting_cabinet"}
    good = tmp_path / "night.yaml"
    good.write_text(f'clock: {{start: "{_NIGHT}", speed: 600, stamps: sim}}\nfaults: []\n')
    plan = load_scenario(good, kinds)
    assert (plan.clock_start, plan.time_scale, plan.stamps) == (_NIGHT, 600.0, "sim")
    bad = tmp_path / "bad.yaml"
    bad.write_text('clock: {start: "dusk", scale: 1, stamps: gps}\nfaults: []\n')
    with pytest.raises(FaultError, match="clock.start"):
        load_scenario(bad, kinds)


class _Recorder:
    """Every sample of the subscribed nodes: (node id, value, SourceTimestamp epoch s)."""

    def __init__(self) -> None:
        self.samples: list[tuple[str, object, float]] = []

    def datachange_notification(self, node, val, data) -> None:  # type: ignore[no-untyped-def]
        stamp = data.monitored_item.Value.SourceTimestamp
        self.samples.append((node.nodeid.Identifier, val, stamp.replace(tzinfo=UTC).timestamp()))


def _every_sample(nodes: list, first_handle: int) -> list[ua.MonitoredItemCreateRequest]:
    # Trigger on the source timestamp too: every tick is a sample, not only changes.
    out = []
    for i, node in enumerate(nodes):
        params = ua.MonitoringParameters()
        params.ClientHandle = first_handle + i
        params.SamplingInterval = 0
        params.QueueSize = 10_000
        params.DiscardOldest = True
        params.Filter = ua.DataChangeFilter(Trigger=ua.DataChangeTrigger.StatusValueTimestamp)
        req = ua.MonitoredItemCreateRequest()
        req.ItemToMonitor = ua.ReadValueId(NodeId=node.nodeid, AttributeId=ua.AttributeIds.Value)
        req.MonitoringMode = ua.MonitoringMode.Reporting
        req.RequestedParameters = params
        out.append(req)
    return out


def test_a_night_at_3600x_switches_at_the_astronomical_times(tmp_path: Path) -> None:
    scenario = tmp_path / "night.yaml"
    scenario.write_text(
        f'clock: {{start: "{_NIGHT}", scale: {_SPEED}}}\n'
        "faults:\n  - {at_s: 7200, kind: door_open, device: LC-0002, duration_s: 1800}\n"
    )
    truth = tmp_path / "truth.jsonl"
    inv = build_inventory("tiny")
    cab = next(c for c in inv.cabinets if c.id == "LC-0001")
    morning = datetime.fromisoformat("2026-12-22T09:00").replace(tzinfo=CST).timestamp()
    rec = _Recorder()

    async def body() -> None:
        city = SimulatedCity(inv, scenario=scenario, ground_truth=truth, tick_s=_TICK_S)
        endpoints = await city.start()
        try:
            server = endpoints["opcua"][0]
            async with Client(server["endpoint"], timeout=10) as client:
                idx = await client.get_namespace_index(server["namespace"])
                nodes = [
                    client.get_node(f"ns={idx};s=LC-0001.Circuit1.On"),
                    client.get_node(f"ns={idx};s=LC-0002.DoorOpen"),
                ]
                sub = await client.create_subscription(50, rec)
                await sub.create_monitored_items(_every_sample(nodes, 1000))
                # The night passes in ~16 wall seconds; wait generously on a loaded machine.
                await wait_for(lambda: any(s[2] > morning for s in rec.samples), 180, "the morning")
                await sub.delete()
        finally:
            await city.stop()

    run(body(), timeout_s=240)
    on = sorted((t, v) for n, v, t in rec.samples if n == "LC-0001.Circuit1.On")
    # Every sample agrees with the astronomical clock at its own (simulated) timestamp...
    for t, value in on:
        when = datetime.fromtimestamp(t, UTC)
        assert value is lights_on(cab.lat, cab.lon, when, 10, -10), when.astimezone(CST)
    # ...and the switching instants fall between two consecutive samples: ±1 interval.
    _, dusk = switch_times(cab.lat, cab.lon, date(2026, 12, 21), 10, -10)
    dawn, _ = switch_times(cab.lat, cab.lon, date(2026, 12, 22), 10, -10)
    flips = [(a, b) for a, b in zip(on, on[1:], strict=False) if a[1] != b[1]]
    assert [(a[1], b[1]) for a, b in flips] == [(False, True), (True, False)]
    for (before, after), instant in zip(flips, (dusk, dawn), strict=True):
        assert before[0] <= instant.timestamp() <= after[0]
    assert on[0][0] < _cst(_NIGHT) + 3 * 3600  # the run began in the afternoon
    # Ground truth carries simulated times, and the door opened on the wire at that time.
    (line,) = [json.loads(x) for x in truth.read_text().splitlines()]
    start = datetime.fromisoformat(line["sim_start"]).timestamp()
    assert line["stamps"] == "sim" and line["time_scale"] == _SPEED
    assert line["start_ns"] == line["ts_ns"] == pytest.approx(start * 1e9, abs=1e6)
    assert _cst(_NIGHT) + 7200 <= start
    assert line["end_ns"] == pytest.approx(line["start_ns"] + 1800e9, abs=1e6)
    door = sorted((t, v) for n, v, t in rec.samples if n == "LC-0002.DoorOpen")
    opened = [t for t, v in door if v is True]
    assert opened and opened[0] == pytest.approx(start, abs=0.01)
    assert max(opened) < line["end_ns"] / 1e9 <= min(t for t, v in door if t > opened[0] and not v)


def test_push_devices_stamp_and_pace_on_the_simulated_clock() -> None:
    frames: list[dict[str, str]] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            seg = line[6:-6].decode()
            head = dict(p.split("=", 1) for p in seg.split("CP=&&")[0].split(";") if "=" in p)
            data = seg.split("CP=&&")[1].split(";")[0]
            frames.append({**head, "DataTime": data.removeprefix("DataTime=")})
            reply = f"QN={head['QN']};ST=91;CN=9014;PW={head['PW']};MN={head['MN']};Flag=4;CP=&&&&"
            writer.write(encode_frame(reply))  # the device asked for a reply (Flag bit A)
            await writer.drain()

    async def body() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        inv = build_inventory("tiny", push_devices=True)
        clock = SimClock(_NIGHT, 600)  # ten minutes a second
        city = SimulatedCity(inv, clock=clock, agent_listeners={"hj212": ("127.0.0.1", port)})
        await city.start()
        try:
            # every 20 simulated seconds: several real-time frames a wall second
            await wait_for(lambda: sum(f["CN"] == "2051" for f in frames) >= 4, 60, "minutes")
        finally:
            await city.stop()
            server.close()
        now = clock.now()  # after the stop: frames still arrive while the devices wind down
        for f in frames:
            when = datetime.strptime(f["DataTime"], "%Y%m%d%H%M%S").replace(tzinfo=CST)
            assert _cst(_NIGHT) - 1 <= when.timestamp() <= now + 1, f
            assert f["QN"].startswith(when.strftime("%Y%m%d%H%M"))
        for mn in {f["MN"] for f in frames}:  # CN 2051 minute frames, a simulated minute apart
            ts = [
                datetime.strptime(f["DataTime"], "%Y%m%d%H%M%S").timestamp()
                for f in frames
                if f["MN"] == mn and f["CN"] == "2051"
            ]
            gaps = [b - a for a, b in zip(ts, ts[1:], strict=False)]
            assert all(g > 0 and g % 60 == 0 for g in gaps), ts

    run(body(), timeout_s=90)
