"""Tracker fixes seen by mosquitto_sub and by a plain paho subscriber on a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from datetime import datetime

import pytest

from contracts.config import BrokerConfig
from contracts.mqtt import make_client
from hardware.inventory import build_inventory
from hardware.sim.city import SimulatedCity
from hardware.sim.clock import SimClock
from tests.hardware.conftest import run, wait_for

pytestmark = pytest.mark.servers


@pytest.mark.skipif(
    shutil.which("mosquitto_sub") is None,
    reason="mosquitto_sub not on PATH (apt install mosquitto-clients)",
)
def test_mosquitto_sub_sees_tracker_fixes(mqtt_broker: BrokerConfig) -> None:
    async def body() -> None:
        sub = await asyncio.create_subprocess_exec(
            "mosquitto_sub",
            "-h",
            mqtt_broker.host,
            "-p",
            str(mqtt_broker.port),
            "-q",
            "1",
            "-t",
            "trackers/+/gps",
            "-v",
            "-C",
            "6",
            "-W",
            "15",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        city = SimulatedCity(build_inventory("tiny"), mqtt=mqtt_broker, tracker_interval_s=0.3)
        endpoints = await city.start()
        try:
            assert [t["topic"] for t in endpoints["mqtt_trackers"]] == [
                "trackers/TRK-0001/gps",
                "trackers/TRK-0002/gps",
                "trackers/TRK-0003/gps",
            ]
            out, err = await sub.communicate()
        finally:
            await city.stop()
        assert sub.returncode == 0, err.decode()
        lines = out.decode().splitlines()
        assert len(lines) == 6
        for line in lines:
            topic, payload = line.split(" ", 1)
            doc = json.loads(payload)
            assert topic == f"trackers/{doc['devId']}/gps"
            assert set(doc) == {"devId", "gpsTime", "lat", "lng", "spd", "dir", "cover"}
            assert 30.3 < doc["lat"] < 31.0 and 103.7 < doc["lng"] < 104.5
            assert 0 <= doc["spd"] <= 50 and 0 <= doc["dir"] < 360 and doc["cover"] in (0, 1)
            assert abs(doc["gpsTime"] / 1000 - time.time()) < 30

    run(body())


def test_paho_subscriber_sees_motion_overspeed_and_offline(mqtt_broker: BrokerConfig) -> None:
    got: list[dict] = []
    sub = make_client(mqtt_broker, "test-sub")
    subscribed = []
    sub.on_connect = lambda c, u, f, rc, p=None: c.subscribe("trackers/+/gps", qos=1)
    sub.on_subscribe = lambda *a: subscribed.append(True)
    sub.on_message = lambda c, u, m: got.append(json.loads(m.payload))
    sub.connect(mqtt_broker.host, mqtt_broker.port)
    sub.loop_start()

    async def body() -> None:
        await wait_for(lambda: subscribed, 10, "subscription")
        city = SimulatedCity(build_inventory("tiny"), mqtt=mqtt_broker, tracker_interval_s=0.2)
        await city.start()
        try:
            first = await wait_for(
                lambda: [d for d in got if d["devId"] == "TRK-0001"], 10, "TRK-0001 fixes"
            )
            city.inject({"kind": "overspeed", "device": "TRK-0001", "speed": 85, "duration_s": 60})
            city.inject({"kind": "device_offline", "device": "TRK-0003", "duration_s": 60})
            mark = len(got)
            fast = await wait_for(
                lambda: [d for d in got[mark:] if d["devId"] == "TRK-0001" and d["spd"] > 80],
                10,
                "overspeed fix",
            )
            assert (fast[-1]["lat"], fast[-1]["lng"]) != (first[0]["lat"], first[0]["lng"])
            mark = len(got)
            await wait_for(
                lambda: sum(d["devId"] == "TRK-0002" for d in got[mark:]) >= 5, 10, "more fixes"
            )
            assert not [d for d in got[mark:] if d["devId"] == "TRK-0003"]
        finally:
            await city.stop()

    try:
        run(body())
    finally:
        sub.loop_stop()
        sub.disconnect()


def test_trackers_report_on_the_simulated_clock_each_at_its_own_interval(
    mqtt_broker: BrokerConfig,
) -> None:
    got: list[dict] = []
    sub = make_client(mqtt_broker, "test-sub-clock")
    subscribed = []
    sub.on_connect = lambda c, u, f, rc, p=None: c.subscribe("trackers/+/gps", qos=1)
    sub.on_subscribe = lambda *a: subscribed.append(True)
    sub.on_message = lambda c, u, m: got.append(json.loads(m.payload))
    sub.connect(mqtt_broker.host, mqtt_broker.port)
    sub.loop_start()
    start = datetime.fromisoformat("2026-12-21T17:00+08:00").timestamp()

    async def body() -> dict[str, float]:
        await wait_for(lambda: subscribed, 10, "subscription")
        clock = SimClock("2026-12-21T17:00", 60)  # a minute a second
        city = SimulatedCity(
            build_inventory("tiny"), mqtt=mqtt_broker, clock=clock, tracker_interval_s=(10, 30)
        )
        endpoints = await city.start()
        try:
            await wait_for(
                lambda: all(
                    sum(d["devId"] == t for d in got) >= 6
                    for t in ("TRK-0001", "TRK-0002", "TRK-0003")
                ),
                60,
                "six fixes from every tracker",
            )
            assert all(start <= d["gpsTime"] / 1000 <= clock.now() for d in got)
        finally:
            await city.stop()
        return {e["device_id"]: e["interval_s"] for e in endpoints["mqtt_trackers"]}

    try:
        intervals = run(body(), timeout_s=90)
    finally:
        sub.loop_stop()
        sub.disconnect()
    assert all(10 <= iv <= 30 for iv in intervals.values()) and len(set(intervals.values())) == 3
    firsts = []
    for dev, iv in intervals.items():
        stamps = sorted(d["gpsTime"] / 1000 for d in got if d["devId"] == dev)
        firsts.append(stamps[0])
        gaps = sorted(b - a for a, b in zip(stamps, stamps[1:], strict=False))
        assert 0.8 * iv <= gaps[len(gaps) // 2] <= 1.25 * iv, (dev, iv, gaps)  # simulated s
    assert len(set(firsts)) == 3  # not in step: each tracker has its own phase
