"""Monitored-item parameters and the other driver paths against the simulator's real asyncua
server: queue size, percent deadband (and a server that refuses it), a server that refuses
subscriptions (polled instead), writes, and the ``changed`` wake-up."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from asyncua import ua
from asyncua.server.monitored_item_service import MonitoredItemService

from contracts.telemetry import TelemetryRow
from drivers import WriteRejected
from drivers.opcua import OpcUaDriver
from tests.drivers._opcua import CabinetServer


def _run(coro, timeout_s: float = 60.0):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, timeout_s))


def _server_items(srv: CabinetServer) -> list[tuple[str, Any]]:
    """(node id string, monitored item as the server holds it: filter, queue size)."""
    assert srv.server is not None
    subs = srv.server.server.iserver.subscription_service.subscriptions.values()
    return [
        (m.read_value_id.NodeId.Identifier, m)
        for isub in subs
        for m in isub.monitored_item_srv._monitored_items.values()
    ]


def test_queue_size_delivers_every_queued_value_of_a_publish() -> None:
    async def main() -> None:
        srv = await CabinetServer().start()
        try:
            # Values change every 0.1 s, the server publishes once a second.
            latest = OpcUaDriver(srv.device(0, publishing_interval_ms=1000, queue_size=1))
            queued = OpcUaDriver(srv.device(0, publishing_interval_ms=1000, queue_size=8))
            await latest.connect()
            await queued.connect()
            items = _server_items(srv)
            cab = srv.models[0].cab.id
            sizes = sorted(m.queue_size for k, m in items if k == f"{cab}.VoltageL1")
            assert sizes == [1, 8]  # the server holds what each driver asked for
            rows: dict[str, list[TelemetryRow]] = {"latest": [], "queued": []}
            batches: list[list[TelemetryRow]] = []

            async def drain() -> bool:
                got = [r for r in await queued.read() if r.field == "voltage_l1"]
                batches.append(got)
                rows["queued"] += got
                rows["latest"] += [r for r in await latest.read() if r.field == "voltage_l1"]
                return len(rows["latest"]) >= 4

            assert queued.changed is not None
            while not await drain():
                await asyncio.wait_for(queued.changed.wait(), 10)
            # One publish carries several queued values of an item, oldest first.
            multi = max(batches, key=len)
            assert len(multi) >= 3, [len(b) for b in batches]
            stamps = [r.ts for r in multi]
            assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
            assert len(rows["queued"]) >= 2 * len(rows["latest"]), (
                len(rows["queued"]),
                len(rows["latest"]),
            )
            await latest.close()
            await queued.close()
        finally:
            await srv.stop()

    _run(main())


@pytest.fixture
def percent_needs_eurange(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Make the asyncua server answer as the spec says: a percent deadband on a node without
    an EURange is refused (asyncua itself accepts and ignores it)."""
    with_range: set[str] = set()
    create = MonitoredItemService._create_data_change_monitored_item

    async def strict(
        self: MonitoredItemService, params: ua.MonitoredItemCreateRequest
    ) -> ua.MonitoredItemCreateResult:
        flt = params.RequestedParameters.Filter
        node = params.ItemToMonitor.NodeId.Identifier
        # (decoded filters are asyncua's generated class, not ua.DataChangeFilter)
        percent = getattr(flt, "DeadbandType", None) == ua.DeadbandType.Percent
        if percent and node not in with_range:
            res = ua.MonitoredItemCreateResult()
            res.StatusCode = ua.StatusCode(ua.StatusCodes.BadMonitoredItemFilterUnsupported)
            return res
        return await create(self, params)

    monkeypatch.setattr(MonitoredItemService, "_create_data_change_monitored_item", strict)
    yield with_range


