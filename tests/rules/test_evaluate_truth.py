"""Scoring details: offline faults per domain, siblings, consequential raises, reopen times."""

from __future__ import annotations

import json

from rules.evaluate import latency_windows, score
from tests.rules._helpers import pm10

S = 1_000_000_000


def _truth(tmp_path, faults) -> str:
    p = tmp_path / "gt.jsonl"
    p.write_text("\n".join(json.dumps(f) for f in faults))
    return str(p)


def _raise(rule: str, dev: str, t: float, **extra) -> dict:
    return {"rule_id": rule, "device_id": dev, "raised_ns": int(t * S), "extra": extra}


def test_device_offline_is_detected_by_the_offline_rule_of_its_domain(tmp_path) -> None:
    gt = _truth(tmp_path, [
        {"ts_ns": 0, "kind": "device_offline", "device": "LC-1", "end_ns": 400 * S},
        {"ts_ns": 0, "kind": "device_offline", "device": "DM-1", "end_ns": 400 * S},
        {"ts_ns": 0, "kind": "device_offline", "device": "DM-2", "end_ns": 10 * S},
    ])  # fmt: skip
    alarms = [
        _raise("lighting.cabinet_offline", "LC-1", 300),
        _raise("dust.monitor_offline", "DM-1", 305),
        _raise("dust.monitor_offline", "DM-3", 305),  # no fault there
    ]
    res = score(alarms, gt, max_latency_s=120, latency_s={"dust.monitor_offline": 320,
                                                         "lighting.cabinet_offline": 320})  # fmt: skip
    assert res["lighting.cabinet_offline"]["recall"] == 1.0
    d = res["dust.monitor_offline"]
    assert (d["detected"], d["false_positives"], d["precision"]) == (1, 1, 0.5)
    # DM-2's 10 s outage, undetected, is charged to the catch-all family
    assert res["device.offline"]["faults"] == 1 and res["device.offline"]["recall"] == 0.0


def test_siblings_and_consequential_raises(tmp_path) -> None:
    gt = _truth(tmp_path, [
        {"ts_ns": 0, "kind": "supply_loss", "device": "LC-1", "end_ns": 60 * S},
    ])  # fmt: skip
    alarms = [
        _raise("lighting.supply_loss", "LC-1", 3),  # the detection (phase L1)
        _raise("lighting.supply_loss", "LC-1", 3),  # phase L2: a sibling
        _raise("lighting.voltage_sag", "LC-1", 10),  # true, but another fault's symptom
        _raise("lighting.voltage_sag", "LC-1", 900),  # long after: a false positive
    ]
    res = score(alarms, gt)
    s, v = res["lighting.supply_loss"], res["lighting.voltage_sag"]
    assert (s["siblings"], s["precision"], s["strict_precision"]) == (1, 1.0, 1.0)
    assert (v["consequential"], v["false_positives"], v["strict_precision"]) == (1, 1, 0.0)
    assert v["precision"] == 0.0 and v["recall"] is None


def test_reopened_alarms_count_each_raise(tmp_path) -> None:
    gt = _truth(tmp_path, [
        {"ts_ns": 0, "kind": "door_open", "device": "LC-1", "end_ns": 10 * S},
        {"ts_ns": 100 * S, "kind": "door_open", "device": "LC-1", "end_ns": 110 * S},
    ])  # fmt: skip
    alarms = [_raise("lighting.door_open", "LC-1", 0, reraised_ns=[100 * S])]
    assert score(alarms, gt)["lighting.door_open"]["recall"] == 1.0


def test_latency_windows_are_duration_plus_interval() -> None:
    rules = [pm10(for_s=10)]
    assert latency_windows(rules, 60) == {"pm10": 70.0}


def test_a_fault_is_found_until_its_end_and_the_latency_says_how_late(tmp_path) -> None:
    gt = _truth(tmp_path, [
        {"ts_ns": 0, "kind": "sensor_spike", "device": "DM-1", "end_ns": 600 * S},
        {"ts_ns": 0, "kind": "sensor_spike", "device": "DM-2", "end_ns": 600 * S},
    ])  # fmt: skip
    alarms = [
        _raise("dust.sensor_spike", "DM-1", 250),  # the first spike came late in the fault
        _raise("dust.sensor_spike", "DM-2", 900),  # after the fault's end: no detection
    ]
    s = score(alarms, gt, max_latency_s=60)["dust.sensor_spike"]
    assert (s["detected"], s["faults"], s["latency_max_s"]) == (1, 2, 250.0)
    assert s["false_positives"] == 1  # past the fault's end and the latency slack
