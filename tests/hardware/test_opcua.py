"""Independent OPC-UA clients browse a simulated cabinet and switch a circuit: an asyncua
Client in the test, and asyncua's command-line tools in processes of their own."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

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


async def _cli(tool: str, *args: str) -> tuple[int, str]:
    exe = Path(sys.executable).with_name(tool)
    proc = await asyncio.create_subprocess_exec(
        str(exe), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode()


@pytest.mark.skipif(
    not Path(sys.executable).with_name("uacall").exists(), reason="asyncua's command-line tools"
)
def test_a_separate_client_process_browses_and_switches_a_circuit() -> None:
    async def body() -> None:
        # ``uals`` / ``uacall`` run in their own processes and know nothing of our profiles.
        city = SimulatedCity(build_inventory("tiny"), clock_start="21:00")  # night: lit
        endpoints = await city.start()
        try:
            url = endpoints["opcua"][0]["endpoint"]
            async with Client(url, timeout=5) as probe:
                idx = await probe.get_namespace_index(endpoints["opcua"][0]["namespace"])
            rc, out = await _cli("uals", "-u", url, "-n", f"ns={idx};s=LC-0001", "-l")
            assert rc == 0, out
            for name in ("VoltageL1", "EnergyConsumed", "DoorOpen", "Circuit6", "SwitchCircuit"):
                assert f"ns={idx};s=LC-0001.{name}" in out, out
            rc, out = await _cli("uals", "-u", url, "-n", f"ns={idx};s=LC-0001.Circuit2", "-l")
            assert rc == 0 and "True" in out and f"ns={idx};s=LC-0001.Circuit2.On" in out, out
            assert city.state("LC-0001")["circuit2_on"] is True
            method = f"{idx}:SwitchCircuit"
            node = f"ns={idx};s=LC-0001"
            rc, out = await _cli("uacall", "-u", url, "-n", node, "-m", method, "2,false")
            assert rc == 0 and "False" in out, out
            assert city.state("LC-0001")["circuit2_on"] is False
            assert city.state("LC-0001")["circuit2_current"] == 0
            rc, out = await _cli("uacall", "-u", url, "-n", node, "-m", method, "9,true")
            assert rc != 0 and "BadInvalidArgument" in out, out
            assert city.state("LC-0001")["circuit1_on"] is True  # nothing else moved
        finally:
            await city.stop()

    run(body(), timeout_s=120)
