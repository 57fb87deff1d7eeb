"""The numba engine: snapshot and restore, growth, bad input, the shipped rule set."""

from __future__ import annotations

import pytest

from rules.defaults import load_default_rules
from rules.engine import RulesEngine, SnapshotError
from tests.rules._helpers import DM, LC, S, frame, pm10, theft


def test_restore_keeps_a_pending_condition() -> None:
    rules = [pm10(15 * 60)]
    eng = RulesEngine(rules)
    assert (
        eng.process(frame([("D1", DM, 0, "pm10", 250), ("D1", DM, 14 * 60 * S, "pm10", 240)])) == []
    )
    assert eng.stats()["pending"] == 1
    data = eng.snapshot()

    fresh = RulesEngine(rules)
    fresh.restore(data)
    assert fresh.stats()["pending"] == 1
    got = fresh.process(frame([("D1", DM, 15 * 60 * S, "pm10", 230)]))
    assert [(t.kind, t.ts) for t in got] == [("raise", 15 * 60 * S)]

    # without the snapshot the condition would start over: no alarm yet
    assert RulesEngine(rules).process(frame([("D1", DM, 15 * 60 * S, "pm10", 230)])) == []


def test_restore_with_changed_rules_keeps_matching_subjects() -> None:
    eng = RulesEngine([pm10(0), theft(0)])
    eng.process(
        frame(
            [
                ("D1", DM, 0, "pm10", 250),
                ("L1", LC, 0, "circuit1_on", 1),
                ("L1", LC, 0, "circuit1_current", 0),
            ]
        )
    )
    assert eng.stats()["active"] == 2
    other = RulesEngine([theft(0)])  # pm10 rule removed
    other.restore(eng.snapshot())
    assert other.stats()["active"] == 1
    got = other.process(frame([("L1", LC, S, "circuit1_current", 3.0)]))
    assert [(t.rule_id, t.kind) for t in got] == [("theft", "clear")]


def test_late_rows_stay_late_after_restore() -> None:
    eng = RulesEngine([pm10(0)])
    eng.process(frame([("D1", DM, 10 * S, "pm10", 250)]))
    again = RulesEngine([pm10(0)])
    again.restore(eng.snapshot())
    assert again.process(frame([("D1", DM, 5 * S, "pm10", 0)])) == []
    assert again.stats()["late_rows"] == 1


def test_bad_snapshot_is_refused() -> None:
    with pytest.raises(SnapshotError):
        RulesEngine([pm10()]).restore(b"not a snapshot")


def test_many_transitions_in_one_batch_grow_the_output() -> None:
    eng = RulesEngine([pm10(0)], out_capacity=16)
    rows = [(f"D{i}", DM, S, "pm10", 300.0) for i in range(1000)]
    got = eng.process(frame(rows))
    assert len(got) == 1000 and {t.device_id for t in got} == {f"D{i}" for i in range(1000)}


def test_default_rules_load_and_cover_every_domain() -> None:
    rules = load_default_rules()
    ids = {r.id for r in rules}
    assert {
        "lighting.door_open",
        "lighting.cable_theft",
        "dust.pm10_stop_work",
        "vehicle.overspeed",
    } <= ids
    assert {r.domain for r in rules} == {"lighting", "dust", "vehicle"}
    theft_rule = next(r for r in rules if r.id == "lighting.cable_theft")
    assert theft_rule.guards and theft_rule.severity == "critical" and theft_rule.message
    eng = RulesEngine(rules)
    got = eng.process(frame([("V1", "vehicle", t * S, "speed", 70.0) for t in range(8)]))
    assert [(t.rule_id, t.kind, t.ts) for t in got] == [("vehicle.overspeed", "raise", 6 * S)]


def test_expected_current_from_the_asset_register() -> None:
    from typing import get_args

    from contracts.config import RuleConfig
    from rules.compile import EXPECTED, expected_current

    attrs = {"lamps_per_circuit": "25,29", "lamp_watts": "250"}
    assert expected_current(attrs, "2") == 29 * 250 / (220 * 0.95)
    assert expected_current({**attrs, "nominal_voltage": "230"}, "1") == 25 * 250 / (230 * 0.95)
    for bad_attrs, star in ((attrs, "3"), (attrs, "x"), ({"lamp_watts": "250"}, "1"),
                            ({**attrs, "lamp_watts": "-1"}, "1"),
                            ({**attrs, "lamps_per_circuit": "25;29"}, "1")):  # fmt: skip
        assert expected_current(bad_attrs, star) is None, (bad_attrs, star)
    # every name the config accepts has a function
    names = get_args(get_args(RuleConfig.model_fields["relative_to"].annotation)[0])
    assert set(names) == set(EXPECTED)


def test_cabinets_carry_their_asset_register_in_the_deployment() -> None:
    from contracts.config import DeviceConfig
    from hardware.inventory import build_inventory
    from hardware.sim.deployment import agent_devices
    from rules.compile import expected_current

    inv = build_inventory("tiny", 1)
    cab = inv.cabinets[0]
    eps = {"opcua": [{"endpoint": "opc.tcp://h:1", "namespace": "ns", "devices": [cab.id]}]}
    (dev,) = [DeviceConfig.model_validate(d) for d in agent_devices(inv, eps)]
    lamps = cab.lamps_per_circuit[0]
    assert expected_current(dev.attrs, "1") == lamps * cab.lamp_watts / (220 * 0.95)
