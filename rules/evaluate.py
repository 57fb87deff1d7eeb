"""Score alarms against a simulator's ground truth: precision, recall, detection latency.

The ground truth is JSON lines ``{"ts_ns", "kind", "device", ...}``, one per injected
fault. A fault is *detected* by the first raise of its rule on its device within
``[ts - slack, ts + max_latency]``; a raise of a scored rule that detects no fault is a
false positive. Rules without any mapped fault kind are not scored.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["FAULT_RULES", "score", "main"]

S = 1_000_000_000

#: fault kind -> the rule id expected to detect it (ids of ``rules/defaults``)
FAULT_RULES: dict[str, str] = {
    "door_open": "lighting.door_open",
    "cable_theft": "lighting.cable_theft",
    "lamp_failure": "lighting.lamp_failure",
    "voltage_sag": "lighting.voltage_sag",
    "supply_loss": "lighting.supply_loss",
    "leakage": "lighting.leakage",
    "dust_episode": "dust.pm10_stop_work",
    "sensor_spike": "dust.sensor_spike",
    "overspeed": "vehicle.overspeed",
    "cover_open": "vehicle.cover_open",
}


def _raises(items: Iterable[Any]) -> list[tuple[str, str, int]]:
    """(rule_id, device_id, ts) of every raise among transitions, alarms or dicts."""
    out = []
    for it in items:
        get = it.get if isinstance(it, dict) else lambda k, it=it: getattr(it, k, None)
        kind = get("kind")
        if kind is not None and kind != "raise":
            continue  # a clear transition
        ts = get("raised_ns") if get("raised_ns") is not None else get("ts")
        out.append((str(get("rule_id")), str(get("device_id")), int(ts)))
    return sorted(out, key=lambda r: r[2])


def _truth(path: str | Path) -> list[dict]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def score(
    alarms: Iterable[Any],
    ground_truth_jsonl: str | Path,
    max_latency_s: float = 120.0,
    slack_s: float = 5.0,
    fault_rules: dict[str, str] | None = None,
) -> dict:
    """Per rule: faults, detected, false positives, precision, recall, latency (mean/max s)."""
    mapping = FAULT_RULES if fault_rules is None else fault_rules
    faults = [f for f in _truth(ground_truth_jsonl) if f.get("kind") in mapping]
    raises = [r for r in _raises(alarms) if r[0] in set(mapping.values())]
    used = [False] * len(raises)
    per: dict[str, dict] = defaultdict(lambda: {"faults": 0, "detected": 0, "latencies_s": []})
    for f in sorted(faults, key=lambda f: f["ts_ns"]):
        rule, dev, t = mapping[f["kind"]], f["device"], int(f["ts_ns"])
        st = per[rule]
        st["faults"] += 1
        for i, (r, d, ts) in enumerate(raises):
            if r == rule and d == dev and t - slack_s * S <= ts <= t + max_latency_s * S:
                used[i] = True
                st["detected"] += 1
                st["latencies_s"].append(max(0, ts - t) / S)
                break
    for (r, _, _), u in zip(raises, used):
        per[r].setdefault("raises", 0)
        per[r]["raises"] += 1
        per[r].setdefault("false_positives", 0)
        per[r]["false_positives"] += 0 if u else 1
    out: dict[str, Any] = {}
    for rule, st in sorted(per.items()):
        lat = st.pop("latencies_s")
        n_raise = st.get("raises", 0)
        fp = st.get("false_positives", 0)
        out[rule] = {
            **st,
            "raises": n_raise,
            "false_positives": fp,
            "precision": round((n_raise - fp) / n_raise, 4) if n_raise else None,
            "recall": round(st["detected"] / st["faults"], 4) if st["faults"] else None,
            "latency_mean_s": round(sum(lat) / len(lat), 3) if lat else None,
            "latency_max_s": round(max(lat), 3) if lat else None,
        }
    return out


def _alarms_db(path: str) -> list[dict]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [json.loads(doc) for (doc,) in db.execute("SELECT doc FROM alarms")]
    finally:
        db.close()


def main(argv: list[str] | None = None) -> int:
    """``rongguan evaluate --truth GT.jsonl (--alarms alarms.db | --transitions T.jsonl)``."""
    ap = argparse.ArgumentParser(prog="rongguan evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("--truth", required=True, help="ground-truth JSON lines from the simulator")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--alarms", help="the rules service's alarms.db")
    src.add_argument("--transitions", help="JSON lines of transitions (rule_id, device_id, ts)")
    ap.add_argument("--max-latency-s", type=float, default=120.0)
    args = ap.parse_args(argv)
    try:
        if args.alarms:
            items: list = _alarms_db(args.alarms)
        else:
            text = Path(args.transitions).read_text(encoding="utf-8")
            items = [json.loads(x) for x in text.splitlines() if x.strip()]
        res = score(items, args.truth, args.max_latency_s)
    except (OSError, ValueError, KeyError, sqlite3.Error) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    print(f"{'rule':28s} {'faults':>6s} {'found':>6s} {'FP':>4s} {'prec':>6s} {'recall':>6s} "
          f"{'lat s':>7s}")  # fmt: skip
    for rule, r in res.items():
        print(f"{rule:28s} {r['faults']:6d} {r['detected']:6d} {r['false_positives']:4d} "
              f"{_f(r['precision']):>6s} {_f(r['recall']):>6s} {_f(r['latency_mean_s']):>7s}")  # fmt: skip
    print(json.dumps(res, ensure_ascii=False))
    return 0


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"
