"""MQTT trackers under an agent: a fix is PUBACKed only once its rows are on disk.

A real Mosquitto, a plain paho publisher as the tracker, and the agent's shared tracker
hub in durable mode (persistent session, paho ``manual_ack``). A test hook on the hub's
``ack`` notes which fixes the buffer had committed when each PUBACK went out; another
on the buffer refuses writes on cue, and the refused fix must come back from the broker
(redelivery on the session's next connection) and be acked only then.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from contracts.config import BrokerConfig, parse_config
from contracts.telemetry import TelemetryBatch
from drivers.mqtt_tracker import hub as hubs
from edge_agent import EdgeAgent
from tests.edge_agent.test_push_listeners import until

pytestmark = pytest.mark.servers
AGENT = "agent-trk"
TOPIC = "rg-test/durable/TRK-D1/gps"


def _fix(speed: float) -> bytes:
    doc = {"devId": "TRK-D1", "gpsTime": int(time.time() * 1000), "lat": 30.6, "lng": 104.0}
    return json.dumps({**doc, "spd": speed, "dir": 0, "cover": 0}).encode()


def test_tracker_fix_is_acked_after_commit_and_a_refused_one_comes_back(
    mqtt_broker: BrokerConfig, tmp_path, monkeypatch
) -> None:
    cfg = parse_config(
        {
            "var_dir": str(tmp_path),
            "broker": {"url": mqtt_broker.url},
            "agents": [{
                "id": AGENT, "telemetry_interval_s": 0, "batch": {"max_delay_s": 5.0},
                "devices": [{"id": "TRK-D1", "kind": "vehicle", "protocol": "mqtt_tracker",
                             "profile": "mqtt_json_tracker", "endpoint": TOPIC,
                             "interval_s": 0.3, "timeout_s": 5.0}],
            }],
        }
    )  # fmt: skip
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    pub.connect(mqtt_broker.host, mqtt_broker.port)
    pub.loop_start()

    async def main() -> None:
        agent = EdgeAgent(cfg, AGENT, seed=1)
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        stored: set[float] = set()
        acks: list[set[float]] = []  # what was committed when each PUBACK went out
        refuse = {"on": False}
        try:
            await until(lambda: agent._outbox is not None, 10, "agent built")
            buffer = agent._outbox.buffer
            real_put = buffer.put

            def put(topic: str, payload: bytes, **kw: Any) -> bool:
                if refuse["on"]:
                    buffer.dropped += 1  # as drop_newest on a full quota
                    return False
                ok = real_put(topic, payload, **kw)
                stored.update(r.value for r in TelemetryBatch.decode(payload).rows()
                              if r.field == "speed")  # fmt: skip
                return ok

            buffer.put = put  # type: ignore[method-assign]
            hub = await until(
                lambda: [h for h in hubs._HUBS.mine() if h.session and h.connected.is_set()],
                15,
                "durable hub connected",
            )
            hub = hub[0]
            sup = agent.supervisors["TRK-D1"]
            await until(lambda: sup.state == "online", 15, "tracker subscribed")

            real_ack = mqtt.Client.ack

            def ack(client: mqtt.Client, mid: int, qos: int) -> Any:
                acks.append(set(stored))
                return real_ack(client, mid, qos)

            monkeypatch.setattr(mqtt.Client, "ack", ack)  # every client's, the new one's too
            for i, speed in enumerate((11.0, 12.0, 13.0), start=1):
                pub.publish(TOPIC, _fix(speed), qos=1)
                await until(lambda i=i: len(acks) >= i, 15, f"PUBACK of fix {i}")
                assert speed in acks[-1], "acked before its rows were committed"
            # refused by the buffer: no PUBACK; the broker sends it again after a reconnect
            refuse["on"] = True
            pub.publish(TOPIC, _fix(14.0), qos=1)
            driver = sup.driver
            await until(lambda: driver.stats()["acks_withheld"] == 1, 15, "ack withheld")
            assert len(acks) == 3 and 14.0 not in stored
            refuse["on"] = False
            await until(lambda: hub.reconnects_for_redelivery == 1, 30, "reconnect")
            await until(lambda: 14.0 in stored, 30, "the refused fix redelivered and stored")
            await until(lambda: len(acks) == 4, 15, "its PUBACK")
            assert 14.0 in acks[-1]
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)

    try:
        asyncio.run(asyncio.wait_for(main(), 90))
    finally:
        pub.loop_stop()
        pub.disconnect()
