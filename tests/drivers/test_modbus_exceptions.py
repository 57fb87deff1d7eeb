"""Modbus exception responses from the real simulator mapped to clear driver errors,
and per-device retries of a timed-out or busy request."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pymodbus.constants import ExcCodes

from contracts.config import DeviceConfig
from drivers import BadConfig, DeviceTimeout, DeviceUnavailable, WriteRejected
from drivers.modbus import ModbusDriver
from drivers.modbus.bus import EXCEPTION_CODES, DeviceBusy, IllegalAddress, exception_error
from hardware.sim.modbus_server import ModbusDeviceServer, unit
from tests.drivers._dust import dust_device, dust_state

STATE = dust_state(10.0)


def _device(srv: ModbusDeviceServer, unit_id: int = 1, **kw: Any) -> DeviceConfig:
    return dust_device(srv.endpoint, unit_id, timeout_s=5.0, **kw)


def _answer_with(srv: ModbusDeviceServer, codes: list[ExcCodes]) -> None:
    """The simulator answers the next requests with these exception codes, then normally."""
    normal = srv._action

    async def action(*args: Any, **kw: Any) -> ExcCodes | None:
        if codes:
            srv.requests += 1
            return codes.pop(0)
        return await normal(*args, **kw)

    srv._action = action  # type: ignore[method-assign]


#: code -> (driver error on a read, text the operator sees)
TABLE = {
    ExcCodes.ILLEGAL_FUNCTION: (BadConfig, "exception 1 (illegal function)"),
    ExcCodes.ILLEGAL_ADDRESS: (IllegalAddress, "exception 2 (illegal data address)"),
    ExcCodes.ILLEGAL_VALUE: (BadConfig, "exception 3 (illegal data value)"),
    ExcCodes.DEVICE_FAILURE: (DeviceUnavailable, "exception 4 (server device failure)"),
    ExcCodes.DEVICE_BUSY: (DeviceBusy, "exception 6 (server device busy)"),
    ExcCodes.GATEWAY_NO_RESPONSE: (
        DeviceTimeout,
        "exception 11 (gateway target device failed to respond)",
    ),
}


def test_exception_codes_from_the_simulator_become_clear_errors():
    async def main() -> None:
        srv = ModbusDeviceServer(unit("DM-1", 1, "modbus_dust_monitor", lambda: STATE))
        await srv.start()
        drv = ModbusDriver(_device(srv))
        try:
            await drv.connect()
            for code, (error, text) in TABLE.items():
                _answer_with(srv, [code])
                with pytest.raises(error) as got:
                    await drv._read(drv._plan[0])
                assert str(got.value) == f"DM-1 input[0:+16]: {text}"
                # only 02 on a merged read is narrowed down; the others are not IllegalAddress
                assert (code == ExcCodes.ILLEGAL_ADDRESS) == isinstance(got.value, IllegalAddress)
            assert {r.field for r in await drv.read()} == set(STATE)  # the bus is still fine
        finally:
            await drv.close()
            await srv.stop()

    asyncio.run(main())


def test_undefined_address_and_offline_unit_behind_a_gateway_without_injection():
    """The two codes the simulator produces by itself: 02 and 0B."""

    async def main() -> None:
        offline = {"DM-2"}
        srv = ModbusDeviceServer(
            [
                unit("DM-1", 1, "modbus_dust_monitor", lambda: STATE),
                unit("DM-2", 2, "modbus_dust_monitor", lambda: STATE),
            ],
            is_offline=offline.__contains__,
        )
        await srv.start()
        one, two = ModbusDriver(_device(srv, 1)), ModbusDriver(_device(srv, 2))
        try:
            await one.connect()
            await two.connect()
            bus = one._need_bus()
            with pytest.raises(IllegalAddress, match="exception 2"):
                await bus.read("holding", 500, 2, 1, 5.0, "DM-1 holding[500:+2]")
            with pytest.raises(DeviceTimeout, match="exception 11"):
                await two.read()
            assert len(await one.read()) == len(STATE)  # its neighbour is unaffected
        finally:
            await one.close()
            await two.close()
            await srv.stop()

    asyncio.run(main())


@pytest.mark.parametrize("code", sorted(EXCEPTION_CODES))
def test_every_known_code_maps_to_a_driver_error_naming_it(code: int):
    read, write = exception_error(code, "X"), exception_error(code, "X", writing=True)
    assert f"exception {code} ({EXCEPTION_CODES[code]})" in str(read)
    if code in (1, 2, 3):
        assert isinstance(write, WriteRejected) and isinstance(read, BadConfig)
    else:
        assert isinstance(read, DeviceUnavailable | DeviceTimeout)


@pytest.mark.parametrize(
    "retries,codes,ok",
    [
        (0, [ExcCodes.DEVICE_BUSY], False),
        (2, [ExcCodes.DEVICE_BUSY, ExcCodes.GATEWAY_NO_RESPONSE], True),
        (1, [ExcCodes.DEVICE_BUSY, ExcCodes.DEVICE_BUSY], False),
        (3, [ExcCodes.ACKNOWLEDGE], True),
        # no retry for an answer that will not change: a bad address or function
        (3, [ExcCodes.ILLEGAL_FUNCTION], False),
    ],
)
def test_retries_are_per_device(retries: int, codes: list[ExcCodes], ok: bool):
    async def main() -> None:
        srv = ModbusDeviceServer(unit("DM-1", 1, "modbus_dust_monitor", lambda: STATE))
        await srv.start()
        drv = ModbusDriver(_device(srv, retries=retries))
        try:
            await drv.connect()
            n = len(codes)
            _answer_with(srv, list(codes))
            before = srv.requests
            if ok:
                assert len(await drv.read()) == len(STATE)
                assert drv.stats()["retries"] == n and srv.requests - before == n + 1
            else:
                with pytest.raises((DeviceBusy, BadConfig)):
                    await drv.read()
                tries = 1 if codes[0] == ExcCodes.ILLEGAL_FUNCTION else retries + 1
                assert srv.requests - before == tries
                assert drv.stats()["retries"] == tries - 1
        finally:
            await drv.close()
            await srv.stop()

    asyncio.run(main())


def test_retries_and_priority_are_validated_and_come_from_templates():
    from contracts.config import AgentConfig

    agent = AgentConfig.model_validate(
        {
            "id": "a",
            "templates": {
                "dm": {
                    "kind": "dust_monitor",
                    "protocol": "modbus",
                    "retries": 2,
                    "priority": "high",
                }
            },
            "devices": [
                {
                    "id": "DM-1",
                    "template": "dm",
                    "profile": "modbus_dust_monitor",
                    "endpoint": "modbus://127.0.0.1:502",
                }
            ],
        }
    )
    assert agent.devices[0].retries == 2 and agent.devices[0].priority == "high"
    base = dict(
        id="X", kind="dust_monitor", protocol="modbus", profile="modbus_dust_monitor", endpoint="h"
    )
    assert DeviceConfig(**base).priority == "normal" and DeviceConfig(**base).retries == 0
    for bad in ({"retries": -1}, {"retries": 6}, {"priority": "urgent"}, {"priority": 1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            DeviceConfig(**base, **bad)
