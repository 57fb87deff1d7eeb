"""MQTT trackers share one connection to a real Mosquitto, routed by topic."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import paho.mqtt.client as mqtt
import pytest

from contracts.config import BrokerConfig, DeviceConfig
from drivers.mqtt_tracker import MqttTrackerDriver
from drivers.mqtt_tracker import hub as hubs
from tests.drivers._opcua import until

pytestmark = pytest.mark.servers


def _tracker(i: int, broker: BrokerConfig, topic: str = "") -> MqttTrackerDriver:
    dev = DeviceConfig(
        id=f"TRK-H{i}",
        kind="vehicle",
        protocol="mqtt_tracker",
        profile="mqtt_json_tracker",
        endpoint=topic or f"rg-test/hub/{i}/gps",
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


def _backlog(pub: mqtt.Client, topics_speeds: list[tuple[str, str, float]]) -> None:
    for topic, dev, speed in topics_speeds:
        pub.publish(topic, _fix(dev, speed), qos=1).wait_for_publish(5)


def test_durable_hub_leaves_a_late_trackers_backlog_unacked_until_it_attaches(
    mqtt_broker: BrokerConfig, monkeypatch
) -> None:
    """After a restart the broker sends the session's backlog for every topic at once; a
    tracker not attached yet must get its fixes later (redelivered), not lose them."""
    monkeypatch.setattr(hubs, "REDELIVER_AFTER_S", 0.3)
    session = f"test-{uuid.uuid4().hex[:8]}"
    a, b = (f"rg-test/hub-late/{session}/{x}/gps" for x in "ab")
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    pub.connect(mqtt_broker.host, mqtt_broker.port)
    pub.loop_start()

    async def main() -> None:
        got: dict[str, list[bytes]] = {a: [], b: []}

        def handler(topic: str):
            def on(payload: bytes, ack) -> None:  # paho's thread
                got[topic].append(payload)
                if ack is not None:
                    ack()

            return on

        on_a, on_b = handler(a), handler(b)
        loop = asyncio.get_running_loop()
        first = hubs.TrackerHub(mqtt_broker, loop, session)
        ready = [first.attach(a, on_a), first.attach(b, on_b)]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 15)
        await first.stop()  # the agent is away; the session keeps the subscriptions
        _backlog(pub, [(a, "TRK-A", 1.0), (b, "TRK-B", 2.0)])
        again = hubs.TrackerHub(mqtt_broker, loop, session)
        again.users = 1  # as acquire() counts it: a redelivery cycle reconnects
        try:
            again.attach(a, on_a)  # B's first poll is still to come
            await until(lambda: got[a] and again.unrouted >= 1, 15, "A's fix, B's unrouted")
            assert got[b] == [] and again.unrouted_unacked == again.unrouted
            again.attach(b, on_b)
            await until(lambda: got[b], 30, "B's fix, sent again after a reconnect")
            assert json.loads(got[b][0])["spd"] == 2.0
            assert again.reconnects_for_redelivery >= 1
        finally:
            await again.stop()

    try:
        asyncio.run(asyncio.wait_for(main(), 90))
    finally:
        pub.loop_stop()
        pub.disconnect()


def test_durable_trackers_are_attached_before_the_first_one_connects(
    mqtt_broker: BrokerConfig,
) -> None:
    """use_commit() attaches the route at once: the backlog finds every tracker's route."""
    session = f"test-{uuid.uuid4().hex[:8]}"
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    pub.connect(mqtt_broker.host, mqtt_broker.port)
    pub.loop_start()

    async def main() -> None:
        committed: dict[str, list[float]] = {}

        def commit(device_id: str, rows: list) -> asyncio.Future[bool]:
            committed.setdefault(device_id, []).extend(r.value for r in rows if r.field == "speed")
            fut = asyncio.get_running_loop().create_future()
            fut.set_result(True)
            return fut

        def durable(i: int) -> MqttTrackerDriver:
            drv = _tracker(100 + i, mqtt_broker, f"rg-test/{session}/{i}")
            drv.use_commit(session, commit)
            return drv

        first = [durable(i) for i in range(2)]
        for d in first:
            await d.connect()
        for d in first:
            await d.suspend()  # the agent stops: the session keeps both subscriptions
        _backlog(pub, [(f"rg-test/{session}/{i}", f"TRK-H{100 + i}", 30.0 + i) for i in range(2)])
        again = [durable(i) for i in range(2)]  # a restarted agent builds every driver
        try:
            await again[0].connect()  # ... and only the first one's poll has come
            await until(lambda: len(committed) == 2, 15, "both backlogs")
            assert committed == {"TRK-H100": [30.0], "TRK-H101": [31.0]}
            [hub] = [h for h in hubs._HUBS.mine() if h.session == session]
            assert hub.unrouted == 0
        finally:
            for d in again:
                await d.close()

    try:
        asyncio.run(asyncio.wait_for(main(), 60))
    finally:
        pub.loop_stop()
        pub.disconnect()


def test_a_fix_arriving_after_the_loop_closed_is_left_unacked_not_raised(
    mqtt_broker: BrokerConfig,
) -> None:
    """Paho's thread can outlive the agent's loop: the fix stays unacked (the broker sends
    it again next run) instead of a RuntimeError killing paho's thread."""
    drv = _tracker(200, mqtt_broker)
    loop = asyncio.new_event_loop()
    loop.close()
    drv._commit, drv._loop = (lambda _d, _r: None), loop  # type: ignore[assignment]
    acked: list[int] = []
    drv._on_payload(_fix("TRK-H200", 5.0), lambda: acked.append(1))  # must not raise
    assert acked == [] and hubs.call_soon(loop, print) is False
