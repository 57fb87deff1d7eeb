"""HJ 212 monitors and JT/T 808 terminals pushing over TCP to a running EdgeAgent.

Real frames go over real sockets to the agent's shared listeners; the rows must reach a
real Mosquitto, and the devices must get their replies on the same connection.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from bench.servers import free_port
from contracts import topics
from contracts.config import BrokerConfig, parse_config
from contracts.telemetry import TelemetryBatch
from drivers.hj212.codec import decode_frame as hj_decode
from drivers.hj212.codec import encode_frame as hj_encode
from drivers.jt808 import messages as m
from drivers.jt808.codec import decode_frame as jt_decode
from drivers.jt808.codec import encode_frame as jt_encode
from edge_agent import EdgeAgent

pytestmark = pytest.mark.servers
AGENT = "agent-push"
MNS = ("88888880000001", "88888880000002")
PHONE = "13800138000"


class Rows:
    """A plain paho subscriber collecting telemetry rows by (device, field)."""

    def __init__(self, broker: BrokerConfig):
        self.rows: dict[tuple[str, str], list[float]] = {}
        self._lock = threading.Lock()
        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_connect = lambda c, *a: c.subscribe(topics.telemetry_filter(), 1)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            for r in TelemetryBatch.decode(msg.payload).rows():
                self.rows.setdefault((r.device_id, r.field), []).append(r.value)

    def get(self, device: str, field: str) -> list[float]:
        with self._lock:
            return list(self.rows.get((device, field), []))

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def until(cond, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if got := cond():
            return got
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _hj_frame(mn: str, pm10_mg: float, flag: int = 5) -> bytes:
    now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8)))
    data = (
        f"QN={now:%Y%m%d%H%M%S}000;ST=22;CN=2011;PW=123456;MN={mn};Flag={flag};"
        f"CP=&&DataTime={now:%Y%m%d%H%M%S};a34002-Rtd={pm10_mg},a34002-Flag=N;"
        f"a34004-Rtd=0.02,a34004-Flag=D;LA-Rtd=55.1,LA-Flag=N&&"
    )
    return hj_encode(data)


def _config(tmp_path, broker: BrokerConfig, hj_port: int, jt_port: int):
    common = {"interval_s": 0.3, "timeout_s": 2.0}
    devices: list[dict[str, Any]] = [
        {
            "id": f"DM-H{i}",
            "kind": "dust_monitor",
            "protocol": "hj212",
            "profile": "hj212_dust_monitor",
            "endpoint": f"tcp://127.0.0.1:{hj_port}",
            "address": {"mn": mn},
            **common,
        }
        for i, mn in enumerate(MNS)
    ]
    devices.append(
        {
            "id": "TRK-J1",
            "kind": "vehicle",
            "protocol": "jt808",
            "profile": "jt808_tracker",
            "endpoint": f"tcp://127.0.0.1:{jt_port}",
            "address": {"phone": PHONE},
            **common,
        }
    )
    return parse_config(
        {
            "var_dir": str(tmp_path),
            "broker": {"url": broker.url},
            "agents": [
                {"id": AGENT, "batch": {"max_delay_s": 0.2}, "devices": devices},
            ],
        }
    )


async def _hj212_device(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"garbage without a header\r\n")  # counted, the connection survives
        writer.write(_hj_frame("99999999999999", 0.5))  # unknown MN
        writer.write(_hj_frame(MNS[0], 0.085))
        reply = hj_decode(await asyncio.wait_for(reader.readuntil(b"\r\n"), 5))
        assert (reply.cn, reply.st, reply.mn) == ("9014", "91", MNS[0])
        writer.write(_hj_frame(MNS[1], 0.120, flag=4))  # no ack asked: no reply
        await writer.drain()
    finally:
        writer.close()


async def _jt808_device(port: int) -> list[tuple[int, bytes]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    replies: list[tuple[int, bytes]] = []

    async def exchange(msg_id: int, serial: int, body: bytes, version: int | None = None):
        writer.write(jt_encode(msg_id, PHONE, serial, body, version=version))
        await writer.drain()
        await reader.readuntil(b"\x7e")  # opening flag
        f = jt_decode(b"\x7e" + await asyncio.wait_for(reader.readuntil(b"\x7e"), 5))
        replies.append((f.msg_id, f.body))

    try:
        register = bytes(4) + b"RGSIM" + b"M1".ljust(20, b"\0") + b"T000001" + b"\x02" + b"A12345"
        await exchange(m.REGISTER, 1, register)
        auth = replies[-1][1][3:]
        await exchange(m.AUTH, 2, auth)
        await exchange(m.HEARTBEAT, 3, b"")
        when = dt.datetime.now(dt.UTC)
        loc = m.location_body(
            30.66, 104.07, when, status=1 << 12, speed_kmh=36.5, extra={1: (500).to_bytes(4, "big")}
        )
        await exchange(m.LOCATION, 4, loc, version=1)  # a 2019 header on the same link
    finally:
        writer.close()
    return replies


def test_pushed_frames_become_telemetry_and_get_replies(mqtt_broker, tmp_path):
    hj_port, jt_port = free_port(), free_port()
    cfg = _config(tmp_path, mqtt_broker, hj_port, jt_port)

    async def main() -> None:
        rows = Rows(mqtt_broker)
        agent = EdgeAgent(cfg, AGENT, seed=1)
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            await until(lambda: rows.ready.is_set(), 10, "subscription")
            await until(lambda: all(lst.running for lst in agent.listeners.listeners.values())
                        and len(agent.listeners.listeners) == 2, 10, "listeners")  # fmt: skip
            await _hj212_device(hj_port)
            replies = await _jt808_device(jt_port)
            assert [r[0] for r in replies] == [m.REGISTER_REPLY] + [m.GENERAL_REPLY] * 3
            assert replies[0][1][2] == 0  # registered
            assert all(body[-1] == 0 for _, body in replies[1:])  # auth, heartbeat, location ok
            await until(lambda: rows.get("DM-H0", "pm10"), 10, "HJ 212 rows of DM-H0")
            await until(lambda: rows.get("DM-H1", "pm10"), 10, "HJ 212 rows of DM-H1")
            await until(lambda: rows.get("TRK-J1", "lat"), 10, "JT/T 808 rows")
            assert rows.get("DM-H0", "pm10") == [pytest.approx(85.0)]
            assert rows.get("DM-H1", "pm10") == [pytest.approx(120.0)]
            assert rows.get("DM-H0", "pm25_flag") == [4.0] and not rows.get("DM-H0", "pm25")
            assert rows.get("TRK-J1", "cover_open") == [1.0]
            assert rows.get("TRK-J1", "odometer") == [pytest.approx(50.0)]
            assert rows.get("TRK-J1", "speed") == [pytest.approx(36.5)]
            metrics = agent.metrics()
            hj = metrics["listeners"][f"hj212://127.0.0.1:{hj_port}"]
            assert hj["bad_frames"] == 1 and hj["unknown_ids"] == 1 and hj["replies"] == 1
            assert metrics["devices"]["DM-H0"]["driver_replies"] == 1
            await until(
                lambda: agent.metrics()["devices"]["TRK-J1"]["state"] == "online", 5, "online"
            )
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            rows.close()

    asyncio.run(main())
