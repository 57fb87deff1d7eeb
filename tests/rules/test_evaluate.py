"""Scoring alarms against ground truth: matches, misses, false positives, latency."""

from __future__ import annotations

import json

from rules.evaluate import main, score
from rules.transition import Transition

S = 1_000_000_000


def _tr(rule: str, dev: str, t: int, kind: str = "raise") -> Transition:
    return Transition(rule, dev, dev, "x", kind, t * S, 1.0, 0.0)  # type: ignore[arg-type]


def test_score_counts_hits_misses_and_false_positives(tmp_path) -> None:
    gt = tmp_path / "gt.jsonl"
    gt.write_text(
        "\n".join(
            json.dumps(x)
            for x in [
                {"ts_ns": 100 * S, "kind": "door_open", "device": "LC-1"},
                {"ts_ns": 200 * S, "kind": "door_open", "device": "LC-2"},  # missed
                {"ts_ns": 100 * S, "kind": "overspeed", "device": "V-1"},
                {"ts_ns": 100 * S, "kind": "gps_jump", "device": "V-1"},  # not scored
            ]
        )
    )
    alarms = [
        _tr("lighting.door_open", "LC-1", 101),
        _tr("lighting.door_open", "LC-1", 102, "clear"),
        _tr("lighting.door_open", "LC-3", 150),  # false positive
        _tr("vehicle.overspeed", "V-1", 500),  # too late: a miss and a false positive
        _tr("dust.unrelated", "D-1", 100),
    ]
    res = score(alarms, gt, max_latency_s=120)
    door = res["lighting.door_open"]
    assert (door["faults"], door["detected"], door["raises"], door["false_positives"]) == (
        2,
        1,
        2,
        1,
    )
    assert door["precision"] == 0.5 and door["recall"] == 0.5 and door["latency_mean_s"] == 1.0
    assert res["vehicle.overspeed"]["recall"] == 0.0 and "dust.unrelated" not in res


def test_a_fault_is_expected_from_its_fleets_rule(tmp_path) -> None:
    # a kitchen-waste truck dumping its load is a detour before the plant, not a long stop
    gt = tmp_path / "gt.jsonl"
    gt.write_text(
        "\n".join(
            json.dumps(x)
            for x in [
                {"ts_ns": 100 * S, "kind": "illegal_dumping", "device": "K-1",
                 "fleet": "kitchen_waste"},
                {"ts_ns": 100 * S, "kind": "illegal_dumping", "device": "C-1",
                 "fleet": "construction_waste"},
            ]
        )
    )  # fmt: skip
    alarms = [
        _tr("vehicle.kitchen_detour", "K-1", 700),
        _tr("vehicle.illegal_dumping", "C-1", 700),
    ]
    res = score(alarms, gt, max_latency_s=900)
    assert res["vehicle.kitchen_detour"]["recall"] == 1.0
    assert res["vehicle.illegal_dumping"]["recall"] == 1.0
    assert res["vehicle.illegal_dumping"]["faults"] == 1


def test_main_reads_transition_lines(tmp_path, capsys) -> None:
    gt = tmp_path / "gt.jsonl"
    gt.write_text(json.dumps({"ts_ns": 10 * S, "kind": "leakage", "device": "LC-1"}) + "\n")
    tr = tmp_path / "tr.jsonl"
    tr.write_text(json.dumps({"rule_id": "lighting.leakage", "device_id": "LC-1", "ts": 20 * S}))
    assert main(["--truth", str(gt), "--transitions", str(tr)]) == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["lighting.leakage"]["recall"] == 1.0
    assert main(["--truth", str(tmp_path / "nope"), "--transitions", str(tr)]) == 2
