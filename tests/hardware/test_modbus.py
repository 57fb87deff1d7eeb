"""Modbus TCP devices read by a plain pymodbus client and by Debian's mbpoll."""

from __future__ import annotations

import asyncio
import re
import shutil

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu import ExceptionResponse

from hardware.inventory import build_inventory
from hardware.sim.city import SimulatedCity
from tests.hardware.conftest import run

_F32 = AsyncModbusTcpClient.DATATYPE.FLOAT32


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1])


def _entry(endpoints: dict, device_id: str) -> dict:
    return next(e for e in endpoints["modbus"] if e["device_id"] == device_id)


async def _city() -> tuple[SimulatedCity, dict]:
    city = SimulatedCity(build_inventory("tiny"), clock_start="12:00")  # daytime: lamps off
    return city, await city.start()


def test_dust_registers_in_each_profiles_word_order_and_unit() -> None:
    async def body() -> None:
        city, endpoints = await _city()
        try:
            for dev, word_order, scale in (("DM-0001", "big", 1.0), ("DM-0002", "little", 1000.0)):
                e = _entry(endpoints, dev)
                assert e["profile"] == build_inventory("tiny").get(dev).profile
                client = AsyncModbusTcpClient("127.0.0.1", port=_port(e["endpoint"]), timeout=2)
                await client.connect()
                try:
                    rr = await client.read_input_registers(0, count=16, device_id=e["unit_id"])
                    assert not rr.isError()
                    truth = city.state(dev)
                    vals = [
                        client.convert_from_registers(
                            rr.registers[i : i + 2], _F32, word_order=word_order
                        )
                        for i in range(0, 16, 2)
                    ]
                    assert vals[1] * scale == pytest.approx(truth["pm10"], rel=1e-5)
                    assert vals[0] * scale == pytest.approx(truth["pm25"], rel=1e-5)
                    assert vals[2] * scale == pytest.approx(truth["tsp"], rel=1e-5)
                    assert vals[3] == pytest.approx(truth["noise"], rel=1e-5)
                    assert vals[0] < vals[1] < vals[2]
                    # The wrong word order gives nonsense: the test can tell the two apart.
                    wrong = client.convert_from_registers(
                        rr.registers[2:4],
                        _F32,
                        word_order="little" if word_order == "big" else "big",
                    )
                    assert wrong * scale != pytest.approx(truth["pm10"], rel=1e-2)
                    bad = await client.read_input_registers(16, count=2, device_id=e["unit_id"])
                    assert isinstance(bad, ExceptionResponse) and bad.exception_code == 2
                    bad = await client.read_holding_registers(0, count=2, device_id=e["unit_id"])
                    assert bad.isError() and bad.exception_code == 2
                finally:
                    client.close()
        finally:
            await city.stop()

    run(body())


def test_coil_write_switches_the_circuit_and_the_readback() -> None:
    async def body() -> None:
        city, endpoints = await _city()
        e = _entry(endpoints, "LC-0003")
        client = AsyncModbusTcpClient("127.0.0.1", port=_port(e["endpoint"]), timeout=2)
        await client.connect()
        try:
            unit = e["unit_id"]
            assert city.state("LC-0003")["circuit3_on"] is False
            wr = await client.write_coil(2, True, device_id=unit)
            assert not wr.isError()
            assert city.state("LC-0003")["circuit3_on"] is True
            rr = await client.read_coils(0, count=4, device_id=unit)
            assert rr.bits[:4] == [False, False, True, False]
            ir = await client.read_input_registers(104, count=2, device_id=unit)
            amps = client.convert_from_registers(ir.registers, _F32)
            assert (
                amps == pytest.approx(city.state("LC-0003")["circuit3_current"], rel=1e-5)
                and amps > 5
            )
            bad = await client.write_coil(4, True, device_id=unit)  # the controller has 4 circuits
            assert bad.isError() and bad.exception_code == 2
            # pymodbus hands reads of bits to the device by whole 16-bit words, so the first
            # word reads as padding; beyond it an illegal address is refused.
            bad = await client.read_coils(16, count=1, device_id=unit)
            assert bad.isError() and bad.exception_code == 2
        finally:
            client.close()
            await city.stop()

    run(body())


