"""Simulator capacity: devices of each kind one process serves at their nominal rates.

Each measurement runs the simulated devices in a child process (:func:`bench.sim_load.serve`)
with their clients outside it, as in the field: a second child subscribes to the OPC-UA
cabinets and polls the Modbus units at their configured intervals (:func:`bench.sim_load.load`),
a real Mosquitto carries the trackers' fixes to a subscriber here, and sinks here answer
the HJ 212 monitors and JT/T 808 terminals as a platform would. The district runs whole
in one process; the city runs one kind at a time, at its full count, so each kind's cost
per device is measured on its own. CPU comes from /proc (utime + stime), memory is the
peak RSS; the baseline is the same child with no devices, in the same run.

``capacity_per_process`` is the number of devices of a kind whose nominal work fits in
80 % of one core, from the CPU the measured process spent per unit of work done: on a
shared machine a starved process does less work but spends the same CPU per unit, so the
figure holds where the raw rates would not (they are reported too, with the ratio to
nominal). The city needs ``processes`` of them; ``rongguan simulate --processes N``
serves it that way.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing as mp
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import sim_load
from bench.sim_sinks import Sinks, Subscriber, start_mosquitto

__all__ = ["run", "measure"]

_TICK = os.sysconf("SC_CLK_TCK")
_CORE_BUDGET = 0.8  # of one core: what a process may use and still keep its timing
OPTS: dict[str, Any] = {
    "tick_s": 1.0,  # cabinets: every value refreshed each simulated second
    "tracker_interval_s": (10.0, 30.0),  # trackers report every 10-30 s
    "push_interval_s": 20.0,  # HJ 212 real-time and JT/T 808 location reports
    "units_per_port": 1,
    "cabinets_per_server": 500,
    "opcua_profile": "opcua_lighting_cabinet",
    "opcua_publish_ms": 1000,
}


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def _until(pred: Any, timeout_s: float, what: str, procs: list[Any]) -> Any:
    deadline = time.monotonic() + timeout_s
    while not (value := pred()):
        if any(not p.is_alive() for p in procs):
            raise RuntimeError(f"a benchmark process died while waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} after {timeout_s:.0f} s")
        await asyncio.sleep(0.1)
    return value


async def measure(
    size: str,
    kinds: tuple[str, ...],
    seconds: float,
    mqtt_url: str = "",
    broker_pid: int = 0,
    opcua_every: int = 1,
    limit: int | None = None,
) -> dict[str, Any]:
    """Serve ``kinds`` of the ``size`` inventory in one process under load for ``seconds``."""
    ctx = mp.get_context("spawn")
    sinks = await Sinks.start() if {"hj212", "jt808"} & set(kinds) else None
    sub = Subscriber(mqtt_url) if "mqtt" in kinds else None
    opts = {
        **OPTS,
        "mqtt_url": mqtt_url if "mqtt" in kinds else "",
        "listeners": {k: sinks.ports[k] for k in ("hj212", "jt808") if k in kinds} if sinks else {},
        "opcua_every": opcua_every,
        "limit": limit,
    }
    q = ctx.Queue()
    sstats = ctx.Array("d", len(sim_load.SERVER_STATS))
    cstats = ctx.Array("d", len(sim_load.CLIENT_STATS))
    server = ctx.Process(target=sim_load.serve, args=(size, kinds, opts, q, sstats), daemon=True)
    procs = [server]
    t0 = time.monotonic()
    server.start()
    try:
        _, endpoints, devices = await _until(
            lambda: None if q.empty() else q.get(), 1800, "simulator start", procs
        )
        startup = time.monotonic() - t0
        n_opc = sum(len(e["devices"][::opcua_every]) for e in endpoints["opcua"])
        client = None
        if endpoints["opcua"] or endpoints["modbus"]:
            wanted = n_opc * sum(1 for p in _profile(opts).expanded() if p.node)
            load_opts = {**opts, "opcua_items_wanted": wanted}
            client = ctx.Process(
                target=sim_load.load, args=(endpoints, devices, load_opts, cstats), daemon=True
            )
            client.start()
            procs.append(client)
            await _until(lambda: cstats[0] == 1.0, 1800, "client subscription", procs)
        await asyncio.sleep(3.0)  # warm up: connections made, first rounds through
        pids = {"server": server.pid, "client": client.pid if client else 0, "broker": broker_pid}
        a = _snap(pids, sstats, cstats, sinks, sub)
        rss = 0.0
        while time.monotonic() - a["t"] < seconds:
            await asyncio.sleep(0.5)
            rss = max(rss, _rss_mb(server.pid))
        b = _snap(pids, sstats, cstats, sinks, sub)
    finally:
        for p in reversed(procs):  # the clients first: they would only log the server's end
            p.kill()
            p.join(30)
        if sinks is not None:
            await sinks.stop()
        if sub is not None:
            sub.stop()
    return _figures(kinds, endpoints, devices, a, b, rss, startup, opts)


def _profile(opts: dict[str, Any]) -> Any:
    from hardware.profiles import load_profile

    return load_profile(opts["opcua_profile"])


def _snap(pids: dict[str, int], sstats: Any, cstats: Any, sinks: Any, sub: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"t": time.monotonic()}
    for name, pid in pids.items():
        out[f"cpu_{name}"] = _cpu_s(pid) if pid else 0.0
    out.update(zip(sim_load.SERVER_STATS, list(sstats), strict=True))
    out.update(zip(sim_load.CLIENT_STATS, list(cstats), strict=True))
    out.update(sinks.counts if sinks else {})
    out["mqtt_received"] = sub.received if sub else 0
    return out


def _figures(
    kinds: tuple[str, ...],
    endpoints: dict[str, Any],
    devices: list[dict[str, Any]],
    a: dict[str, Any],
    b: dict[str, Any],
    rss: float,
    startup: float,
    opts: dict[str, Any],
) -> dict[str, Any]:
    dt = b["t"] - a["t"]

    def rate(key: str) -> float:
        return (b.get(key, 0) - a.get(key, 0)) / dt

    cpu = rate("cpu_server")
    out: dict[str, Any] = {
        "seconds": round(dt, 1),
        "startup_s": round(startup, 1),
        "cpu_pct": round(100 * cpu, 1),
        "rss_mb": round(rss, 1),
        "client_cpu_pct": round(100 * rate("cpu_client"), 1),
        "broker_cpu_pct": round(100 * rate("cpu_broker"), 1),
        "kinds": {},
    }
    n_cab = sum(len(e["devices"]) for e in endpoints["opcua"])
    mb = [d for d in devices if d["protocol"] == "modbus"]
    per_kind = {
        "opcua": (n_cab, n_cab / opts["tick_s"], rate("cabinet_updates"), "cabinet updates/s"),
        "modbus": (
            len(mb),
            sum(len(sim_load.read_plan(d["profile"])) / d["interval_s"] for d in mb),
            rate("modbus_ok"),
            "requests answered/s",
        ),
        "mqtt": (
            len(endpoints["mqtt_trackers"]),
            sum(1 / e["interval_s"] for e in endpoints["mqtt_trackers"]),
            rate("mqtt_received"),
            "fixes received/s",
        ),
        "hj212": (
            len(endpoints["hj212"]),
            len(endpoints["hj212"]) / opts["push_interval_s"],
            rate("hj212_2011"),
            "real-time frames received/s",
        ),
        "jt808": (
            len(endpoints["jt808"]),
            len(endpoints["jt808"]) / opts["push_interval_s"],
            rate("jt808_0200"),
            "location reports received/s",
        ),
    }
    for kind in kinds:
        n, nominal, achieved, unit = per_kind[kind]
        out["kinds"][kind] = {
            "devices": n,
            "unit": unit,
            "nominal_per_s": round(nominal, 1),
            "achieved_per_s": round(achieved, 1),
            "achieved_vs_nominal": round(achieved / nominal, 3) if nominal else None,
        }
    ko = out["kinds"]
    if "opcua" in ko:
        ko["opcua"]["tick_overruns"] = int(b["tick_overruns"] - a["tick_overruns"])
        ko["opcua"]["items_subscribed"] = int(b["opcua_items"])
        ko["opcua"]["notifications_per_s"] = round(rate("opcua_notifications"), 1)
        ko["opcua"]["subscription_status_changes"] = int(b["opcua_status_changes"])
    if "modbus" in ko:
        ko["modbus"]["errors"] = int(b["modbus_errors"] - a["modbus_errors"])
        ko["modbus"]["ports"] = len({d["endpoint"] for d in mb})
    if "mqtt" in ko:
        ko["mqtt"]["published_per_s"] = round(rate("mqtt_published"), 1)
        ko["mqtt"]["dropped"] = int(
            b["mqtt_failed"] + b["mqtt_dropped"] - a["mqtt_failed"] - a["mqtt_dropped"]
        )
    if len(kinds) == 1 and cpu > 0:
        k = ko[kinds[0]]
        work = k["achieved_vs_nominal"] or 0.0
        k["cpu_pct_per_1000_at_nominal"] = round(
            100 * cpu / max(1e-9, work) * 1000 / k["devices"], 2
        )
        k["capacity_per_process"] = int(_CORE_BUDGET * k["devices"] * work / cpu)
    return out


def run(sizes: tuple[str, ...] = ("district", "city"), seconds: float = 20.0) -> dict[str, Any]:
    """Capacity per kind and process, district whole and city kind by kind."""
    from hardware.inventory import build_inventory

    async def main() -> dict[str, Any]:
        with tempfile.TemporaryDirectory() as tmp:
            broker, url = start_mosquitto(Path(tmp))
            try:
                pid = broker.pid
                out: dict[str, Any] = {"options": {**OPTS, "seconds": seconds}}
                base = await measure("tiny", (), seconds)
                out["baseline"] = {k: base[k] for k in ("cpu_pct", "rss_mb", "startup_s")}
                everything = tuple(sim_load.KINDS)
                if "district" in sizes:
                    # ~40 devices at 10-30 s: a minute, so that the rates mean something
                    window = max(seconds, 60.0)
                    out["district"] = await measure("district", everything, window, url, pid)
                if "city" in sizes:
                    city: dict[str, Any] = {}
                    for kind in everything:
                        # The load client cannot take every value of 4,800 cabinets on this
                        # machine: at the city's count it subscribes to one cabinet in four...
                        every = 4 if kind == "opcua" else 1
                        city[kind] = await measure("city", (kind,), seconds, url, pid, every)
                    city["opcua"]["kinds"]["opcua"]["subscribed_every"] = 4
                    # ...and the cost of a cabinet with all its values subscribed, as an agent
                    # does, comes from 1,000 of them: that sizes the processes.
                    full = await measure("city", ("opcua",), seconds, url, pid, 1, 1000)
                    full["kinds"]["opcua"]["subscribed_every"] = 1
                    out["city"] = _plan(city, full, build_inventory("city"))
                return out
            finally:
                broker.terminate()
                broker.wait(30)

    return asyncio.run(main())


def _plan(city: dict[str, Any], opcua_full: dict[str, Any], inv: Any) -> dict[str, Any]:
    """Per kind: the measurement, the capacity of one process, the processes the city needs
    (cabinets sized by the fully subscribed measurement)."""
    total = 0.0
    for kind, m in city.items():
        k = m["kinds"][kind]
        k["rss_mb_per_1000"] = round(1000 * m["rss_mb"] / max(1, k["devices"]), 1)
        sizing = opcua_full["kinds"]["opcua"] if kind == "opcua" else k
        need = k["devices"] / max(1, sizing["capacity_per_process"])
        k["processes_for_city"] = math.ceil(need)
        total += need
    return {
        "kinds": city,
        "opcua_fully_subscribed": opcua_full,
        "devices": len(inv.cabinets) + len(inv.dust_monitors) + len(inv.vehicles),
        "processes": math.ceil(total),
        "fits_one_process": total <= 1.0,
    }


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
