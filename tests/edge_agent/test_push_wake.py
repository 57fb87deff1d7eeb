"""Data an OPC-UA server pushes is forwarded when it arrives, not at the next poll period:
the driver's ``changed`` event wakes its supervisor."""

from __future__ import annotations

import asyncio

from contracts.telemetry import TelemetryRow
from drivers.opcua import OpcUaDriver
from edge_agent.supervisor import DeviceSupervisor
from tests.drivers._opcua import CabinetServer, until


def test_pushed_changes_are_forwarded_between_two_polls() -> None:
    async def main() -> None:
        srv = await CabinetServer().start()  # a new voltage every 0.1 s
        # A period far longer than the test: every delivery after the first is a wake-up.
        device = srv.device(0, publishing_interval_ms=100).model_copy(update={"interval_s": 3600.0})
        driver = OpcUaDriver(device)
        deliveries: list[list[TelemetryRow]] = []
        sup = DeviceSupervisor(device, driver, deliveries.append, lambda *_: None)
        stop = asyncio.Event()
        task = asyncio.create_task(sup.run(stop))
        try:
            await until(lambda: len(deliveries) >= 5, 60, "five deliveries within one period")
            assert driver.subscribed and driver.stats()["reads"] == 0  # pushed, never polled
            voltages = [r.value for rows in deliveries for r in rows if r.field == "voltage_l1"]
            assert len(set(voltages)) >= 4, voltages  # fresh values, not one poll repeated
        finally:
            stop.set()
            await task
            await srv.stop()

    asyncio.run(asyncio.wait_for(main(), 120))
