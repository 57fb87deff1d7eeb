"""``rongguan bench poll``: the issue's three polling figures in one run.

modbus   the agent's Modbus polling vs plain pymodbus loops on the same simulated
         devices (below), and the request reduction of every shipped Modbus profile
opcua    10,000 OPC-UA monitored items on one agent vs a bare asyncua client
memory   the agent's memory at district and city size
         (the last two are ``bench.agent``'s parts, each in a fresh process)

Modbus polling: the agent vs plain pymodbus loops, on the same simulated devices.

The simulated city's Modbus devices run in a child process (``bench._simproc``), so this
process's CPU time is the client's alone. Three ways to poll every device ``rounds``
times, all devices concurrently, in the same run:

    agent        the agent's poll path: DeviceSupervisor + ModbusDriver (planned,
                 merged reads, decoded into telemetry rows)
    plain_plan   a bare pymodbus loop sending the very same merged reads, decoding
                 nothing: the baseline for the agent's cost per request
    plain_point  what a typical gateway does: one bare read per point, decoding
                 nothing: the baseline for requests and points/s

Figures: points/s, requests per poll, client CPU µs per request and per point, and wall
ms per request (bounded by the simulator on a small machine, so CPU is the fairer cost).
Each way runs ``repeats`` times, interleaved, and the best run counts.
"""

from __future__ import annotations

import asyncio
import resource
import time
from typing import Any

from pymodbus.client import AsyncModbusTcpClient

from bench._simproc import SimProcess
from contracts.config import DeviceConfig
from drivers.modbus import ModbusDriver
from drivers.modbus.config import settings_for
from edge_agent.supervisor import DeviceSupervisor
from hardware.profiles import load_profile, profile_names

__all__ = ["run", "run_modbus", "profile_reduction"]

_WIDTH = {"bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "float64": 4}
_FN = {
    "coil": "read_coils",
    "discrete": "read_discrete_inputs",
    "holding": "read_holding_registers",
    "input": "read_input_registers",
}
_ALL = 1_000_000  # "every device of this sort" for the simulator child


async def _agent(devices: list[DeviceConfig], rounds: int) -> dict[str, float]:
    rows: list[int] = []
    sups = [
        DeviceSupervisor(d, ModbusDriver(d), lambda r: rows.append(len(r)), lambda *_: None)
        for d in devices
    ]
    for s in sups:  # one poll off the clock: connected before it starts, like the plain loops
        if not await s.poll():
            raise RuntimeError(f"{s.device.id}: {s.reason}")
    rows.clear()
    reads0 = sum(s.driver.stats()["reads"] for s in sups if s.driver is not None)

    async def poll(sup: DeviceSupervisor) -> None:
        for _ in range(rounds):
            if not await sup.poll():
                raise RuntimeError(f"{sup.device.id}: {sup.reason}")

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(poll(s) for s in sups))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    requests = sum(s.driver.stats()["reads"] for s in sups if s.driver is not None) - reads0
    for s in sups:
        if s.driver is not None:
            await s.driver.close()
    return {"points": float(sum(rows)), "requests": float(requests), "wall_s": wall, "cpu_s": cpu}


def _reads(d: DeviceConfig, merged: bool) -> list[tuple[str, int, int, int]]:
    """(function, address, count, points) of one poll: the agent's plan, or one per point."""
    if merged:
        return [(_FN[r.table], r.address, r.count, len(r.points)) for r in settings_for(d).requests]
    out = []
    for p in load_profile(d.profile).expanded():
        if p.table is not None and p.address is not None:
            width = 1 if p.table in ("coil", "discrete") else _WIDTH[p.type]
            out.append((_FN[p.table], p.address, width, 1))
    return out


async def _plain(devices: list[DeviceConfig], rounds: int, merged: bool) -> dict[str, float]:
    counts = {"points": 0, "requests": 0}
    clients = []
    for d in devices:
        host, port = d.endpoint.removeprefix("modbus://").rsplit(":", 1)
        client = AsyncModbusTcpClient(host, port=int(port), timeout=d.timeout_s, retries=0)
        await client.connect()
        clients.append(client)

    async def poll(d: DeviceConfig, client: AsyncModbusTcpClient) -> None:
        reads = [(getattr(client, fn), a, c, n) for fn, a, c, n in _reads(d, merged)]
        for _ in range(rounds):
            for fn, address, count, n in reads:
                resp = await fn(address, count=count, device_id=d.unit_id)
                counts["requests"] += 1
                if resp.isError():
                    raise RuntimeError(f"{d.id} @{address}: {resp}")
                counts["points"] += n

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(poll(d, c) for d, c in zip(devices, clients)))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    for c in clients:
        c.close()
    return {**{k: float(v) for k, v in counts.items()}, "wall_s": wall, "cpu_s": cpu}


