"""Precision, recall and latency of the shipped rules on a scenario with ground truth.

The city's device models run in-process on a simulated clock (tests/rules/_cityrun.py):
45 minutes of the district inventory with the faults of data/sensor_faults.yaml, alarms
into an alarm book, scored from its alarms.db with ``rules.evaluate``. The same figures
from a live demo (real protocols, agents, MQTT and ingest):

    rongguan demo --size district --scenario tests/rules/data/sensor_faults.yaml --var-dir var/x
    rongguan evaluate --truth var/x/ground-truth.jsonl --alarms var/x/alarms.db
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hardware.sim.faults import RULE_FAMILY
from rules.evaluate import FAULT_RULES, OFFLINE, OFFLINE_RULES, latency_windows, main, score
from tests.rules._cityrun import run_city

SCENARIO = Path(__file__).with_name("data") / "sensor_faults.yaml"
BATCH_S = 10  # the in-process agents batch every 10 s
INTERVAL_S = {"lighting": 5, "dust": 10}

#: families the shipped rules are meant to catch with these faults
COVERED = [
    "lighting.door_open", "lighting.cable_theft", "lighting.voltage_sag",
    "lighting.supply_loss", "lighting.leakage", "lighting.cabinet_offline",
    "dust.pm10_stop_work", "dust.pm25_over_pm10", "dust.sensor_flatline",
    "dust.monitor_offline",
]  # fmt: skip
#: known misses of the shipped rule set, reported rather than asserted:
#: - lamp_failure: the rule's set level is an absolute 2.0 A, a circuit of 20-30 lamps draws
#:   ~20 A, so three dead lamps (the fault) never get near it; it needs the circuit's
#:   expected current (a share of lamps out);
#: - sensor_spike: single samples x8 of a 55-125 µg/m³ baseline peak at 440-1000, under the
#:   rule's 1000 set level (dust.pm10_rate does see every spike).
KNOWN_GAPS = ["lighting.lamp_failure", "dust.sensor_spike"]


def test_fault_rules_follow_the_simulators_families() -> None:
    assert FAULT_RULES == RULE_FAMILY
    assert FAULT_RULES["device_offline"] == OFFLINE and len(OFFLINE_RULES) == 3


@pytest.fixture(scope="module")
def city(tmp_path_factory):
    out = tmp_path_factory.mktemp("city")
    return run_city(out, SCENARIO, duration_s=2700, every_s={"lighting_cabinet": 5})


def test_the_standard_sensor_scenario_scores(city, capsys) -> None:
    import json
    import sqlite3

    db = sqlite3.connect(city["alarms_db"])
    alarms = [json.loads(d) for (d,) in db.execute("SELECT doc FROM alarms")]
    db.close()
    duration = latency_windows(city["rules"], 0)
    windows = {k: v + 2 * BATCH_S for k, v in duration.items()}
    res = score(alarms, city["truth"], max_latency_s=120, latency_s=windows)
    for rule in COVERED:
        r = res[rule]
        assert r["faults"] >= 1, rule
        assert r["precision"] >= 0.95 and r["recall"] >= 0.98, (rule, r)
        # within the rule's duration plus one reporting interval (staleness is checked by
        # the tick, here once per batch)
        bound = duration[rule] + INTERVAL_S[rule.split(".")[0]]
        bound += BATCH_S if rule in OFFLINE_RULES else 0
        assert r["latency_max_s"] <= bound, (rule, r)
    for rule in KNOWN_GAPS:
        assert res[rule]["false_positives"] == 0, (rule, res[rule])
    # the command prints the same table and a JSON last line
    assert main(["--truth", str(city["truth"]), "--alarms", str(city["alarms_db"]),
                 "--interval-s", "20"]) == 0  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    printed = json.loads(out[-1])
    assert all(printed[r]["recall"] == 1.0 for r in COVERED)
    assert out[0].split()[:3] == ["rule", "faults", "found"]
