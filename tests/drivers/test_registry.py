"""Driver registry and command validation against profiles."""

from __future__ import annotations

import pytest

from contracts.commands import CommandAction
from contracts.config import DeviceConfig
from drivers import BadConfig, Driver, create_driver, protocols
from drivers.registry import check_command


def _dev(**kw):
    base = dict(
        id="LC-0001",
        kind="lighting_cabinet",
        protocol="opcua",
        profile="opcua_lighting_cabinet",
        endpoint="opc.tcp://127.0.0.1:4840",
    )
    return DeviceConfig(**{**base, **kw})


def test_every_protocol_builds_a_driver():
    from contracts.config import BrokerConfig
    from drivers.listener import ListenerPool

    assert protocols() == ["hj212", "jt808", "modbus", "mqtt_tracker", "opcua"]
    devs = [
        _dev(),
        _dev(
            id="LC-0101",
            protocol="modbus",
            profile="modbus_lighting_controller",
            endpoint="modbus://127.0.0.1:5020",
            unit_id=1,
        ),
        _dev(
            id="TRK-1",
            kind="vehicle",
            protocol="mqtt_tracker",
            profile="mqtt_json_tracker",
            endpoint="trackers/TRK-1/gps",
        ),
    ]
    devs += [
        _dev(
            id="DM-H1",
            kind="dust_monitor",
            protocol="hj212",
            profile="hj212_dust_monitor",
            endpoint="tcp://127.0.0.1:9212",
            address={"mn": "MN-1"},
        ),
        _dev(
            id="TRK-J1",
            kind="vehicle",
            protocol="jt808",
            profile="jt808_tracker",
            endpoint="tcp://127.0.0.1:9808",
            address={"phone": "13800138000"},
        ),
    ]
    pool = ListenerPool()
    for d in devs:
        drv = create_driver(d, broker=BrokerConfig(), listeners=pool)
        assert isinstance(drv, Driver)
    assert sorted(pool.stats()) == ["hj212://127.0.0.1:9212", "jt808://127.0.0.1:9808"]


@pytest.mark.parametrize(
    "kw,reason",
    [
        (dict(endpoint="http://x:1"), "opc.tcp"),
        (dict(profile="modbus_dust_monitor"), "not opcua"),
        (dict(profile="nope"), "unknown profile"),
        (
            dict(protocol="modbus", profile="modbus_dust_monitor", endpoint="opc.tcp://x:1"),
            "modbus://",
        ),
        (
            dict(
                protocol="modbus",
                profile="modbus_dust_monitor",
                endpoint="modbus://x:1",
                address={"max_gap": -1},
            ),
            "max_gap",
        ),
        (
            dict(
                kind="vehicle",
                protocol="mqtt_tracker",
                profile="mqtt_json_tracker",
                endpoint="trackers/#",
            ),
            "plain MQTT topic",
        ),
    ],
)
def test_bad_config(kw, reason):
    from contracts.config import BrokerConfig

    with pytest.raises(BadConfig, match=reason):
        create_driver(_dev(**kw), broker=BrokerConfig())


def test_tracker_needs_a_broker():
    with pytest.raises(BadConfig, match="broker"):
        create_driver(
            _dev(
                kind="vehicle", protocol="mqtt_tracker", profile="mqtt_json_tracker", endpoint="t/x"
            )
        )


def test_check_command():
    assert check_command(_dev(), CommandAction.SWITCH_CIRCUIT, {"circuit": 2, "on": True}) == {
        "circuit2_on": 1.0
    }
    with pytest.raises(ValueError, match="outside 1..6"):
        check_command(_dev(), CommandAction.SWITCH_CIRCUIT, {"circuit": 7, "on": True})
    with pytest.raises(ValueError, match="'on'"):
        check_command(_dev(), CommandAction.SWITCH_CIRCUIT, {"circuit": 1, "on": "yes"})
    with pytest.raises(ValueError, match="'circuit'"):
        check_command(_dev(), CommandAction.SWITCH_CIRCUIT, {"on": True})
    dust = _dev(
        id="DM-1",
        kind="dust_monitor",
        protocol="modbus",
        profile="modbus_dust_monitor",
        endpoint="modbus://x:1",
    )
    with pytest.raises(ValueError, match="no switchable circuits"):
        check_command(dust, CommandAction.SWITCH_CIRCUIT, {"circuit": 1, "on": True})
