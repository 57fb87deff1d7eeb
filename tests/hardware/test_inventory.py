"""The inventory is deterministic, Chengdu-shaped and valid agent config."""

from __future__ import annotations

import re

import pytest

from contracts.config import DeviceConfig
from hardware.inventory import build_inventory
from hardware.profiles import load_profile
from hardware.sim.deployment import agent_devices


def test_same_seed_same_city_other_seed_other_city() -> None:
    assert build_inventory("district", 7) == build_inventory("district", 7)
    assert build_inventory("district", 7) != build_inventory("district", 8)


def test_tiny_has_what_the_tests_need() -> None:
    inv = build_inventory("tiny")
    assert [c.profile for c in inv.cabinets] == [
        "opcua_lighting_cabinet",
        "opcua_lighting_cabinet",
        "modbus_lighting_controller",
    ]
    assert [c.id for c in inv.cabinets] == ["LC-0001", "LC-0002", "LC-0003"]
    assert sorted(d.profile for d in inv.dust_monitors) == [
        "modbus_dust_monitor",
        "modbus_dust_monitor_cdab_mg",
    ]
    assert [v.id for v in inv.vehicles] == ["TRK-0001", "TRK-0002", "TRK-0003"]
    assert {v.fleet for v in inv.vehicles} == {"construction_waste", "sanitation", "kitchen_waste"}


def test_district_sizes_and_identities() -> None:
    inv = build_inventory("district")
    opc = [c for c in inv.cabinets if c.profile == "opcua_lighting_cabinet"]
    assert len(opc) == 10 and len(inv.cabinets) == 12
    assert len(inv.dust_monitors) == 6 + 4 and len(inv.vehicles) == 12 + 6
    ids = inv.device_ids()
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"(LC|DM|TRK)-\d{4}", i) for i in ids)
    hj = [d for d in inv.dust_monitors if d.profile == "hj212_dust_monitor"]
    assert [d.id for d in hj] == ["DM-1001", "DM-1002", "DM-1003", "DM-1004"]
    assert all(re.fullmatch(r"[0-9A-Z]{24}", d.mn) for d in hj)
    jt = [v for v in inv.vehicles if v.profile == "jt808_tracker"]
    assert [v.id for v in jt][0] == "TRK-1001" and len(jt) == 6
    assert all(re.fullmatch(r"\d{12}", v.phone) for v in jt)
    assert {v.jt808_version for v in jt} == {None, 1}  # both header variants present
    # The devices that were there before are untouched by the additions.
    assert build_inventory("tiny", push_devices=True).cabinets == build_inventory("tiny").cabinets
    for cab in inv.cabinets:
        assert 30.4 < cab.lat < 30.9 and 103.8 < cab.lon < 104.3
        assert cab.road_class in ("main", "secondary") and cab.district.endswith("区")
        assert len(cab.lamps_per_circuit) == cab.circuits == load_profile(cab.profile).circuits
        assert cab.name.startswith(cab.road)
    for mon in inv.dust_monitors:
        assert re.fullmatch(r"\d{18}", mon.permit_no) and mon.site_name.endswith("项目")
    plates = [v.plate for v in inv.vehicles]
    assert len(set(plates)) == len(plates)
    assert all(re.fullmatch(r"川A·[0-9A-HJ-NP-Z]{5}", p) for p in plates)


def test_unknown_size_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown inventory size 'huge'"):
        build_inventory("huge")


def test_agent_devices_are_valid_device_configs() -> None:
    inv = build_inventory("tiny")
    endpoints = {
        "opcua": [
            {
                "endpoint": "opc.tcp://127.0.0.1:4840",
                "namespace": "urn:rongguan:sim:lighting",
                "devices": ["LC-0001", "LC-0002"],
            }
        ],
        "modbus": [
            {
                "endpoint": "modbus://127.0.0.1:5020",
                "unit_id": 1,
                "device_id": "LC-0003",
                "profile": "modbus_lighting_controller",
            },
            {
                "endpoint": "modbus://127.0.0.1:5021",
                "unit_id": 2,
                "device_id": "DM-0001",
                "profile": inv.get("DM-0001").profile,
            },
        ],
        "mqtt_trackers": [{"device_id": "TRK-0001", "topic": "trackers/TRK-0001/gps"}],
    }
    devices = [DeviceConfig.model_validate(d) for d in agent_devices(inv, endpoints)]
    by_id = {d.id: d for d in devices}
    assert by_id["LC-0001"].protocol == "opcua" and by_id["LC-0001"].address == {
        "namespace": "urn:rongguan:sim:lighting"
    }
    assert by_id["LC-0001"].attrs["road_class"] in ("main", "secondary")
    assert by_id["LC-0003"].kind == "lighting_cabinet" and by_id["LC-0003"].unit_id == 1
    assert (
        by_id["DM-0001"].kind == "dust_monitor"
        and by_id["DM-0001"].endpoint == "modbus://127.0.0.1:5021"
    )
    assert by_id["TRK-0001"].endpoint == "trackers/TRK-0001/gps"
    assert by_id["TRK-0001"].attrs["plate"].startswith("川A·")