def test_offline_device_closes_its_port_and_comes_back() -> None:
    async def body() -> None:
        city, endpoints = await _city()
        e = _entry(endpoints, "DM-0002")
        try:
            city.inject({"kind": "device_offline", "device": "DM-0002", "duration_s": 1.0})
            for _ in range(50):
                try:
                    _r, w = await asyncio.open_connection("127.0.0.1", _port(e["endpoint"]))
                    w.close()
                except OSError:
                    break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("port still open while offline")
            client = AsyncModbusTcpClient(
                "127.0.0.1", port=_port(e["endpoint"]), timeout=1, retries=0
            )
            for _ in range(60):
                if await client.connect():
                    break
                await asyncio.sleep(0.1)
            rr = await client.read_input_registers(0, count=2, device_id=e["unit_id"])
            assert not rr.isError()
            client.close()
        finally:
            await city.stop()

    run(body())


@pytest.mark.skipif(
    shutil.which("mbpoll") is None, reason="mbpoll not on PATH (apt install mbpoll)"
)
def test_mbpoll_reads_the_dust_monitors() -> None:
    async def body() -> None:
        city, endpoints = await _city()
        try:
            for dev, flags, scale in (("DM-0001", ["-B"], 1.0), ("DM-0002", [], 1000.0)):
                e = _entry(endpoints, dev)
                # mbpoll's default float word order is CDAB; -B asks for ABCD.
                proc = await asyncio.create_subprocess_exec(
                    "mbpoll",
                    "-m",
                    "tcp",
                    "-p",
                    str(_port(e["endpoint"])),
                    "-a",
                    str(e["unit_id"]),
                    "-0",
                    "-t",
                    "3:float",
                    "-r",
                    "0",
                    "-c",
                    "4",
                    "-1",
                    "-o",
                    "2",
                    *flags,
                    "127.0.0.1",
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.STDOUT,
                )
                out, _ = await proc.communicate()
                text = out.decode()
                assert proc.returncode == 0, text
                vals = {int(a): float(v) for a, v in re.findall(r"\[(\d+)\]:\s+(-?[\d.]+)", text)}
                truth = city.state(dev)
                assert vals[2] * scale == pytest.approx(truth["pm10"], rel=1e-3), text
                assert vals[0] * scale == pytest.approx(truth["pm25"], rel=1e-3), text
                assert vals[6] == pytest.approx(truth["noise"], rel=1e-3), text
        finally:
            await city.stop()

    run(body())


def test_a_gateway_port_serves_several_units_and_an_offline_one_answers_0b() -> None:
    async def body() -> None:
        city = SimulatedCity(build_inventory("tiny"), clock_start="12:00", units_per_port=8)
        endpoints = await city.start()
        try:
            entries = endpoints["modbus"]
            assert len({e["endpoint"] for e in entries}) == 1  # one port, three units
            assert sorted(e["unit_id"] for e in entries) == [1, 2, 3]
            port = _port(entries[0]["endpoint"])
            client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0)
            await client.connect()
            try:
                for dev in ("DM-0001", "DM-0002"):
                    rr = await client.read_input_registers(
                        0, count=4, device_id=_entry(endpoints, dev)["unit_id"]
                    )
                    assert not rr.isError()
                    order = "big" if dev == "DM-0001" else "little"
                    pm10 = client.convert_from_registers(rr.registers[2:4], _F32, word_order=order)
                    scale = 1.0 if dev == "DM-0001" else 1000.0
                    assert pm10 * scale == pytest.approx(city.state(dev)["pm10"], rel=1e-5)
                city.inject({"kind": "device_offline", "device": "DM-0002", "duration_s": 600})
                unit = _entry(endpoints, "DM-0002")["unit_id"]
                bad = await client.read_input_registers(0, count=2, device_id=unit)
                assert isinstance(bad, ExceptionResponse) and bad.exception_code == 0x0B
                ok = await client.read_input_registers(
                    0, count=2, device_id=_entry(endpoints, "DM-0001")["unit_id"]
                )
                assert not ok.isError()  # the neighbour on the same bus still answers
            finally:
                client.close()
        finally:
            await city.stop()

    run(body())
