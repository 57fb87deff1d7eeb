"""An independent asyncua Client browses a simulated cabinet and switches a circuit."""

from __future__ import annotations

import asyncio
import time

import pytest
from asyncua import Client, ua

from hardware.inventory import build_inventory
from hardware.sim.city import SimulatedCity
from tests.hardware.conftest import run


async def _with_client(body) -> None:  # type: ignore[no-untyped-def]
    city = SimulatedCity(build_inventory("tiny"), clock_start="21:00")  # night: circuits lit
    endpoints = await city.start()
    try:
        server = endpoints["opcua"][0]
        assert server["devices"] == ["LC-0001", "LC-0002"]
        async with Client(server["endpoint"], timeout=5) as client:
            idx = await client.get_namespace_index(server["namespace"])
            await body(city, client, idx)
    finally:
        await city.stop()


def test_browse_a_cabinet_and_read_its_variables() -> None:
    async def body(city: SimulatedCity, client: Client, idx: int) -> None:
        objects = client.nodes.objects
        cab = await objects.get_child([f"{idx}:LC-0002"])
        assert cab.nodeid == ua.NodeId("LC-0002", idx)
        names = {(await n.read_browse_name()).Name for n in await cab.get_children()}
        assert {
            "VoltageL1",
            "EnergyConsumed",
            "DoorOpen",
            "Circuit1",
            "Circuit6",
            "SwitchCircuit",
        } <= names
        on = await cab.get_child([f"{idx}:Circuit3", f"{idx}:On"])
        assert on.nodeid == ua.NodeId("LC-0002.Circuit3.On", idx)
        assert await on.read_value() is True
        volts = await client.get_node(f"ns={idx};s=LC-0002.VoltageL1").read_value()
        assert 210 < volts < 230

    run(_with_client(body))


def test_switch_circuit_method_changes_the_device_and_rejects_bad_circuits() -> None:
    async def body(city: SimulatedCity, client: Client, idx: int) -> None:
        cab = client.get_node(ua.NodeId("LC-0001", idx))
        assert city.state("LC-0001")["circuit2_on"] is True
        result = await cab.call_method(
            f"{idx}:SwitchCircuit", ua.Variant(2, ua.VariantType.UInt16), False
        )
        assert result is False
        assert city.state("LC-0001")["circuit2_on"] is False
        assert city.state("LC-0001")["circuit2_current"] == 0
        on = client.get_node(f"ns={idx};s=LC-0001.Circuit2.On")
        assert await on.read_value() is False
        current = client.get_node(f"ns={idx};s=LC-0001.Circuit2.Current")
        with pytest.raises(ua.uaerrors.BadInvalidArgument):
            await cab.call_method(
                f"{idx}:SwitchCircuit", ua.Variant(7, ua.VariantType.UInt16), True
            )
        with pytest.raises(ua.uaerrors.BadInvalidArgument):
            await cab.call_method(
                f"{idx}:SwitchCircuit", ua.Variant(0, ua.VariantType.UInt16), True
            )
        assert city.state("LC-0001")["circuit1_on"] is True  # nothing else moved
        assert await current.read_value() == 0

    run(_with_client(body))


def test_writing_the_on_variable_switches_too_and_offline_reads_bad() -> None:
    async def body(city: SimulatedCity, client: Client, idx: int) -> None:
        on = client.get_node(f"ns={idx};s=LC-0002.Circuit5.On")
        await on.write_value(ua.DataValue(ua.Variant(False, ua.VariantType.Boolean)))
        assert city.state("LC-0002")["circuit5_on"] is False
        with pytest.raises(ua.UaStatusCodeError):  # a Boolean node refuses a Double
            await on.write_value(ua.DataValue(ua.Variant(1.0, ua.VariantType.Double)))
        city.inject({"kind": "device_offline", "device": "LC-0002", "duration_s": 30})
        volts = client.get_node(f"ns={idx};s=LC-0002.VoltageL1")

        async def reads_bad() -> bool:
            try:
                await volts.read_value()
            except ua.uaerrors.BadNoCommunication:
                return True
            return False

        deadline = time.monotonic() + 5
        while not await reads_bad():
            assert time.monotonic() < deadline, "offline cabinet still reads Good"
            await asyncio.sleep(0.05)
        other = await client.get_node(f"ns={idx};s=LC-0001.VoltageL1").read_value()
        assert other > 200  # the other cabinet on the same server is unaffected

    run(_with_client(body))
