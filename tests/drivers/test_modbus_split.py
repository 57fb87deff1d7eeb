"""A merged Modbus read that hits a missing register is split; the rest keeps polling."""

from __future__ import annotations

import asyncio

import pytest

from contracts.config import DeviceConfig
from drivers import BadConfig
from drivers.modbus import ModbusDriver
from hardware.sim.modbus_server import ModbusDeviceServer, unit

STATE = {
    "pm25": 35.0,
    "pm10": 80.0,
    "tsp": 120.0,
    "noise": 60.0,
    "wind_speed": 2.0,
    "wind_direction": 90.0,
    "temperature": 18.0,
    "humidity": 70.0,
}


def _server(missing: tuple[str, ...]) -> ModbusDeviceServer:
    u = unit("DM-X", 1, "modbus_dust_monitor", lambda: STATE)
    # A device firmware without some registers of its profile: they answer exception 02.
    u.points["input"] = {a: p for a, p in u.points["input"].items() if p.key not in missing}
    return ModbusDeviceServer(u)


def _driver(srv: ModbusDeviceServer) -> ModbusDriver:
    return ModbusDriver(
        DeviceConfig(
            id="DM-X",
            kind="dust_monitor",
            protocol="modbus",
            profile="modbus_dust_monitor",
            endpoint=srv.endpoint,
            unit_id=1,
        )
    )


def test_bad_points_are_isolated_and_the_rest_keeps_polling():
    async def main():
        srv = _server(("tsp", "humidity"))
        await srv.start()
        drv = _driver(srv)
        try:
            await drv.connect()
            first = {r.field: r.value for r in await drv.read()}
            assert set(first) == set(STATE) - {"tsp", "humidity"}
            assert first["pm10"] == pytest.approx(80.0)
            assert set(drv.bad_points) == {"tsp", "humidity"}
            stats = drv.stats()
            assert stats["bad_points"] == 2 and stats["split_reads"] >= 2
            before = srv.requests
            again = {r.field for r in await drv.read()}
            assert again == set(first)
            # the split plan is kept: a later poll makes no failing request
            assert srv.requests - before == len(drv._plan) <= 4
            assert drv.stats()["read_errors"] == stats["read_errors"]
        finally:
            await drv.close()
            await srv.stop()

    asyncio.run(main())


def test_no_readable_point_is_a_config_error():
    async def main():
        srv = _server(tuple(STATE))
        await srv.start()
        drv = _driver(srv)
        try:
            await drv.connect()
            with pytest.raises(BadConfig, match="no readable point"):
                await drv.read()
            assert drv.stats()["bad_points"] == len(STATE)
        finally:
            await drv.close()
            await srv.stop()

    asyncio.run(main())
