"""Pushing devices of the simulated city: HJ 212 monitors and JT/T 808 terminals as TCP clients.

They connect to the agent's listeners (``{"hj212": (host, port), "jt808": (host, port)}``);
one asyncio task per device, each with its own connection, as in the field.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from hardware.profiles import load_profile
from hardware.sim.clock import SimClock
from hardware.sim.dust import DustModel
from hardware.sim.hj212_device import HJ212Device
from hardware.sim.jt808_device import JT808Device
from hardware.sim.trucks import TruckModel

__all__ = ["PushDevices", "protocol_of"]


def protocol_of(profile: str) -> str:
    """The protocol a profile speaks."""
    return load_profile(profile).protocol


class PushDevices:
    """Every HJ 212 and JT/T 808 device of a city, run as client tasks."""

    def __init__(
        self,
        dust: dict[str, DustModel],
        trucks: dict[str, TruckModel],
        listeners: dict[str, tuple[str, int]],
        is_offline: Callable[[str], bool],
        *,
        hj212_interval_s: float = 20.0,
        hj212_minute_s: float = 60.0,
        jt808_interval_s: float = 20.0,
        clock: SimClock | None = None,
    ):
        clock = clock if clock is not None else SimClock()
        self.hj212: list[HJ212Device] = []
        self.jt808: list[JT808Device] = []
        if "hj212" in listeners:
            host, port = listeners["hj212"]
            for dm in dust.values():
                if protocol_of(dm.mon.profile) == "hj212":
                    self.hj212.append(
                        HJ212Device(
                            dm,
                            dm.mon.mn,
                            host,
                            port,
                            interval_s=hj212_interval_s,
                            minute_s=hj212_minute_s,
                            is_offline=is_offline,
                            clock=clock,
                        )
                    )
        if "jt808" in listeners:
            host, port = listeners["jt808"]
            for tm in trucks.values():
                if protocol_of(tm.veh.profile) == "jt808":
                    self.jt808.append(
                        JT808Device(
                            tm,
                            tm.veh.phone,
                            host,
                            port,
                            interval_s=jt808_interval_s,
                            version=tm.veh.jt808_version,
                            is_offline=is_offline,
                            clock=clock,
                        )
                    )
        self.listeners = listeners
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start one task per device."""
        for dev in (*self.hj212, *self.jt808):
            self._tasks.append(asyncio.create_task(dev.run()))

    async def stop(self) -> None:
        """Cancel every device task (again while one is still running: on Python 3.11
        ``asyncio.wait_for`` can swallow a cancellation that meets a reply arriving)."""
        pending = set(self._tasks)
        while pending:
            for t in pending:
                t.cancel()
            _done, pending = await asyncio.wait(pending, timeout=1.0)
        for t in self._tasks:
            if not t.cancelled():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    t.result()
        self._tasks = []

    def wake(self, device_id: str) -> None:
        """Make a device look at its state now (a fault has just taken it off line)."""
        for d in self.hj212:
            if d.model.mon.id == device_id:
                d.wake()

    def endpoints(self) -> dict[str, list[dict[str, Any]]]:
        """JSON-ready description of the pushing devices and where they push to."""
        out: dict[str, list[dict[str, Any]]] = {"hj212": [], "jt808": []}
        for d in self.hj212:
            out["hj212"].append(
                {
                    "device_id": d.model.mon.id,
                    "mn": d.mn,
                    "endpoint": f"tcp://{d.host}:{d.port}",
                    "interval_s": d.interval_s,
                    "profile": d.model.mon.profile,
                }
            )
        for j in self.jt808:
            out["jt808"].append(
                {
                    "device_id": j.device_id,
                    "phone": j.phone,
                    "endpoint": f"tcp://{j.host}:{j.port}",
                    "interval_s": j.interval_s,
                    "header": 2013 if j.version is None else 2019,
                    "profile": j.truck.veh.profile,
                }
            )
        return out

    def counters(self) -> dict[str, int]:
        """Frames sent and acknowledged, per protocol."""
        return {
            "hj212_sent": sum(d.sent for d in self.hj212),
            "hj212_frames": sum(d.frames for d in self.hj212),
            "jt808_reports": sum(d.reports for d in self.jt808),
            "hj212_acked": sum(d.acked for d in self.hj212),
            "hj212_dropped": sum(d.dropped for d in self.hj212),
            "jt808_sent": sum(d.sent for d in self.jt808),
            "jt808_batches": sum(d.batches for d in self.jt808),
            "jt808_blind_dropped": sum(d.blind_dropped for d in self.jt808),
        }
