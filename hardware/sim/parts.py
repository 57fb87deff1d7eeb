"""Serving a simulated city from one process, or from several when it is too big for one.

:func:`serve` starts one :class:`~hardware.sim.city.SimulatedCity` (the whole inventory,
or part ``i`` of ``n``: every n-th device of each kind) from plain, JSON-ready options.
:func:`serve_parts` runs ``n`` parts as child processes (``python -m hardware.sim.parts``)
that share one clock anchor, so simulated time is the same in all of them, and merges
what they serve into one description: endpoints, agent device entries, geofences.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from typing import Any

from contracts.config import BrokerConfig
from hardware.inventory import build_inventory
from hardware.sim.city import SimulatedCity
from hardware.sim.deployment import agent_devices, geofences

__all__ = ["OPTIONS", "build", "describe", "serve", "serve_parts", "merge"]

#: every option and its default (the ``rongguan simulate`` flags of the same names)
OPTIONS: dict[str, Any] = {
    "size": "district",
    "seed": 1,
    "mqtt_url": None,
    "scenario": None,
    "ground_truth": None,
    "hj212_listener": None,  # "HOST:PORT"
    "jt808_listener": None,
    "speed": None,  # None: the scenario's, else 1
    "start": None,  # "HH:MM" or ISO date-time; None: the scenario's, else now
    "stamps": None,  # "sim" | "wall"; None: the clock's default
    "tick_s": 1.0,
    "tracker_interval_s": [2.0, 2.0],  # [low, high]: each tracker draws its own
    "push_interval_s": 20.0,
    "cabinets_per_server": 500,
    "units_per_port": 1,
}


def _listener(spec: str | None) -> tuple[str, int] | None:
    if not spec:
        return None
    host, _, port = spec.rpartition(":")
    return host or "127.0.0.1", int(port)


def build(
    opts: dict[str, Any], part: tuple[int, int] = (0, 1), anchor: float | None = None
) -> SimulatedCity:
    """The city (not started), from options."""
    unknown = sorted(set(opts) - set(OPTIONS))
    if unknown:
        raise ValueError(f"unknown simulator options {unknown}; known: {', '.join(OPTIONS)}")
    o = {**OPTIONS, **opts}
    listeners = {p: a for p in ("hj212", "jt808") if (a := _listener(o[f"{p}_listener"]))}
    inventory = build_inventory(o["size"], o["seed"], push_devices=bool(listeners))
    lo, hi = o["tracker_interval_s"]
    city = SimulatedCity(
        inventory,
        mqtt=BrokerConfig(url=o["mqtt_url"]) if o["mqtt_url"] else None,
        scenario=o["scenario"],
        ground_truth=o["ground_truth"],
        tracker_interval_s=(float(lo), float(hi)),
        tick_s=o["tick_s"],
        clock_start=o["start"],
        time_scale=o["speed"],
        stamps=o["stamps"],
        clock_anchor=anchor,
        agent_listeners=listeners or None,
        push_interval_s=o["push_interval_s"],
        part=part,
        cabinets_per_server=o["cabinets_per_server"],
        units_per_port=o["units_per_port"],
    )
    return city


def describe(city: SimulatedCity, endpoints: dict[str, Any]) -> dict[str, Any]:
    """JSON-ready: what a started city serves, its agent device entries and geofences."""
    return {
        "clock": city.clock.describe(),
        "part": list(city.part),
        "pid": os.getpid(),
        "endpoints": endpoints,
        "devices": agent_devices(city.inventory, endpoints),
        "geofences": geofences(city.inventory),
    }


async def serve(
    opts: dict[str, Any],
    part: tuple[int, int] = (0, 1),
    anchor: float | None = None,
    city: SimulatedCity | None = None,
) -> tuple[SimulatedCity, dict[str, Any]]:
    """Start (part of) a city, or the one ``build`` made already; returns it and its
    description. The caller stops it."""
    city = city or build(opts, part, anchor)
    endpoints = await city.start()
    return city, describe(city, endpoints)


def merge(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """One description of a city from the descriptions of its parts."""
    endpoints: dict[str, list[Any]] = {}
    for doc in docs:
        for proto, entries in doc["endpoints"].items():
            endpoints.setdefault(proto, []).extend(entries)
    return {
        "clock": docs[0]["clock"],
        "clocks": [doc["clock"] for doc in docs],
        "parts": len(docs),
        "pids": [doc["pid"] for doc in docs],
        "endpoints": endpoints,
        "devices": [d for doc in docs for d in doc["devices"]],
        "geofences": docs[0]["geofences"],
    }


async def serve_parts(
    opts: dict[str, Any], n: int, stop: asyncio.Event, on_ready: Any = None
) -> dict[str, Any]:
    """Serve the city as ``n`` child processes until ``stop`` is set; ``on_ready(doc)`` is
    called with the merged description once every part serves. Returns that description."""
    # The parts build in parallel; their clocks all count from the same wall instant.
    anchor = time.time()
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hardware.sim.parts",
            json.dumps({"opts": opts, "part": [i, n], "anchor": anchor}),
            stdout=asyncio.subprocess.PIPE,
            stdin=asyncio.subprocess.PIPE,
            limit=1 << 28,  # a part describes itself in one JSON line of megabytes
        )
        for i in range(n)
    ]
    try:
        docs = []
        for i, p in enumerate(procs):
            assert p.stdout is not None
            line = await p.stdout.readline()
            if not line:
                raise RuntimeError(f"simulator part {i + 1}/{n} exited with {await p.wait()}")
            docs.append(json.loads(line))
        doc = merge(docs)
        if on_ready is not None:
            on_ready(doc)
        waits = [asyncio.create_task(p.wait()) for p in procs]
        stopped = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([stopped, *waits], return_when=asyncio.FIRST_COMPLETED)
        if stopped not in done:
            raise RuntimeError("a simulator part exited on its own")
        stopped.cancel()
        return doc
    finally:
        for p in procs:
            if p.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                await asyncio.wait_for(p.wait(), 60)
            except TimeoutError:
                p.kill()
                await p.wait()


async def _child(spec: dict[str, Any]) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    city, doc = await serve(spec["opts"], tuple(spec["part"]), spec["anchor"])  # type: ignore[arg-type]
    try:
        sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
        sys.stdout.flush()
        # The parent's end of stdin closes when it goes away: stop with it.
        loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(0, 1) else None)
        await stop.wait()
    finally:
        await city.stop()


if __name__ == "__main__":
    asyncio.run(_child(json.loads(sys.argv[1])))