def _figures(raw: dict[str, float], polls: int) -> dict[str, float]:
    return {
        "points_per_s": round(raw["points"] / raw["wall_s"], 1),
        "requests_per_poll": round(raw["requests"] / polls, 2),
        "cpu_us_per_request": round(raw["cpu_s"] * 1e6 / raw["requests"], 1),
        "cpu_us_per_point": round(raw["cpu_s"] * 1e6 / raw["points"], 2),
        "ms_per_request": round(raw["wall_s"] * 1000 / raw["requests"], 3),
        "cpu_s": round(raw["cpu_s"], 3),
        "wall_s": round(raw["wall_s"], 3),
        "points": raw["points"],
        "requests": raw["requests"],
    }


async def _run(devices: list[DeviceConfig], rounds: int, repeats: int) -> dict[str, Any]:
    best: dict[str, dict[str, float]] = {}
    for _ in range(repeats):
        for name, coro in (
            ("plain_point", lambda: _plain(devices, rounds, merged=False)),
            ("plain_plan", lambda: _plain(devices, rounds, merged=True)),
            ("agent", lambda: _agent(devices, rounds)),
        ):
            got = await coro()
            if name not in best or got["cpu_s"] < best[name]["cpu_s"]:
                best[name] = got
    polls = len(devices) * rounds
    return {k: _figures(v, polls) for k, v in best.items()}


def profile_reduction() -> dict[str, float]:
    """Points per request of one poll, for every shipped Modbus profile (goal: >= 5)."""
    out = {}
    for name in profile_names():
        prof = load_profile(name)
        if prof.protocol != "modbus":
            continue
        dev = DeviceConfig(
            id="X", kind=prof.kind, protocol="modbus", profile=name, endpoint="modbus://h"
        )
        s = settings_for(dev)
        out[name] = round(len(s.points) / len(s.requests), 2)
    return out


def run(
    size: str = "district", rounds: int = 300, repeats: int = 3, agent_parts: bool = True
) -> dict[str, Any]:
    """Modbus polling figures, then (``agent_parts``) OPC-UA at 10,000 items and memory."""
    out: dict[str, Any] = {"modbus": run_modbus(size, rounds, repeats)}
    out["modbus"]["request_reduction_by_profile"] = reduction = profile_reduction()
    out["modbus"]["min_request_reduction"] = min(reduction.values())
    if agent_parts:
        from bench import agent

        out.update(agent.run())  # opcua, memory_district, memory_city, cpu_count
    return out


def run_modbus(size: str = "district", rounds: int = 300, repeats: int = 3) -> dict[str, Any]:
    """Poll the city's Modbus devices three ways; figures and ratios (agent / baselines)."""
    with SimProcess(size, {"modbus_lc": _ALL, "modbus_dust": _ALL}) as sim:
        devices = [DeviceConfig(**{**d, "timeout_s": 5.0}) for d in sim.devices]
        if not devices:
            raise RuntimeError(f"inventory {size!r} has no Modbus devices")
        f = asyncio.run(_run(devices, rounds, repeats))
    a, plan, point = f["agent"], f["plain_plan"], f["plain_point"]
    return {
        "size": size,
        "devices": len(devices),
        "rounds": rounds,
        **f,
        # goal: <= 1 (the agent no dearer per request than bare pymodbus sending the same reads)
        "cpu_per_request_ratio": round(a["cpu_us_per_request"] / plan["cpu_us_per_request"], 2),
        "cpu_per_request_vs_point_ratio": round(
            a["cpu_us_per_request"] / point["cpu_us_per_request"], 2
        ),
        "ms_per_request_ratio": round(a["ms_per_request"] / plan["ms_per_request"], 2),
        "points_per_s_ratio": round(a["points_per_s"] / point["points_per_s"], 2),
        "fewer_requests_ratio": round(point["requests_per_poll"] / a["requests_per_poll"], 2),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
