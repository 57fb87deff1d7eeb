"""MQTT trackers share one connection to a real Mosquitto, routed by topic."""

from __future__ import annotations

import asyncio
import json
import time

import paho.mqtt.client as mqtt
import pytest

from contracts.config import BrokerConfig, DeviceConfig
from drivers.mqtt_tracker import MqttTrackerDriver
from drivers.mqtt_tracker import hub as hubs

pytestmark = pytest.mark.servers


def _tracker(i: int, broker: BrokerConfig) -> MqttTrackerDriver:
    dev = DeviceConfig(
        id=f"TRK-H{i}",
        kind="vehicle",
        protocol="mqtt_tracker",
        profile="mqtt_json_tracker",
        endpoint=f"rg-test/hub/{i}/gps",
        timeout_s=10,
    )
    return MqttTrackerDriver(dev, broker)


def _fix(device_id: str, speed: float) -> bytes:
    doc = {"devId": device_id, "gpsTime": int(time.time() * 1000), "lat": 30.6, "lng": 104.0}
    return json.dumps({**doc, "spd": speed, "dir": 0, "cover": 0}).encode()


def test_trackers_share_one_connection_and_get_only_their_topic(mqtt_broker: BrokerConfig) -> None:
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    pub.connect(mqtt_broker.host, mqtt_broker.port)
    pub.loop_start()

    async def read_until(drv: MqttTrackerDriver, n: int) -> list:
        rows: list = []
        deadline = time.monotonic() + 10
        while len({r.ts for r in rows}) < n:
            assert time.monotonic() < deadline, rows
            rows += await drv.read()
            await asyncio.sleep(0.02)
        return rows

    async def main() -> None:
        drivers = [_tracker(i, mqtt_broker) for i in range(3)]
        for d in drivers:
            await d.connect()
        [hub] = [h for h in hubs._HUBS.mine() if h.broker.url == mqtt_broker.url]
        assert hub.users == 3
        for i, d in enumerate(drivers):
            pub.publish(d.settings.topic, _fix(d.device.id, 10.0 + i), qos=1).wait_for_publish(5)
        for i, d in enumerate(drivers):
            rows = await read_until(d, 1)
            assert {r.device_id for r in rows} == {d.device.id}
            assert {r.value for r in rows if r.field == "speed"} == {10.0 + i}

        await drivers[0].close()  # leaves: its topic is no longer delivered
        assert hub.users == 2
        pub.publish(drivers[0].settings.topic, _fix("TRK-H0", 99.0), qos=1).wait_for_publish(5)
        pub.publish(drivers[1].settings.topic, _fix("TRK-H1", 42.0), qos=1).wait_for_publish(5)
        rows = await read_until(drivers[1], 1)
        assert {r.value for r in rows if r.field == "speed"} == {42.0}
        assert drivers[0].stats()["fixes"] == 1 and drivers[1].stats()["bad_fixes"] == 0
        for d in drivers[1:]:
            await d.close()
        assert not [h for h in hubs._HUBS.mine() if h.broker.url == mqtt_broker.url]

    try:
        asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        pub.loop_stop()
        pub.disconnect()
