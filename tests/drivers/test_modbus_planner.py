"""Modbus request planner: as few reads as the spec and the gap allow."""

from __future__ import annotations

import pytest

from contracts.config import DeviceConfig
from drivers.modbus.config import settings_for
from drivers.modbus.planner import plan
from hardware.profiles import load_profile, profile_names


def _spans(reqs):
    return [(r.table, r.address, r.count) for r in reqs]


@pytest.mark.parametrize(
    "points,max_gap,expected",
    [
        # adjacent float32s merge into one read
        ([("a", "input", "float32", 0), ("b", "input", "float32", 2)], 0, [("input", 0, 4)]),
        # a hole of 2 registers: merged with gap 2, split with gap 1
        ([("a", "input", "float32", 0), ("b", "input", "float32", 4)], 2, [("input", 0, 6)]),
        (
            [("a", "input", "float32", 0), ("b", "input", "float32", 4)],
            1,
            [("input", 0, 2), ("input", 4, 2)],
        ),
        # tables never mix; output ordered coil, discrete, holding, input
        (
            [
                ("v", "input", "uint16", 0),
                ("c", "coil", "bool", 0),
                ("h", "holding", "int16", 0),
                ("d", "discrete", "bool", 3),
            ],
            8,
            [("coil", 0, 1), ("discrete", 3, 1), ("holding", 0, 1), ("input", 0, 1)],
        ),
        # unsorted input, overlapping points share registers
        ([("b", "holding", "uint16", 5), ("a", "holding", "uint32", 4)], 0, [("holding", 4, 2)]),
        # 125-register limit splits a long run
        (
            [(f"p{i}", "input", "float32", 2 * i) for i in range(70)],
            0,
            [("input", 0, 124), ("input", 124, 16)],
        ),
        # 2000-bit limit for coils
        (
            [("a", "coil", "bool", 0), ("b", "coil", "bool", 1999), ("c", "coil", "bool", 2000)],
            5000,
            [("coil", 0, 2000), ("coil", 2000, 1)],
        ),
        ([], 8, []),
    ],
)
def test_plan(points, max_gap, expected):
    assert _spans(plan(points, max_gap=max_gap)) == expected


def test_every_point_lands_in_exactly_one_read():
    pts = [
        (f"p{i}", "input", "float32", a) for i, a in enumerate([0, 2, 10, 40, 42, 200, 300, 302])
    ]
    reqs = plan(pts, max_gap=8)
    keys = [p.key for r in reqs for p in r.points]
    assert sorted(keys) == sorted(p[0] for p in pts)
    for r in reqs:
        assert r.count <= 125
        for p in r.points:
            assert r.address <= p.address and p.address + p.width <= r.address + r.count


@pytest.mark.parametrize(
    "point,reason",
    [
        (("x", "register", "uint16", 0), "unknown table"),
        (("x", "input", "int8", 0), "unknown type"),
        (("x", "input", "uint16", -1), "outside"),
        (("x", "input", "uint32", 65535), "past address"),
        (("x", "coil", "float32", 0), "must be bool"),
    ],
)
def test_plan_rejects(point, reason):
    with pytest.raises(ValueError, match=reason):
        plan([point])


@pytest.mark.parametrize(
    "name", [n for n in profile_names() if load_profile(n).protocol == "modbus"]
)
def test_shipped_profiles_need_five_times_fewer_requests(name):
    """The issue's goal: >= 5x fewer requests than one per point, for every profile."""
    dev = DeviceConfig(
        id="X",
        kind=load_profile(name).kind,
        protocol="modbus",
        profile=name,
        endpoint="modbus://127.0.0.1:502",
        unit_id=1,
    )
    s = settings_for(dev)
    assert len(s.points) >= 5 * len(s.requests), _spans(s.requests)


def test_shipped_plans():
    dev = dict(
        id="X",
        kind="lighting_cabinet",
        protocol="modbus",
        endpoint="modbus://127.0.0.1:502",
        unit_id=1,
    )
    light = settings_for(DeviceConfig(profile="modbus_lighting_controller", **dev))
    dust = settings_for(DeviceConfig(profile="modbus_dust_monitor", **dev))
    # the controller answers its unused registers 20..99: one read spans both blocks
    assert _spans(light.requests) == [("coil", 0, 4), ("discrete", 0, 1), ("input", 0, 108)]
    assert _spans(dust.requests) == [("input", 0, 16)]
    # a device's own address.max_gap still wins over its profile's
    strict = settings_for(
        DeviceConfig(profile="modbus_lighting_controller", address={"max_gap": 0}, **dev)
    )
    assert _spans(strict.requests)[2:] == [("input", 0, 20), ("input", 100, 8)]
