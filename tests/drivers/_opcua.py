"""A real asyncua cabinet server (the simulator's) for driver tests, restartable on its port."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import socket
import time
from typing import Any

from contracts.config import DeviceConfig
from hardware.inventory import build_inventory
from hardware.profiles import load_profile
from hardware.sim.city import SimulatedCity
from hardware.sim.lighting import CabinetModel
from hardware.sim.opcua_server import OpcUaCabinetServer, ServerSecurity

PROFILE = "opcua_lighting_cabinet"


def free_port() -> int:
    """A free loopback TCP port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cabinets(size: str = "tiny") -> list[CabinetModel]:
    """The OPC-UA cabinets of an inventory (tiny: 2, district: 10)."""
    city = SimulatedCity(build_inventory(size), clock_start="21:00")
    return [c for c in city.cabinets.values() if load_profile(c.cab.profile).protocol == "opcua"]


class CabinetServer:
    """The simulator's OPC-UA server plus a task pushing a changing value every 0.1 s."""

    def __init__(
        self, security: ServerSecurity | None = None, port: int | None = None, size: str = "tiny"
    ):
        self.models = cabinets(size)
        self.port = port or free_port()
        self.security = security
        self.server: OpcUaCabinetServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._tick = itertools.count()

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}"

    def device(self, idx: int = 0, **address: Any) -> DeviceConfig:
        """A DeviceConfig for one cabinet of this server."""
        cab = self.models[idx].cab
        return DeviceConfig(
            id=cab.id,
            kind="lighting_cabinet",
            protocol="opcua",
            profile=PROFILE,
            endpoint=self.endpoint,
            interval_s=0.2,
            timeout_s=2.0,
            address=address,
        )

    async def start(self) -> CabinetServer:
        self.server = OpcUaCabinetServer(
            self.models, PROFILE, "127.0.0.1", self.port, lambda _: False, self.security
        )
        await self.server.start()
        await self._push()
        self._task = asyncio.create_task(self._run())
        return self

    async def _push(self) -> None:
        assert self.server is not None
        for m in self.models:
            state = m.state(time.time())
            state["voltage_l1"] = 200.0 + next(self._tick) % 20  # always a change
            await self.server.push(m.cab.id, state)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.1)
            with contextlib.suppress(Exception):
                await self._push()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.server is not None:
            await self.server.stop()
            self.server = None


async def until(cond: Any, timeout_s: float, what: str) -> Any:
    """Poll a condition with a deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")
