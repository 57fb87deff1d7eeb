"""Simulated Modbus dust monitors for the Modbus tests: state, device entries, a gateway."""

from __future__ import annotations

from typing import Any

from contracts.config import DeviceConfig
from hardware.profiles import load_profile
from hardware.sim.modbus_server import ModbusDeviceServer, unit
from tests.drivers._modbus_proxy import ModbusProxy

__all__ = ["PROFILE", "dust_state", "dust_device", "dust_gateway"]

PROFILE = "modbus_dust_monitor"


def dust_state(value: float) -> dict[str, float]:
    """Every point of the profile at one value."""
    return {p.key: value for p in load_profile(PROFILE).points}


def dust_device(endpoint: str, unit_id: int, **kw: Any) -> DeviceConfig:
    """Monitor ``DM-<unit_id>`` at ``endpoint`` (extra DeviceConfig fields in ``kw``)."""
    return DeviceConfig(
        id=f"DM-{unit_id}",
        kind="dust_monitor",
        protocol="modbus",
        profile=PROFILE,
        endpoint=endpoint,
        unit_id=unit_id,
        **kw,
    )


async def dust_gateway(
    units: int, state: dict[str, float]
) -> tuple[ModbusDeviceServer, ModbusProxy]:
    """A gateway serving units 1..``units`` behind a started wire-watching proxy."""
    srv = ModbusDeviceServer(
        [unit(f"DM-{i}", i, PROFILE, lambda: state) for i in range(1, units + 1)]
    )
    await srv.start()
    proxy = ModbusProxy((srv.host, srv.port))
    await proxy.start()
    return srv, proxy
