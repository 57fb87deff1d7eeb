"""Protocol name -> driver class; the one place a driver is chosen (no discovery)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from contracts.commands import CommandAction
from contracts.config import BrokerConfig, DeviceConfig
from drivers.base import BadConfig, Driver, switch_params
from drivers.listener import ListenerPool
from hardware.profiles import load_profile

__all__ = ["create_driver", "protocols", "check_command"]

_Pool = ListenerPool | None


def _opcua(device: DeviceConfig, broker: BrokerConfig | None, _p: _Pool) -> Driver:
    from drivers.opcua import OpcUaDriver

    return OpcUaDriver(device)


def _modbus(device: DeviceConfig, broker: BrokerConfig | None, _p: _Pool) -> Driver:
    from drivers.modbus import ModbusDriver

    return ModbusDriver(device)


def _mqtt_tracker(device: DeviceConfig, broker: BrokerConfig | None, _p: _Pool) -> Driver:
    from drivers.mqtt_tracker import MqttTrackerDriver

    if broker is None:
        raise BadConfig(f"{device.id}: protocol mqtt_tracker needs the broker config")
    return MqttTrackerDriver(device, broker)


def _hj212(device: DeviceConfig, broker: BrokerConfig | None, pool: _Pool) -> Driver:
    from drivers.hj212 import Hj212Driver

    return Hj212Driver(device, pool)


def _jt808(device: DeviceConfig, broker: BrokerConfig | None, pool: _Pool) -> Driver:
    from drivers.jt808 import Jt808Driver

    return Jt808Driver(device, pool)


# Imports stay lazy so an agent without OPC-UA devices never loads asyncua.
_FACTORIES: dict[str, Callable[[DeviceConfig, BrokerConfig | None, _Pool], Driver]] = {
    "opcua": _opcua,
    "modbus": _modbus,
    "mqtt_tracker": _mqtt_tracker,
    "hj212": _hj212,
    "jt808": _jt808,
}


def protocols() -> list[str]:
    """Names of the protocols a driver exists for."""
    return sorted(_FACTORIES)


def create_driver(
    device: DeviceConfig,
    *,
    broker: BrokerConfig | None = None,
    listeners: ListenerPool | None = None,
) -> Driver:
    """A new, unconnected driver for the device; BadConfig for an unknown protocol/profile.

    Pushing devices (HJ 212, JT/T 808) attach to a listener of ``listeners`` (the agent's
    pool; the process-wide default pool when None).
    """
    factory = _FACTORIES.get(device.protocol)
    if factory is None:
        raise BadConfig(
            f"{device.id}: no driver for protocol {device.protocol!r}; known: {protocols()}"
        )
    return factory(device, broker, listeners)


def check_command(
    device: DeviceConfig, action: CommandAction, params: dict[str, Any]
) -> dict[str, float]:
    """Validate a command against the device's profile; the read-back it must produce.

    ValueError names what is wrong (unsupported action, bad or missing params).
    """
    try:
        profile = load_profile(device.profile)
    except KeyError as exc:
        raise ValueError(exc.args[0]) from None
    if action == CommandAction.SWITCH_CIRCUIT:
        if profile.circuits == 0 or (
            profile.protocol == "opcua" and action.value not in profile.methods
        ):
            raise ValueError(f"{device.id} ({profile.name}) has no switchable circuits")
        circuit, on = switch_params(params, profile.circuits)
        return {f"circuit{circuit}_on": 1.0 if on else 0.0}
    raise ValueError(f"action {action} is not supported by {device.id}")