def test_percent_deadband_is_requested_and_refused_items_fall_back(
    percent_needs_eurange: set[str],
) -> None:
    async def main() -> None:
        srv = await CabinetServer().start()
        try:
            cab = srv.models[0].cab.id
            percent_needs_eurange.add(f"{cab}.VoltageL1")  # the only node with an EURange
            drv = OpcUaDriver(
                srv.device(0, publishing_interval_ms=50, deadband_percent=2.5, deadband=0.5)
            )
            await drv.connect()
            assert drv.subscribed and not drv.bad_keys  # refused filters cost no item
            numeric = [p for p in drv.settings.points if p.type != "bool"]
            assert drv.stats()["filter_fallbacks"] == len(numeric) - 1
            assert drv.stats()["monitored_items"] == len(drv.settings.points)
            items = dict(_server_items(srv))
            volt = items[f"{cab}.VoltageL1"].filter
            assert volt.DeadbandType == ua.DeadbandType.Percent and volt.DeadbandValue == 2.5
            amps = items[f"{cab}.CurrentL1"].filter
            assert amps.DeadbandType == ua.DeadbandType.Absolute and amps.DeadbandValue == 0.5
            door = items[f"{cab}.DoorOpen"].filter  # no deadband on a boolean: no filter
            assert getattr(door, "Body", door) is None
            rows: list[TelemetryRow] = []
            assert drv.changed is not None
            while not {"voltage_l1", "current_l1", "door_open"} <= {r.field for r in rows}:
                await asyncio.wait_for(drv.changed.wait(), 10)
                rows += await drv.read()
            await drv.close()
        finally:
            await srv.stop()

    _run(main())


def test_server_refusing_subscriptions_is_polled_instead() -> None:
    async def main() -> None:
        srv = await CabinetServer().start()
        try:
            assert srv.server is not None
            srv.server.server.iserver.max_subscriptions = 0  # BadTooManySubscriptions
            drv = OpcUaDriver(srv.device(0, publishing_interval_ms=50))
            await drv.connect()
            assert not drv.subscribed
            assert drv.stats()["fallbacks"] == 1 and drv.stats()["subscriptions"] == 0
            for n in (1, 2):
                rows = await drv.read()
                assert len(rows) == len(drv.settings.points)
                volts = [r.value for r in rows if r.field == "voltage_l1"]
                assert volts and volts[0] is not None and 200 <= volts[0] < 220
                assert drv.stats()["reads"] == n  # each read is a Read service call
            await drv.close()
        finally:
            await srv.stop()

    _run(main())


def test_write_switches_a_circuit_and_refusals_are_clear() -> None:
    async def main() -> None:
        srv = await CabinetServer().start()
        try:
            assert srv.server is not None
            drv = OpcUaDriver(srv.device(0, mode="poll"))
            await drv.connect()
            assert drv.changed is None  # polled: nothing to wake the agent
            for on in (False, True, False):
                await drv.write("circuit2_on", on)
                assert await drv.read_point("circuit2_on") == float(on)
                assert srv.models[0].on[1] is on  # the contactor moved
            with pytest.raises(WriteRejected, match="not a writable point"):
                await drv.write("voltage_l1", 230.0)
            with pytest.raises(WriteRejected, match="not a writable point"):
                await drv.write("no_such_point", 1)
            srv.server.is_offline = lambda _: True  # the cabinet stops answering its bus
            with pytest.raises(WriteRejected, match="BadNoCommunication"):
                await drv.write("circuit2_on", True)
            await drv.close()
        finally:
            await srv.stop()

    _run(main())


def test_changed_is_set_when_the_server_pushes() -> None:
    async def main() -> None:
        srv = await CabinetServer().start()
        try:
            drv = OpcUaDriver(srv.device(0, publishing_interval_ms=50))
            await drv.connect()
            assert drv.changed is not None
            for _ in range(3):
                await asyncio.wait_for(drv.changed.wait(), 10)
                rows = await drv.read()
                assert rows, "woken without data"
            await drv.close()
        finally:
            await srv.stop()

    _run(main())
