"""OPC-UA subscriptions against the simulator's real asyncua server: changes, deadband,
a bad node isolated, polling fallback, and a server restart the agent rides through."""

from __future__ import annotations

import asyncio
import time

from asyncua import ua

from contracts.telemetry import TelemetryRow
from drivers.opcua import OpcUaDriver
from tests.drivers._opcua import CabinetServer, supervised, until


def _run(coro, timeout_s: float = 40.0):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


def test_subscription_pushes_changes_and_isolates_a_bad_node() -> None:
    async def main() -> None:
        srv = await CabinetServer().start()
        try:
            cab = srv.models[0].cab.id
            # A node the server no longer has must not cost the other items.
            assert srv.server is not None
            door = ua.NodeId(f"{cab}.DoorOpen", srv.server.idx)
            await srv.server.server.delete_nodes([srv.server.server.get_node(door)])
            drv = OpcUaDriver(srv.device(0, publishing_interval_ms=50))
            await drv.connect()
            assert drv.subscribed
            assert set(drv.bad_keys) == {"door_open"}
            assert drv.stats()["bad_nodes"] == 1
            n_items = len(drv.settings.points) - 1
            assert drv.stats()["monitored_items"] == n_items
            rows: list[TelemetryRow] = []

            async def collect() -> bool:
                rows.extend(await drv.read())
                return (
                    len({r.field for r in rows}) >= n_items
                    and sum(r.field == "voltage_l1" for r in rows) >= 3
                )

            deadline = time.monotonic() + 5
            while not await collect():
                assert time.monotonic() < deadline, {r.field for r in rows}
                await asyncio.sleep(0.05)
            assert {r.device_id for r in rows} == {cab}
            assert "door_open" not in {r.field for r in rows}
            volts = [r.value for r in rows if r.field == "voltage_l1"]
            assert all(v is not None and 200 <= v < 220 for v in volts)
            assert drv.stats()["reads"] == 0  # no Read service calls: pushed data only
            await drv.close()
        finally:
            await srv.stop()

    _run(main())


def test_deadband_suppresses_small_changes_and_poll_mode_reads() -> None:
    async def main() -> None:
        srv = await CabinetServer().start()
        try:
            drv = OpcUaDriver(srv.device(0, publishing_interval_ms=50, deadband=50.0))
            await drv.connect()
            await asyncio.sleep(1.0)  # ~10 pushes of voltage_l1 changing by 1 V each
            volts = [r for r in await drv.read() if r.field == "voltage_l1"]
            assert len(volts) == 1  # the initial value only: changes < 50 V are filtered
            await drv.close()
            poll = OpcUaDriver(srv.device(0, mode="poll"))
            await poll.connect()
            assert not poll.subscribed
            rows = await poll.read()
            assert len(rows) == len(poll.settings.points) and poll.stats()["reads"] == 1
            await poll.close()
        finally:
            await srv.stop()

    _run(main())


def test_server_restart_data_resumes_by_itself_within_10_s() -> None:
    async def main() -> None:
        srv = await CabinetServer().start()
        device = srv.device(0, publishing_interval_ms=100)
        try:
            async with supervised(device) as (sup, got):
                await until(lambda: len(got) > 20, 5, "first data")
                await srv.stop()
                await until(lambda: sup.state != "online", 5, "the loss noticed")
                t_restart = time.monotonic()
                await srv.start()  # same port, a fresh server: the old session is gone
                await until(
                    lambda: any(t > t_restart and r.field == "voltage_l1" for t, r in got),
                    10,
                    "data after the restart",
                )
                resumed_s = min(t for t, r in got if t > t_restart) - t_restart
                assert resumed_s < 10
                await until(lambda: sup.state == "online", 5, "online again")
                stats = sup.stats()
                assert stats["driver_sessions"] >= 2 and stats["driver_subscriptions"] >= 2
                assert stats["driver_sessions_lost"] + stats["polls_failed"] >= 1
        finally:
            await srv.stop()

    _run(main())
