"""A device that keeps failing is logged once, then summarised at most every minute;
no library logs a warning per retry (pymodbus used to: "Failed to connect ... Repeating")."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from contracts.config import DeviceConfig
from drivers.modbus import ModbusDriver
from edge_agent.supervisor import DeviceSupervisor, RepeatLog


def test_repeat_log_reports_at_once_then_at_most_every_period() -> None:
    now = [100.0]
    rl = RepeatLog(every_s=60, clock=lambda: now[0])
    assert rl.due() == 1  # the first failure is reported at once
    assert [rl.due() for _ in range(5)] == [0] * 5
    now[0] += 59.9
    assert rl.due() == 0
    now[0] += 0.2
    assert rl.due() == 7  # everything since the last report
    rl.logged()  # a state change was logged: the period starts again
    now[0] += 30
    assert rl.due() == 0


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def test_a_dead_modbus_device_logs_one_line_not_one_per_retry(caplog: Any) -> None:
    dev = DeviceConfig(
        id="DM-DOWN",
        kind="dust_monitor",
        protocol="modbus",
        profile="modbus_dust_monitor",
        endpoint=f"modbus://127.0.0.1:{_closed_port()}",
        timeout_s=2,
    )
    states: list[str] = []

    async def main() -> None:
        driver = ModbusDriver(dev)
        sup = DeviceSupervisor(
            dev, driver, lambda rows: None, lambda d, doc: states.append(doc["state"])
        )
        for _ in range(6):
            assert not await sup.poll()
        await driver.close()

    with caplog.at_level(logging.INFO):
        asyncio.run(main())
    others = [
        r
        for r in caplog.records
        if r.name != "edge_agent.supervisor" and r.levelno >= logging.WARNING
    ]
    assert others == [], [r.getMessage() for r in others]
    ours = [r for r in caplog.records if r.name == "edge_agent.supervisor"]
    assert len(ours) == 1 and ours[0].levelno == logging.WARNING
    assert "DM-DOWN" in ours[0].getMessage() and "Connect call failed" in ours[0].getMessage()
    assert ": 1 failed attempt(s)" in ours[0].getMessage()  # the first, the other 5 counted
