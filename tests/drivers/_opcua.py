"""A real asyncua cabinet server (the simulator's) for driver tests, restartable on its port;
a TCP proxy that can go silent; certificates for the security tests."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from asyncua.crypto.cert_gen import (
    dump_private_key_as_pem,
    generate_private_key,
    generate_self_signed_app_certificate,
)
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from bench.servers import free_port
from contracts.config import DeviceConfig
from contracts.telemetry import TelemetryRow
from drivers.opcua import OpcUaDriver
from edge_agent.supervisor import DeviceSupervisor
from hardware.inventory import build_inventory
from hardware.profiles import load_profile
from hardware.sim.city import SimulatedCity
from hardware.sim.lighting import CabinetModel
from hardware.sim.opcua_server import OpcUaCabinetServer, ServerSecurity

PROFILE = "opcua_lighting_cabinet"


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


@contextlib.asynccontextmanager
async def supervised(
    device: DeviceConfig, driver: OpcUaDriver | None = None
) -> AsyncIterator[tuple[DeviceSupervisor, list[tuple[float, TelemetryRow]]]]:
    """The device under a running supervisor, and the rows it forwards with their arrival
    (monotonic) time; the supervisor is stopped on the way out."""
    got: list[tuple[float, TelemetryRow]] = []
    sup = DeviceSupervisor(
        device,
        driver or OpcUaDriver(device),
        lambda rows: got.extend((time.monotonic(), r) for r in rows),
        lambda *_: None,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(sup.run(stop))
    try:
        yield sup, got
    finally:
        stop.set()
        await task


async def until(cond: Any, timeout_s: float, what: str) -> Any:
    """Poll a condition with a deadline."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def make_cert(folder: Path, name: str, uri: str, use: x509.ObjectIdentifier) -> tuple[Path, Path]:
    """A self-signed application certificate (DER) and its key (PEM) in ``folder``."""
    key = generate_private_key()
    cert = generate_self_signed_app_certificate(
        key,
        name,
        {"organizationName": "Rongguan test"},
        [x509.UniformResourceIdentifier(uri), x509.DNSName("localhost")],
        [use],
    )
    cert_path, key_path = folder / f"{name}.der", folder / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(Encoding.DER))
    key_path.write_bytes(dump_private_key_as_pem(key))
    return cert_path, key_path


class SilentProxy:
    """A loopback TCP proxy in front of a server that can stop forwarding without closing
    any connection: the server looks alive to TCP but answers nothing (a hung device,
    a stalled link). New connections are accepted and held the same way."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.port = 0
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}"

    async def start(self) -> SilentProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    def pause(self) -> None:
        """Stop forwarding in both directions; sockets stay open."""
        self.flowing.clear()

    def resume(self) -> None:
        """Forward again (what was held is delivered late)."""
        self.flowing.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        await self.flowing.wait()
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            writer.close()
            return
        for src, dst in ((reader, up_w), (up_r, writer)):
            task = asyncio.create_task(self._pump(src, dst))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                await self.flowing.wait()
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            dst.close()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
