"""One shared Modbus TCP connection per gateway, one transaction in flight, and the
mapping of Modbus exception responses to driver errors."""

from __future__ import annotations

import asyncio
from typing import Any

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from drivers.base import BadConfig, DeviceTimeout, DeviceUnavailable, WriteRejected
from drivers.modbus.config import ModbusSettings

__all__ = ["EXCEPTION_CODES", "IllegalAddress", "Bus", "acquire", "release", "check"]

#: Modbus exception codes (spec §7) and what they mean for the operator.
EXCEPTION_CODES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge (still processing)",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}


class IllegalAddress(BadConfig):
    """Exception 02 on a read: some address of the request does not exist on the device."""


class Bus:
    """One TCP connection to a gateway, shared by the unit ids behind it."""

    def __init__(self, host: str, port: int, timeout_s: float):
        self.key = (host, port)
        self.client = AsyncModbusTcpClient(
            host, port=port, timeout=timeout_s, retries=0, reconnect_delay=0
        )
        self.lock = asyncio.Lock()
        self.users = 0
        self.requests = 0

    async def ensure_connected(self) -> None:
        if self.client.connected:
            return
        try:
            ok = await self.client.connect()
        except (OSError, ModbusException) as exc:
            raise DeviceUnavailable(f"modbus {self.key[0]}:{self.key[1]}: {exc}") from None
        if not ok:
            raise DeviceUnavailable(
                f"modbus {self.key[0]}:{self.key[1]}: connection refused or timed out"
            )

    async def call(self, fn: str, timeout_s: float, *args: Any, **kwargs: Any) -> Any:
        """One transaction, alone on the wire; library errors become driver errors."""
        async with self.lock:
            await self.ensure_connected()
            self.requests += 1
            try:
                return await asyncio.wait_for(getattr(self.client, fn)(*args, **kwargs), timeout_s)
            except TimeoutError:
                # A late answer would be taken for the next request's: start afresh.
                self.client.close()
                raise DeviceTimeout(
                    f"modbus {self.key[0]}:{self.key[1]}: no answer within {timeout_s} s"
                ) from None
            except (OSError, ModbusException) as exc:
                self.client.close()
                raise DeviceUnavailable(f"modbus {self.key[0]}:{self.key[1]}: {exc}") from None


# Shared per event loop and endpoint; entries go away when their last driver closes.
_BUSES: dict[tuple[int, str, int], Bus] = {}


def acquire(s: ModbusSettings) -> Bus:
    key = (id(asyncio.get_running_loop()), s.host, s.port)
    bus = _BUSES.get(key)
    if bus is None:
        bus = _BUSES[key] = Bus(s.host, s.port, s.timeout_s)
    bus.users += 1
    return bus


def release(s: ModbusSettings, bus: Bus) -> None:
    bus.users -= 1
    if bus.users <= 0:
        bus.client.close()
        for k, v in list(_BUSES.items()):
            if v is bus:
                del _BUSES[k]


def check(resp: Any, what: str, writing: bool = False) -> Any:
    """Raise the driver error for a Modbus exception response."""
    if resp is None or not resp.isError():
        return resp
    code = int(getattr(resp, "exception_code", 0))
    text = f"{what}: exception {code} ({EXCEPTION_CODES.get(code, 'unknown')})"
    if code == 2 and not writing:
        raise IllegalAddress(text)
    if code in (1, 2, 3):
        raise (WriteRejected if writing else BadConfig)(text)
    if code == 11:
        raise DeviceTimeout(text)
    raise DeviceUnavailable(text)
