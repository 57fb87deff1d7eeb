"""Many cabinets behind one OPC-UA server share one session and one subscription; each
still comes and goes on its own, and all of them ride through a server restart."""

from __future__ import annotations

import asyncio
import time

from bench.servers import free_port
from contracts.telemetry import TelemetryRow
from drivers import DeviceUnavailable
from drivers.opcua import OpcUaDriver
from drivers.opcua import session as sessions
from edge_agent.supervisor import DeviceSupervisor
from tests.drivers._opcua import CabinetServer, until


def test_devices_share_a_session_and_leave_it_one_by_one() -> None:
    async def main() -> None:
        srv = await CabinetServer(size="district").start()
        got: dict[str, list[tuple[float, TelemetryRow]]] = {}

        def sink(rows: list[TelemetryRow]) -> None:
            for r in rows:
                got.setdefault(r.device_id, []).append((time.monotonic(), r))

        sups = []
        for i in range(len(srv.models)):
            dev = srv.device(i, publishing_interval_ms=100)
            sups.append(DeviceSupervisor(dev, OpcUaDriver(dev), sink, lambda *_: None))
        stops = [asyncio.Event() for _ in sups]
        tasks = [asyncio.create_task(s.run(e)) for s, e in zip(sups, stops)]
        ids = [s.device.id for s in sups]
        try:
            assert len(ids) == 10
            await until(lambda: set(got) == set(ids), 15, "data from every cabinet")
            assert sessions.stats() == {"sessions": 1, "subscriptions": 1, "devices": 10}

            # one cabinet leaves: its items go, the others keep their data coming
            stops[0].set()
            await tasks[0]
            assert sessions.stats() == {"sessions": 1, "subscriptions": 1, "devices": 9}
            t_left = time.monotonic()
            await until(
                lambda: all(any(t > t_left + 0.5 for t, _ in got[i]) for i in ids[1:]),
                10,
                "the others after the first left",
            )
            assert not any(t > t_left for t, _ in got[ids[0]])

            # the server restarts: every remaining cabinet resumes by itself, one session again
            await srv.stop()
            await until(lambda: all(s.state != "online" for s in sups[1:]), 10, "loss noticed")
            t_restart = time.monotonic()
            await srv.start()
            await until(
                lambda: all(any(t > t_restart for t, _ in got[i]) for i in ids[1:]),
                20,
                "data after the restart",
            )
            assert max(min(t for t, _ in got[i] if t > t_restart) for i in ids[1:]) - t_restart < 10
            assert sessions.stats() == {"sessions": 1, "subscriptions": 1, "devices": 9}
        finally:
            for e in stops:
                e.set()
            await asyncio.gather(*tasks)
            for s in sups:
                assert s.driver is not None
                await s.driver.close()
            await srv.stop()
        assert sessions.stats() == {"sessions": 0, "subscriptions": 0, "devices": 0}

    asyncio.run(asyncio.wait_for(main(), 90))


def test_a_dead_server_costs_one_connect_attempt_not_one_per_device() -> None:
    async def main() -> None:
        endpoint = f"opc.tcp://127.0.0.1:{free_port()}"  # nothing listens there
        drivers = []
        for i in range(20):
            dev = CabinetServer().device(0).model_copy(update={"id": f"LC-D{i:02d}"})
            drivers.append(OpcUaDriver(dev.model_copy(update={"endpoint": endpoint})))
        results = await asyncio.gather(*(d.connect() for d in drivers), return_exceptions=True)
        assert all(isinstance(r, DeviceUnavailable) for r in results), results
        assert "Connect call failed" in str(results[-1])
        [dead] = [s for s in sessions._SESSIONS.mine() if s.endpoint == endpoint]
        assert dead.connects == 1 and dead.users == 0  # kept only for its failure
        assert all(d._client is None for d in drivers)

    asyncio.run(asyncio.wait_for(main(), 30))
