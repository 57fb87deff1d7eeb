"""One TCP connection per gateway and one transaction in flight on it, seen on the wire;
the line's priority lock on its own."""

from __future__ import annotations

import asyncio
import struct

from drivers.modbus import ModbusDriver
from drivers.modbus.line import PRIORITY_RANK, PriorityLock
from drivers.modbus.mbap import frame
from tests.drivers._dust import dust_device, dust_gateway, dust_state
from tests.drivers._modbus_proxy import ModbusProxy

UNITS = 6
STATE = dust_state(1.0)


def _driver(proxy: ModbusProxy, i: int) -> ModbusDriver:
    return ModbusDriver(dust_device(proxy.endpoint, i, timeout_s=10.0))


def test_units_polled_at_once_share_one_connection_one_request_in_flight():
    async def main() -> None:
        srv, proxy = await dust_gateway(UNITS, STATE)
        drivers = [_driver(proxy, i) for i in range(1, UNITS + 1)]
        try:
            # every unit connects at once, then polls 20 times, all concurrently; the line is
            # held at first so that every unit's first request is queued behind another
            proxy.hold()
            await asyncio.gather(*(d.connect() for d in drivers))
            polls = [asyncio.create_task(_poll(d, 20)) for d in drivers]
            await proxy.wait_received(1)
            bus = drivers[0]._need_bus()
            async with asyncio.timeout(30):
                while bus.lock.waiting() < UNITS - 1 and proxy.received == 1:
                    await asyncio.sleep(0.01)  # until every other unit queues (or pipelines)
            assert proxy.received == 1
            proxy.release()
            rows = await asyncio.gather(*polls)
            assert rows == [20 * len(STATE)] * UNITS
            assert proxy.connections == 1 and bus.connects == 1
            assert proxy.max_outstanding == 1
            assert len(proxy.units) == UNITS * 20 and sorted(set(proxy.units)) == list(
                range(1, UNITS + 1)
            )
        finally:
            for d in drivers:
                await d.close()
            await proxy.stop()
            await srv.stop()

    asyncio.run(main())


async def _poll(drv: ModbusDriver, n: int) -> int:
    return sum([len(await drv.read()) for _ in range(n)])


def test_the_proxy_sees_pipelined_requests():
    """The instrument can fail: three requests sent back to back count as three in flight."""

    async def main() -> None:
        srv, proxy = await dust_gateway(1, STATE)
        try:
            proxy.hold()
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            pdu = struct.pack(">BHH", 4, 0, 2)
            writer.write(b"".join(frame(tid, 1, pdu) for tid in (1, 2, 3)))
            await proxy.wait_received(3)
            assert proxy.max_outstanding == 3
            # (the simulator, like many gateways, answers only the first of them)
            proxy.release()
            await reader.readexactly(7 + 2 + 4)
            writer.close()
        finally:
            await proxy.stop()
            await srv.stop()

    asyncio.run(main())


def test_priority_lock_serves_by_rank_then_arrival_and_skips_cancelled():
    async def main() -> None:
        lock = PriorityLock()
        order: list[str] = []
        await lock.acquire(PRIORITY_RANK["low"])  # the line is busy

        async def want(name: str, rank: str) -> None:
            async with lock.holding(PRIORITY_RANK[rank]):
                order.append(name)

        tasks = {
            name: asyncio.create_task(want(name, rank))
            for name, rank in (("l1", "low"), ("n1", "normal"), ("l2", "low"), ("h1", "high"))
        }
        while lock.waiting() < 4:
            await asyncio.sleep(0)
        tasks["n1"].cancel()
        lock.release()
        await asyncio.gather(*tasks.values(), return_exceptions=True)
        assert order == ["h1", "l1", "l2"]
        assert not lock.locked() and lock.waiting() == 0
        assert lock.served_out_of_order == 1  # h1 overtook l1 (and l2)

    asyncio.run(main())
