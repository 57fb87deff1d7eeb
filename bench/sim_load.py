"""The processes of the simulator benchmark: the simulated devices, and the clients loading them.

``serve`` runs one simulated city (or the devices of some kinds of it) in a child process
and copies its counters into a shared array four times a second. ``load`` is a second
child that does what an edge agent would: an OPC-UA session per endpoint subscribed to
every value of the cabinets, and a Modbus TCP connection per port polling each unit at
its configured interval with the profile's register blocks. Both run until killed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

__all__ = ["KINDS", "SERVER_STATS", "CLIENT_STATS", "subset", "serve", "load", "read_plan"]

#: benchmark kind -> (inventory list, protocol)
KINDS = {
    "opcua": ("cabinets", "opcua"),
    "modbus": ("*", "modbus"),
    "mqtt": ("vehicles", "mqtt_tracker"),
    "hj212": ("dust_monitors", "hj212"),
    "jt808": ("vehicles", "jt808"),
}
SERVER_STATS = (
    "ticks",
    "tick_overruns",
    "cabinet_updates",
    "modbus_requests",
    "modbus_errors",
    "mqtt_published",
    "mqtt_acked",
    "mqtt_failed",
    "mqtt_dropped",
    "hj212_frames",
    "hj212_dropped",
    "jt808_reports",
)
CLIENT_STATS = (
    "ready",
    "opcua_items",
    "opcua_notifications",
    "modbus_ok",
    "modbus_errors",
    "modbus_polled",
    "opcua_status_changes",
)


def subset(size: str, kinds: tuple[str, ...], limit: int | None = None) -> Any:
    """The ``size`` inventory with only the (first ``limit``) devices of ``kinds``; the
    places stay, for the trucks."""
    from hardware.inventory import build_inventory
    from hardware.profiles import load_profile

    inv = build_inventory(size)
    protocols = {KINDS[k][1] for k in kinds}
    keep = {
        attr: [d for d in getattr(inv, attr) if load_profile(d.profile).protocol in protocols]
        for attr in ("cabinets", "dust_monitors", "vehicles")
    }
    keep = {attr: devs[:limit] for attr, devs in keep.items()}
    return dataclasses.replace(inv, **keep)


def serve(size: str, kinds: tuple[str, ...], opts: dict[str, Any], q: Any, stats: Any) -> None:
    """Child process: serve the devices; put ("ready", endpoints, nominal) on ``q``."""
    from contracts.config import BrokerConfig
    from hardware.sim.city import SimulatedCity
    from hardware.sim.deployment import agent_devices

    async def main() -> None:
        inv = subset(size, kinds, opts.get("limit"))
        listeners = {p: ("127.0.0.1", port) for p, port in opts["listeners"].items()}
        city = SimulatedCity(
            inv,
            mqtt=BrokerConfig(url=opts["mqtt_url"]) if opts.get("mqtt_url") else None,
            clock_start="21:00",  # lamps lit: every circuit draws, every value moves
            tick_s=opts["tick_s"],
            tracker_interval_s=tuple(opts["tracker_interval_s"]),
            agent_listeners=listeners or None,
            push_interval_s=opts["push_interval_s"],
            units_per_port=opts["units_per_port"],
            cabinets_per_server=opts["cabinets_per_server"],
        )
        endpoints = await city.start()
        devices = agent_devices(inv, endpoints)
        q.put(("ready", endpoints, devices))
        while True:
            c = city.counters()
            for i, key in enumerate(SERVER_STATS):
                stats[i] = float(c.get(key, 0))
            await asyncio.sleep(0.25)

    asyncio.run(main())


def read_plan(profile_name: str) -> list[tuple[str, int, int]]:
    """(table, start, count) blocks covering a profile's points, contiguous runs only
    (a block over an undefined address would be refused with exception 02)."""
    from hardware.profiles import load_profile
    from hardware.sim.modbus_server import point_width

    spans: dict[str, list[tuple[int, int]]] = {}
    for p in load_profile(profile_name).expanded():
        if p.table is not None and p.address is not None:
            spans.setdefault(p.table, []).append((p.address, p.address + point_width(p)))
    plan = []
    for table, runs in spans.items():
        runs.sort()
        lo, hi = runs[0]
        for a, b in runs[1:]:
            if a > hi or b - lo > 120:  # a gap, or past a sensible PDU
                plan.append((table, lo, hi - lo))
                lo, hi = a, b
            else:
                hi = max(hi, b)
        plan.append((table, lo, hi - lo))
    return plan


def load(endpoints: dict[str, Any], devices: list[dict], opts: dict[str, Any], stats: Any) -> None:
    """Child process: subscribe to the cabinets and poll the Modbus units until killed."""

    async def main() -> None:
        n = dict.fromkeys(CLIENT_STATS, 0.0)
        tasks = [asyncio.create_task(_opcua(e, opts, n)) for e in endpoints["opcua"]]
        ports: dict[str, list[dict]] = {}
        for d in devices:
            if d["protocol"] == "modbus":
                ports.setdefault(d["endpoint"], []).append(d)
        tasks += [asyncio.create_task(_poll(ep, units, n)) for ep, units in ports.items()]
        while True:  # counters out four times a second (no lock taken per message)
            # Ready once every subscription is made and every Modbus port polled once.
            n["ready"] = float(
                n["opcua_items"] >= opts["opcua_items_wanted"] and n["modbus_polled"] >= len(ports)
            )
            for i, key in enumerate(CLIENT_STATS):
                stats[i] = n[key]
            for t in tasks:
                if t.done():
                    t.result()  # a client that died fails the benchmark loudly
            await asyncio.sleep(0.25)

    asyncio.run(main())


async def _opcua(e: dict[str, Any], opts: dict[str, Any], n: dict[str, float]) -> None:
    from asyncua import Client

    from hardware.profiles import load_profile

    class Count:
        def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
            n["opcua_notifications"] += 1

        def status_change_notification(self, status: Any) -> None:
            n["opcua_status_changes"] += 1  # the server dropped the subscription

    # No watchdog: on a loaded machine a late keep-alive must not end the measurement.
    client = Client(e["endpoint"], timeout=120, watchdog_intervall=3600)
    await client.connect()
    idx = await client.get_namespace_index(e["namespace"])
    devs = e["devices"][:: opts["opcua_every"]]
    prof = load_profile(opts["opcua_profile"])
    nodes = [
        client.get_node(f"ns={idx};s={dev}.{p.node}")
        for dev in devs
        for p in prof.expanded()
        if p.node
    ]
    sub = await client.create_subscription(opts["opcua_publish_ms"], Count())
    for i in range(0, len(nodes), 2000):
        await sub.subscribe_data_change(nodes[i : i + 2000], sampling_interval=0)
        n["opcua_items"] += len(nodes[i : i + 2000])
    await asyncio.Event().wait()


async def _poll(endpoint: str, units: list[dict[str, Any]], n: dict[str, float]) -> None:
    from pymodbus.client import AsyncModbusTcpClient

    host, port = endpoint.removeprefix("modbus://").rsplit(":", 1)
    client = AsyncModbusTcpClient(host, port=int(port), timeout=10, retries=0)
    await client.connect()
    calls = {
        "coil": client.read_coils,
        "discrete": client.read_discrete_inputs,
        "holding": client.read_holding_registers,
        "input": client.read_input_registers,
    }
    plans = {u["id"]: read_plan(u["profile"]) for u in units}
    due = {u["id"]: time.monotonic() + i * 0.01 for i, u in enumerate(units)}
    first = True
    while True:
        for u in units:  # one transaction in flight per connection, as the agent does
            if time.monotonic() < due[u["id"]]:
                continue
            due[u["id"]] = max(due[u["id"]] + float(u["interval_s"]), time.monotonic())
            for table, start, count in plans[u["id"]]:
                try:
                    rr = await calls[table](start, count=count, device_id=u["unit_id"])
                    ok = not rr.isError()
                except Exception:  # a timeout or a dropped connection counts as an error
                    ok = False
                n["modbus_ok" if ok else "modbus_errors"] += 1
        if first and all(d > time.monotonic() for d in due.values()):
            first = False
            n["modbus_polled"] += 1
        await asyncio.sleep(max(0.0, min(due.values()) - time.monotonic()))
