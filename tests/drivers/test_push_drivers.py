"""Pushing-device drivers: config errors, shared listeners, buffering and staleness."""

from __future__ import annotations

import asyncio

import pytest

from contracts.config import DeviceConfig
from contracts.telemetry import TelemetryRow
from drivers import BadConfig, DeviceTimeout, DeviceUnavailable, create_driver
from drivers.hj212 import Hj212Driver
from drivers.jt808 import Jt808Driver
from drivers.listener import ListenerPool


def _hj(**kw):
    base = dict(
        id="DM-H1",
        kind="dust_monitor",
        protocol="hj212",
        profile="hj212_dust_monitor",
        endpoint="tcp://127.0.0.1:0",
        address={"mn": "MN-1"},
    )
    return DeviceConfig(**{**base, **kw})


def _jt(**kw):
    base = dict(
        id="TRK-J1",
        kind="vehicle",
        protocol="jt808",
        profile="jt808_tracker",
        endpoint="tcp://127.0.0.1:0",
        address={"phone": "13800138000"},
    )
    return DeviceConfig(**{**base, **kw})


@pytest.mark.parametrize(
    "dev,reason",
    [
        (_hj(endpoint="127.0.0.1:9212"), "tcp://HOST:PORT"),
        (_hj(endpoint="tcp://127.0.0.1:x"), "tcp://HOST:PORT"),
        (_hj(address={}), "address.mn"),
        (_hj(address={"mn": "A;B"}), "address.mn"),
        (_hj(profile="jt808_tracker"), "is for jt808"),
        (_hj(address={"mn": "M", "scale": {"nope": 1}}), "address.scale.nope"),
        (_hj(address={"mn": "M", "max_buffered": 0}), "max_buffered"),
        (_jt(address={"phone": "138-0013"}), "address.phone"),
        (_jt(profile="hj212_dust_monitor"), "is for hj212"),
    ],
)
def test_bad_config(dev, reason):
    with pytest.raises(BadConfig, match=reason):
        create_driver(dev, listeners=ListenerPool())


def test_one_listener_per_endpoint_and_identities_unique():
    pool = ListenerPool()
    a = Hj212Driver(_hj(endpoint="tcp://127.0.0.1:9300"), pool)
    b = Hj212Driver(_hj(id="DM-H2", endpoint="tcp://127.0.0.1:9300", address={"mn": "MN-2"}), pool)
    assert a.listener is b.listener and set(a.listener.routes) == {"MN-1", "MN-2"}
    with pytest.raises(BadConfig, match="used twice"):
        Hj212Driver(_hj(id="DM-H3", endpoint="tcp://127.0.0.1:9300"), pool)
    with pytest.raises(BadConfig, match="already a hj212 listener"):
        Jt808Driver(_jt(endpoint="tcp://127.0.0.1:9300"), pool)


def test_buffer_drops_oldest_and_quiet_device_times_out():
    async def main():
        pool = ListenerPool()
        drv = Hj212Driver(_hj(address={"mn": "MN-1", "max_buffered": 2, "stale_s": 0.2}), pool)
        with pytest.raises(DeviceUnavailable, match="listener is not running"):
            await drv.read()
        await drv.connect()
        try:
            with pytest.raises(DeviceTimeout, match="no frame received yet"):
                await drv.read()
            for i in range(3):
                drv.seen()
                drv.push([TelemetryRow("DM-H1", "dust_monitor", i + 1, "pm10", float(i))])
            assert [r.value for r in await drv.read()] == [1.0, 2.0]
            assert drv.stats()["dropped_frames"] == 1 and drv.stats()["frames"] == 3
            assert await drv.read() == []  # quiet, but not for long yet
            await asyncio.sleep(0.3)
            with pytest.raises(DeviceTimeout, match="no frame for"):
                await drv.read()
            await drv.close()
            assert drv.listener.running  # the listener is shared and outlives a driver
        finally:
            await pool.stop()
        assert not drv.listener.running

    asyncio.run(main())


def test_port_in_use_is_device_unavailable():
    async def main():
        first = ListenerPool()
        a = Jt808Driver(_jt(), first)
        await a.connect()
        try:
            taken = a.listener.port
            b = Jt808Driver(_jt(endpoint=f"tcp://127.0.0.1:{taken}"), ListenerPool())
            with pytest.raises(DeviceUnavailable, match="TRK-J1"):
                await b.connect()
        finally:
            await first.stop()

    asyncio.run(main())


def test_a_reply_that_times_out_leaves_the_commit_future_alone(monkeypatch):
    """The commit future belongs to the outbox (one per flush, shared by many frames):
    a frame giving up on it must not cancel it for the others."""
    from drivers import listener as listener_mod

    monkeypatch.setattr(listener_mod, "REPLY_WAIT_S", 0.01)

    async def main() -> None:
        lst = ListenerPool().attach("hj212", "127.0.0.1", 0, "MN1", object(), _no_handler)
        shared: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        assert not await lst.durable(shared)  # too slow: no reply, counted
        assert not shared.cancelled() and lst.counters["replies_withheld"] == 1
        shared.set_result(True)  # ... and the next frame still gets its answer
        assert await lst.durable(shared)

    asyncio.run(main())


async def _no_handler(*_args: object) -> None:
    """A connection handler never called (no connection is made)."""
