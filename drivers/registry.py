"""Protocol name -> driver class; the one place a driver is chosen (no discovery)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from contracts.commands import CommandAction
from contracts.config import BrokerConfig, DeviceConfig
from drivers.base import BadConfig, Driver, switch_params
from hardware.profiles import load_profile

__all__ = ["create_driver", "protocols", "check_command"]


def _opcua(device: DeviceConfig, broker: BrokerConfig | None) -> Driver:
    from drivers.opcua import OpcUaDriver

    return OpcUaDriver(device)


def _modbus(device: DeviceConfig, broker: BrokerConfig | None) -> Driver:
    from drivers.modbus import ModbusDriver

    return ModbusDriver(device)


def _mqtt_tracker(device: DeviceConfig, broker: BrokerConfig | None) -> Driver:
    from drivers.mqtt_tracker import MqttTrackerDriver

    if broker is None:
        raise BadConfig(f"{device.id}: protocol mqtt_tracker needs the broker config")
    return MqttTrackerDriver(device, broker)


# Imports stay lazy so an agent without OPC-UA devices never loads asyncua.
_FACTORIES: dict[str, Callable[[DeviceConfig, BrokerConfig | None], Driver]] = {
    "opcua": _opcua,
    "modbus": _modbus,
    "mqtt_tracker": _mqtt_tracker,
}


def protocols() -> list[str]:
    """Names of the protocols a driver exists for."""
    return sorted(_FACTORIES)


def create_driver(device: DeviceConfig, *, broker: BrokerConfig | None = None) -> Driver:
    """A new, unconnected driver for the device; BadConfig for an unknown protocol/profile."""
    factory = _FACTORIES.get(device.protocol)
    if factory is None:
        raise BadConfig(
            f"{device.id}: no driver for protocol {device.protocol!r}; known: {protocols()}"
        )
    return factory(device, broker)


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
