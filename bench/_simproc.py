"""A part of the simulated city in a child process, so a benchmark measures the agent alone.

``python -m bench._simproc --size city --opcua 435 ...`` builds the inventory, keeps the
first N devices of each sort asked for, serves them over their real protocols and prints
one JSON line: ``{"devices": [...DeviceConfig dicts...], "pid": ...}``. It serves until
its stdin closes (the parent went away) or SIGTERM. :class:`SimProcess` runs it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["SimProcess", "SORTS"]

#: sort of device -> (inventory list, protocol); "modbus_lc" are the Modbus cabinets
SORTS = {
    "opcua": ("cabinets", "opcua"),
    "modbus_lc": ("cabinets", "modbus"),
    "modbus_dust": ("dust_monitors", "modbus"),
    "hj212": ("dust_monitors", "hj212"),
    "trackers": ("vehicles", "mqtt_tracker"),
    "jt808": ("vehicles", "jt808"),
}
_REPO = Path(__file__).resolve().parents[1]


class SimProcess:
    """The child process; ``devices`` are its DeviceConfig dicts once started."""

    def __init__(self, size: str, counts: dict[str, int], **options: Any):
        self.args = [sys.executable, "-m", "bench._simproc", "--size", size]
        for sort, n in counts.items():
            self.args += [f"--{sort.replace('_', '-')}", str(n)]
        for key, value in options.items():
            self.args += [f"--{key.replace('_', '-')}", str(value)]
        self.proc: subprocess.Popen[bytes] | None = None
        self.devices: list[dict[str, Any]] = []
        self.pid = 0

    def __enter__(self) -> SimProcess:
        self.proc = subprocess.Popen(
            self.args, cwd=_REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(30)
            raise RuntimeError(f"simulator exited with {self.proc.returncode} before serving")
        doc = json.loads(line)
        self.devices, self.pid = doc["devices"], doc["pid"]
        return self

    def __exit__(self, *_exc: Any) -> None:
        if self.proc is None:
            return
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def _subset(size: str, counts: dict[str, int]) -> Any:
    from hardware.inventory import build_inventory
    from hardware.profiles import load_profile

    inv = build_inventory(size)
    keep: dict[str, list[Any]] = {"cabinets": [], "dust_monitors": [], "vehicles": []}
    for sort, n in counts.items():
        attr, protocol = SORTS[sort]
        picked = [d for d in getattr(inv, attr) if load_profile(d.profile).protocol == protocol]
        keep[attr] += picked[:n]
    return dataclasses.replace(inv, **keep)


async def _serve(args: argparse.Namespace) -> None:
    from contracts.config import BrokerConfig
    from hardware.sim.city import SimulatedCity
    from hardware.sim.deployment import agent_devices

    counts = {s: getattr(args, s) for s in SORTS if getattr(args, s)}
    inv = _subset(args.size, counts)
    listeners = {}
    for proto in ("hj212", "jt808"):
        spec = getattr(args, f"{proto}_listener")
        if spec and counts.get(proto):
            host, _, port = spec.rpartition(":")
            listeners[proto] = (host, int(port))
    city = SimulatedCity(
        inv,
        mqtt=BrokerConfig(url=args.mqtt_url) if args.mqtt_url else None,
        tracker_interval_s=args.tracker_interval_s,
        tick_s=args.tick_s,
        agent_listeners=listeners or None,
        push_interval_s=args.push_interval_s,
    )
    endpoints = await city.start()
    sys.stdout.write(
        json.dumps({"devices": agent_devices(inv, endpoints), "pid": os.getpid()}) + "\n"
    )
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_reader(sys.stdin.fileno(), lambda: done.set() if not sys.stdin.read(1) else None)
    try:
        await done.wait()
    finally:
        await city.stop()


def main() -> None:
    """Entry point of the child."""
    ap = argparse.ArgumentParser(prog="python -m bench._simproc")
    ap.add_argument("--size", default="city")
    for sort in SORTS:
        ap.add_argument(f"--{sort.replace('_', '-')}", dest=sort, type=int, default=0)
    ap.add_argument("--tick-s", type=float, default=1.0)
    ap.add_argument("--tracker-interval-s", type=float, default=2.0)
    ap.add_argument("--push-interval-s", type=float, default=20.0)
    ap.add_argument("--mqtt-url", default="")
    ap.add_argument("--hj212-listener", default="")
    ap.add_argument("--jt808-listener", default="")
    asyncio.run(_serve(ap.parse_args()))


if __name__ == "__main__":
    main()
