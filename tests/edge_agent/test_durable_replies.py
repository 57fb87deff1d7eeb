"""Pushing devices are answered only once their rows are committed to the disk buffer.

The agent runs with no reachable broker, so every batch stays in its SQLite file; the
test reads that file through its own connection the moment a reply arrives. A row seen
there is committed; with ``max_delay_s`` at 5 s, an agent that replied on receipt (and
stored later) fails these tests.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from bench.servers import free_port
from contracts.config import parse_config
from contracts.telemetry import TelemetryBatch
from drivers.hj212.codec import decode_frame as hj_decode
from drivers.jt808 import messages as m
from drivers.jt808.codec import decode_frame as jt_decode
from drivers.jt808.codec import encode_frame as jt_encode
from edge_agent import EdgeAgent
from tests.edge_agent.test_push_listeners import MNS, PHONE, _hj_frame, until

AGENT = "agent-durable"


def _config(tmp_path: Path, hj_port: int, jt_port: int, **buffer: Any):
    common = {"interval_s": 0.3, "timeout_s": 2.0}
    devices = [
        {"id": "DM-H0", "kind": "dust_monitor", "protocol": "hj212",
         "profile": "hj212_dust_monitor", "endpoint": f"tcp://127.0.0.1:{hj_port}",
         "address": {"mn": MNS[0]}, **common},
        {"id": "TRK-J1", "kind": "vehicle", "protocol": "jt808", "profile": "jt808_tracker",
         "endpoint": f"tcp://127.0.0.1:{jt_port}", "address": {"phone": PHONE}, **common},
    ]  # fmt: skip
    return parse_config(
        {
            "var_dir": str(tmp_path),
            "broker": {"url": f"mqtt://127.0.0.1:{free_port()}"},  # nobody there: all on disk
            "agents": [
                {
                    "id": AGENT,
                    "batch": {"max_delay_s": 5.0},
                    "telemetry_interval_s": 0,
                    "buffer": buffer,
                    "devices": devices,
                }
            ],
        }
    )


def on_disk(path: Path) -> list[tuple[str, str, float]]:
    """(device, field, value) of every committed row, read through a separate connection."""
    with closing(sqlite3.connect(path)) as db:
        return [
            (r.device_id, r.field, r.value)
            for (payload,) in db.execute("SELECT payload FROM outbox ORDER BY id")
            for r in TelemetryBatch.decode(payload).rows()
        ]


def _pm10(path: Path) -> list[float]:
    return [round(v) for d, f, v in on_disk(path) if (d, f) == ("DM-H0", "pm10")]


def _run(tmp_path: Path, body: Any, **buffer: Any) -> None:
    hj_port, jt_port = free_port(), free_port()
    cfg = _config(tmp_path, hj_port, jt_port, **buffer)

    async def main() -> None:
        agent = EdgeAgent(cfg, AGENT, seed=1)
        stop = asyncio.Event()
        task = asyncio.create_task(agent.run(stop))
        try:
            await until(lambda: len(agent.listeners.listeners) == 2 and all(
                lst.running for lst in agent.listeners.listeners.values()), 10, "listeners")  # fmt: skip
            assert agent._outbox is not None
            await body(agent, agent._outbox.buffer.path, hj_port, jt_port)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)

    asyncio.run(asyncio.wait_for(main(), 60))


def test_hj212_reply_only_after_rows_are_on_disk(tmp_path):
    async def body(agent, path, hj_port, _jt):
        reader, writer = await asyncio.open_connection("127.0.0.1", hj_port)
        try:
            for n in (85, 86):
                writer.write(_hj_frame(MNS[0], n / 1000))
                reply = hj_decode(await asyncio.wait_for(reader.readuntil(b"\r\n"), 10))
                assert (reply.cn, reply.mn) == ("9014", MNS[0])
                assert _pm10(path)[-1] == n  # committed before the reply left the agent
        finally:
            writer.close()
        lst = next(iter(agent.listeners.listeners.values()))
        assert lst.counters["replies_withheld"] == 0
        assert agent.metrics()["devices"]["DM-H0"]["rows"] >= 2  # counted on the device

    _run(tmp_path, body)


def test_jt808_location_reply_only_after_rows_are_on_disk(tmp_path):
    async def body(agent, path, _hj, jt_port):
        reader, writer = await asyncio.open_connection("127.0.0.1", jt_port)

        async def exchange(msg_id: int, serial: int, body: bytes) -> tuple[int, bytes]:
            writer.write(jt_encode(msg_id, PHONE, serial, body))
            await reader.readuntil(b"\x7e")
            f = jt_decode(b"\x7e" + await asyncio.wait_for(reader.readuntil(b"\x7e"), 10))
            return f.msg_id, f.body

        try:
            register = bytes(4) + b"RGSIM" + b"M1".ljust(20, b"\0") + b"T000001\x02A12345"
            _, reg = await exchange(m.REGISTER, 1, register)
            await exchange(m.AUTH, 2, reg[3:])
            assert not [r for r in on_disk(path) if r[0] == "TRK-J1"]
            when = dt.datetime.now(dt.UTC)
            loc = m.location_body(30.5, 104.25, when, status=0, speed_kmh=20.0)
            msg_id, reply = await exchange(m.LOCATION, 3, loc)
            assert msg_id == m.GENERAL_REPLY and reply[-1] == 0
            lat = [v for d, f, v in on_disk(path) if (d, f) == ("TRK-J1", "lat")]
            assert lat == [pytest.approx(30.5)]  # committed before the reply
        finally:
            writer.close()

    _run(tmp_path, body)


def test_refused_rows_get_no_reply_and_the_resend_does(tmp_path):
    async def body(agent, path, hj_port, _jt):
        lst = agent.listeners.listeners[("127.0.0.1", hj_port)]
        reader, writer = await asyncio.open_connection("127.0.0.1", hj_port)
        try:
            writer.write(_hj_frame(MNS[0], 0.001))
            await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)
            writer.write(_hj_frame(MNS[0], 0.002))  # the one-batch buffer is full: refused
            await until(lambda: lst.counters["replies_withheld"] == 1, 10, "reply withheld")
            with pytest.raises(TimeoutError):  # counted as withheld: no reply is coming
                await asyncio.wait_for(reader.readuntil(b"\r\n"), 0.3)
            assert _pm10(path) == [1]
            assert agent.metrics()["commits_refused"] == 1
            buf = agent._outbox.buffer  # sent away (on the buffer's thread, as the agent's calls)
            await buf.call(lambda: buf.delete(buf.after(0, 1)[0].id))
            writer.write(_hj_frame(MNS[0], 0.002))  # the monitor's retransmission
            reply = hj_decode(await asyncio.wait_for(reader.readuntil(b"\r\n"), 10))
            assert reply.cn == "9014" and _pm10(path) == [2]
        finally:
            writer.close()

    _run(tmp_path, body, max_batches=1, policy="drop_newest")
