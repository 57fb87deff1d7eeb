"""Modbus polling: the agent's planned reads vs a plain pymodbus loop, one request per point.

Both poll every Modbus device of a simulated city (hardware.sim.city.SimulatedCity) in
the same run, back to back for ``rounds`` polls per device, all devices concurrently.
The agent side is the agent's own poll path (DeviceSupervisor + ModbusDriver with its
request planner); the baseline is what a typical gateway does: one read per point.
Figures: points/s, requests per poll, time per request and per point, CPU seconds, and
the ratios. A merged request carries several points, so it costs somewhat more than a
one-point request (the simulator encodes the table on every request); the ratio to watch
is points/s and requests per poll.
"""

from __future__ import annotations

import asyncio
import resource
import time
from typing import Any

from pymodbus.client import AsyncModbusTcpClient

from contracts.config import DeviceConfig
from drivers.modbus import ModbusDriver
from edge_agent.supervisor import DeviceSupervisor
from hardware.inventory import build_inventory
from hardware.profiles import load_profile
from hardware.sim.city import SimulatedCity
from hardware.sim.deployment import agent_devices

__all__ = ["run"]

_WIDTH = {"bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "float64": 4}
_FN = {
    "coil": "read_coils",
    "discrete": "read_discrete_inputs",
    "holding": "read_holding_registers",
    "input": "read_input_registers",
}


async def _agent(devices: list[DeviceConfig], rounds: int) -> dict[str, float]:
    rows: list[int] = []
    sups = [
        DeviceSupervisor(d, ModbusDriver(d), lambda r: rows.append(len(r)), lambda *_: None)
        for d in devices
    ]

    async def poll(sup: DeviceSupervisor) -> None:
        for _ in range(rounds):
            if not await sup.poll():
                raise RuntimeError(f"{sup.device.id}: {sup.reason}")

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(poll(s) for s in sups))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    requests = sum(s.driver.stats()["reads"] for s in sups if s.driver is not None)
    for s in sups:
        if s.driver is not None:
            await s.driver.close()
    return {"points": float(sum(rows)), "requests": float(requests), "wall_s": wall, "cpu_s": cpu}


async def _plain(devices: list[DeviceConfig], rounds: int) -> dict[str, float]:
    counts = {"points": 0, "requests": 0}

    async def poll(d: DeviceConfig) -> None:
        host, port = d.endpoint.removeprefix("modbus://").rsplit(":", 1)
        client = AsyncModbusTcpClient(host, port=int(port), timeout=d.timeout_s, retries=0)
        await client.connect()
        points = [p for p in load_profile(d.profile).expanded() if p.table is not None]
        try:
            for _ in range(rounds):
                for p in points:
                    width = 1 if p.table in ("coil", "discrete") else _WIDTH[p.type]
                    fn = getattr(client, _FN[p.table])
                    resp = await fn(p.address, count=width, device_id=d.unit_id)
                    counts["requests"] += 1
                    if resp.isError():
                        raise RuntimeError(f"{d.id} {p.key}: {resp}")
                    counts["points"] += 1
        finally:
            client.close()

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(poll(d) for d in devices))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "points": float(counts["points"]),
        "requests": float(counts["requests"]),
        "wall_s": wall,
        "cpu_s": cpu,
    }


def _figures(raw: dict[str, float], polls: int) -> dict[str, float]:
    return {
        "points_per_s": round(raw["points"] / raw["wall_s"], 1),
        "requests_per_poll": round(raw["requests"] / polls, 2),
        "ms_per_request": round(raw["wall_s"] * 1000 / raw["requests"], 3),
        "us_per_point": round(raw["wall_s"] * 1e6 / raw["points"], 1),
        "cpu_s": round(raw["cpu_s"], 3),
        "wall_s": round(raw["wall_s"], 3),
        "points": raw["points"],
        "requests": raw["requests"],
    }


async def _run(size: str, rounds: int) -> dict[str, Any]:
    inventory = build_inventory(size)
    city = SimulatedCity(inventory)
    endpoints = await city.start()
    try:
        devices = [
            DeviceConfig(**{**d, "timeout_s": 5.0})
            for d in agent_devices(inventory, endpoints)
            if d["protocol"] == "modbus"
        ]
        if not devices:
            raise RuntimeError(f"inventory {size!r} has no Modbus devices")
        plain = await _plain(devices, rounds)
        agent = await _agent(devices, rounds)
    finally:
        await city.stop()
    polls = len(devices) * rounds
    a, p = _figures(agent, polls), _figures(plain, polls)
    return {
        "size": size,
        "devices": len(devices),
        "rounds": rounds,
        "agent": a,
        "plain_pymodbus": p,
        "points_per_s_ratio": round(a["points_per_s"] / p["points_per_s"], 2),
        "fewer_requests_ratio": round(p["requests_per_poll"] / a["requests_per_poll"], 2),
        "ms_per_request_ratio": round(a["ms_per_request"] / p["ms_per_request"], 2),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run(size: str = "district", rounds: int = 100) -> dict[str, Any]:
    """Poll the city's Modbus devices both ways; figures and ratios (agent / plain)."""
    return asyncio.run(_run(size, rounds))


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
