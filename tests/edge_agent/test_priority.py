"""Per-device priority on a shared Modbus gateway, and staggered first polls.

Priority is measured by order and by counts on the wire (a proxy in front of the real
simulator gateway records which unit each request was for), never by timing.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from contracts.config import DeviceConfig
from drivers.modbus import ModbusDriver
from edge_agent.supervisor import STAGGER_MAX_S, DeviceSupervisor
from hardware.sim.modbus_server import ModbusDeviceServer
from tests.drivers._dust import dust_device, dust_gateway, dust_state
from tests.drivers._modbus_proxy import ModbusProxy

STATE = dust_state(5.0)


def _device(endpoint: str, i: int, priority: str, interval_s: float = 5.0) -> DeviceConfig:
    # a queued low-priority poll waits long on a busy line: no timeouts
    return dust_device(endpoint, i, priority=priority, interval_s=interval_s, timeout_s=30.0)


def _supervisor(dev: DeviceConfig) -> DeviceSupervisor:
    return DeviceSupervisor(dev, ModbusDriver(dev), lambda rows: None, lambda *_: None)


async def _stop(sups: list[DeviceSupervisor], proxy: ModbusProxy, srv: ModbusDeviceServer) -> None:
    for s in sups:
        if s.driver is not None:
            await s.driver.close()
    await proxy.stop()
    await srv.stop()


def test_a_high_priority_request_goes_before_queued_low_ones():
    async def main() -> None:
        srv, proxy = await dust_gateway(5, STATE)
        prio = {1: "low", 2: "low", 3: "normal", 4: "low", 5: "high"}
        sups = {i: _supervisor(_device(proxy.endpoint, i, p)) for i, p in prio.items()}
        try:
            for s in sups.values():  # connected first: the order below is the polls' alone
                assert await s.poll()
            proxy.units.clear()
            proxy.hold()  # unit 1's request occupies the line
            polls = [asyncio.create_task(sups[1].poll())]
            await proxy.wait_received(len(sups) + 1)
            bus = sups[1].driver._need_bus()  # type: ignore[union-attr]
            for i in (2, 3, 4, 5):  # queued in this order while the line is busy
                polls.append(asyncio.create_task(sups[i].poll()))
                async with asyncio.timeout(30):
                    while bus.lock.waiting() < i - 1:
                        await asyncio.sleep(0.01)
            proxy.release()
            assert all(await asyncio.gather(*polls))
            # in flight first; then high, normal, and the lows in their order of arrival
            assert proxy.units == [1, 5, 3, 2, 4]
            assert proxy.max_outstanding == 1
            assert bus.counters()["overtaken"] >= 2
        finally:
            await _stop(list(sups.values()), proxy, srv)

    asyncio.run(main())


async def _share_of_unit_1(priorities: dict[int, str], polls_of_unit_1: int) -> dict[int, int]:
    """Every unit polls as fast as it may on one saturated line until unit 1 has made
    ``polls_of_unit_1`` polls; requests per unit as seen on the wire."""
    srv, proxy = await dust_gateway(len(priorities), STATE)
    sups = {i: _supervisor(_device(proxy.endpoint, i, p, 1e-4)) for i, p in priorities.items()}
    stop = asyncio.Event()
    try:
        runs = [asyncio.create_task(s.run(stop)) for s in sups.values()]
        async with asyncio.timeout(120):
            while sups[1].counters["polls_ok"] < polls_of_unit_1:
                await asyncio.sleep(0.01)
        stop.set()
        await asyncio.gather(*runs)
        assert all(s.counters["polls_failed"] == 0 for s in sups.values())
        assert proxy.max_outstanding == 1
        return {i: proxy.units.count(i) for i in sups}
    finally:
        await _stop(list(sups.values()), proxy, srv)


def test_an_overloaded_line_slows_the_low_priority_devices_first():
    async def main() -> dict[str, dict[int, int]]:
        lows = {2: "low", 3: "low", 4: "low"}
        return {
            "high": await _share_of_unit_1({1: "high", **lows}, 60),
            "equal": await _share_of_unit_1({1: "low", **lows}, 60),
        }

    got = asyncio.run(main())
    high, equal = got["high"], got["equal"]
    # high priority: unit 1 goes first whenever it waits, so it gets at least every other
    # turn of the line (about as many as the three others together)
    assert high[1] >= 2 * max(high[2], high[3], high[4]), got
    # the same four units at equal priority take turns
    assert max(equal.values()) < 2 * min(equal.values()), got
    share = {k: v[1] / sum(v.values()) for k, v in got.items()}
    assert share["high"] > share["equal"], got


class _Recorder:
    """A driver that records which device polled, in order (pure scheduling test)."""

    actions: frozenset = frozenset()

    def __init__(self, device: DeviceConfig, order: list[str], done: asyncio.Event, n: int):
        self.device, self._order, self._done, self._n = device, order, done, n

    async def connect(self) -> None:
        pass

    async def read(self) -> list:
        self._order.append(self.device.id)
        if len(set(self._order)) == self._n:
            self._done.set()
        return []

    async def close(self) -> None:
        pass

    def stats(self) -> dict[str, Any]:
        return {}


def _supervisors(n: int, interval_s: float, order: list[str], done: asyncio.Event):
    seed = random.Random(7)  # as the agent derives one generator per device
    out = []
    for i in range(n):
        dev = _device("modbus://127.0.0.1:1", i + 1, "normal", interval_s)
        drv = _Recorder(dev, order, done, n)
        rng = random.Random(seed.random())
        out.append(DeviceSupervisor(dev, drv, lambda r: None, lambda *_: None, rng=rng))
    return out


def test_first_polls_are_staggered_within_the_interval_in_offset_order():
    async def main() -> None:
        order: list[str] = []
        done, stop = asyncio.Event(), asyncio.Event()
        sups = _supervisors(12, 0.5, order, done)
        runs = [asyncio.create_task(s.run(stop)) for s in sups]
        await asyncio.wait_for(done.wait(), 60)
        stop.set()
        await asyncio.gather(*runs)
        offsets = {s.device.id: s.start_offset_s for s in sups}
        assert len(set(offsets.values())) == len(sups)
        assert all(0 <= o <= 0.5 for o in offsets.values())  # type: ignore[operator]
        first = list(dict.fromkeys(order))
        assert first == sorted(offsets, key=offsets.__getitem__)  # type: ignore[arg-type]

    asyncio.run(main())


def test_stagger_is_capped_for_long_intervals():
    async def main() -> list[float]:
        stop = asyncio.Event()
        stop.set()  # scheduled, never polled
        sups = _supervisors(50, 600.0, [], asyncio.Event())
        await asyncio.gather(*(s.run(stop) for s in sups))
        return [s.start_offset_s for s in sups]  # type: ignore[misc]

    offsets = asyncio.run(main())
    assert len(set(offsets)) == 50 and all(0 <= o <= STAGGER_MAX_S for o in offsets)
    assert max(offsets) - min(offsets) > STAGGER_MAX_S / 2  # spread, not bunched
