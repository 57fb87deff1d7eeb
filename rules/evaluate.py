"""Score alarms against a simulator's ground truth: precision, recall, detection latency.

The ground truth is JSON lines ``{"ts_ns", "kind", "device", ...}``, one per injected
fault. A fault is *detected* by the first raise of its rule on its device from
``ts - slack`` until ``ts + max_latency`` or the fault's end (``end_ns``), whichever is
later: a fault whose symptom comes at random within it (a sensor's spikes) is found late,
not missed, and the latency figures show how late. A fault whose violation begins only
after it is injected (a truck driving to a banned zone) says when in ``onset_s``: latency,
and the detection window, count from there. A raise of a scored rule that detects no fault
is a false positive. Rules without any mapped fault kind are not scored, nor are faults
whose rule is not in the rule set (``rule_ids``): a GPS jump or late blind-area points
are absorbed (filtered, put in order) rather than alarmed.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from contracts.faults import FAULT_RULES, FLEET_RULES, OFFLINE, rule_for

__all__ = ["FAULT_RULES", "OFFLINE_RULES", "score", "latency_windows", "main"]

S = 1_000_000_000

#: device_offline is one fault kind but one rule per domain: the offline rule of the
#: device's domain detects it (any of them on that device counts)
OFFLINE_RULES: tuple[str, ...] = (
    "lighting.cabinet_offline",
    "dust.monitor_offline",
    "vehicle.tracker_offline",
)


def _raises(items: Iterable[Any]) -> list[tuple[str, str, int]]:
    """(rule_id, device_id, ts) of every raise among transitions, alarms or dicts.

    An alarm reopened by a quick re-raise carries the later raise times in
    ``extra.reraised_ns``; each counts as a raise of its own.
    """
    out = []
    for it in items:
        get = it.get if isinstance(it, dict) else lambda k, it=it: getattr(it, k, None)
        kind = get("kind")
        if kind is not None and kind != "raise":
            continue  # a clear transition
        ts = get("raised_ns") if get("raised_ns") is not None else get("ts")
        rule, dev = str(get("rule_id")), str(get("device_id"))
        out.append((rule, dev, int(ts)))
        out += [(rule, dev, int(t)) for t in (get("extra") or {}).get("reraised_ns", [])]
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
    latency_s: Mapping[str, float] | None = None,
    rule_ids: Iterable[str] | None = None,
) -> dict:
    """Per rule: faults, detected, false positives, precision, recall, latency (mean/max s).

    A raise that detects no fault but falls within another fault on the same device
    (from its start to its end plus ``max_latency_s``) is *consequential* (a supply loss
    is also an undervoltage), counted apart and not a false positive; ``strict_precision``
    counts them as false. Raises of the same rule on other subjects (phases, circuits)
    of a detected fault are *siblings*, left out of both. ``latency_s`` gives rules a longer detection window than
    ``max_latency_s`` (see :func:`latency_windows`).
    """
    lat_of = dict(latency_s or {})
    mapping = FAULT_RULES if fault_rules is None else fault_rules
    scored = {r for r in mapping.values() if r != OFFLINE} | (
        set(OFFLINE_RULES) if OFFLINE in mapping.values() else set()
    )
    if fault_rules is None:
        scored |= set(FLEET_RULES.values())
    truth = _truth(ground_truth_jsonl)
    faults = [f for f in truth if f.get("kind") in mapping]
    if rule_ids is not None:
        known = set(rule_ids) | {OFFLINE}
        faults = [f for f in faults if _expected(f, mapping, fault_rules is None) in known]
    raises = [r for r in _raises(alarms) if r[0] in scored]
    used = [False] * len(raises)
    found: list[tuple[str, dict]] = []  # (rule, fault) of every detection
    per: dict[str, dict] = defaultdict(lambda: {"faults": 0, "detected": 0, "latencies_s": []})
    for f in sorted(faults, key=lambda f: f["ts_ns"]):
        dev, t = f["device"], int(f["ts_ns"])
        onset = t + int(float(f.get("onset_s") or 0.0) * S)
        rule = _expected(f, mapping, fault_rules is None)
        wanted = set(OFFLINE_RULES) if rule == OFFLINE else {rule}
        end = int(f.get("end_ns") or 0)
        hit = next(
            (i for i, (r, d, ts) in enumerate(raises) if r in wanted and d == dev and not used[i]
             and t - slack_s * S <= ts <= max(onset + lat_of.get(r, max_latency_s) * S, end)),
            None,
        )  # fmt: skip
        if hit is None and rule == OFFLINE:  # charge the miss to the device's own domain
            rule = next((r for r, d, _ in raises if d == dev and r in wanted), OFFLINE)
        st = per[raises[hit][0] if hit is not None else rule]
        st["faults"] += 1
        if hit is not None:
            found.append((raises[hit][0], f))
            used[hit] = True
            st["detected"] += 1
            st["latencies_s"].append(max(0, raises[hit][2] - onset) / S)
    for (r, d, ts), u in zip(raises, used):
        st = per[r]
        st["raises"] = st.get("raises", 0) + 1
        # another phase or circuit of a fault this rule detected: the same finding
        sibling = not u and any(
            fr == r and _covers(f, d, ts, slack_s, max_latency_s) for fr, f in found
        )
        explained = u or any(_covers(f, d, ts, slack_s, max_latency_s) for f in truth)
        st["false_positives"] = st.get("false_positives", 0) + (0 if explained else 1)
        st["siblings"] = st.get("siblings", 0) + (1 if sibling else 0)
        st["consequential"] = st.get("consequential", 0) + (
            1 if explained and not u and not sibling else 0
        )
    out: dict[str, Any] = {}
    for rule, st in sorted(per.items()):
        lat = st.pop("latencies_s")
        fp = st.get("false_positives", 0)
        tp = st["detected"]
        out[rule] = {
            **st,
            "raises": st.get("raises", 0),
            "false_positives": fp,
            "consequential": st.get("consequential", 0),
            "precision": round(tp / (tp + fp), 4) if tp + fp else None,
            "siblings": st.get("siblings", 0),
            "strict_precision": (
                round(tp / (st["raises"] - st.get("siblings", 0)), 4)
                if st.get("raises", 0) > st.get("siblings", 0)
                else None
            ),
            "recall": round(tp / st["faults"], 4) if st["faults"] else None,
            "latency_mean_s": round(sum(lat) / len(lat), 3) if lat else None,
            "latency_max_s": round(max(lat), 3) if lat else None,
        }
    return out


def _expected(fault: dict, mapping: Mapping[str, str], by_fleet: bool) -> str:
    """The rule expected to detect ``fault`` (its fleet's, when scoring the shipped table)."""
    kind = fault["kind"]
    return rule_for(kind, fault.get("fleet")) if by_fleet else mapping[kind]


def latency_windows(rules: Iterable[Any], interval_s: float = 60.0) -> dict[str, float]:
    """Per rule, how late a detection may come: its duration (``for_s``, ``silent_s``)
    plus one reporting interval."""
    out = {}
    for r in rules:
        base = getattr(r, "for_s", None) or getattr(r, "silent_s", None) or 0.0
        out[r.id] = float(base) + interval_s
    return out


def _covers(fault: dict, device: str, ts: int, slack_s: float, max_latency_s: float) -> bool:
    """Whether a raise at ``ts`` on ``device`` falls within ``fault`` (plus latency)."""
    if fault.get("device") != device:
        return False
    start = int(fault.get("start_ns") or fault["ts_ns"]) - slack_s * S
    end = fault.get("end_ns")
    return start <= ts and (end is None or ts <= int(end) + max_latency_s * S)


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
    ap.add_argument("--interval-s", type=float, default=60.0, help="reporting interval")
    ap.add_argument("--rules", help="rule YAML: detection window = duration + interval "
                    "(default: the shipped rules)")  # fmt: skip
    args = ap.parse_args(argv)
    try:
        if args.alarms:
            items: list = _alarms_db(args.alarms)
        else:
            text = Path(args.transitions).read_text(encoding="utf-8")
            items = [json.loads(x) for x in text.splitlines() if x.strip()]
        from rules.defaults import DEFAULT_RULES, load_rules_file

        rules = load_rules_file(Path(args.rules) if args.rules else DEFAULT_RULES)
        windows = {
            k: max(v, args.max_latency_s)
            for k, v in latency_windows(rules, args.interval_s).items()
        }
        res = score(items, args.truth, args.max_latency_s, latency_s=windows,
                    rule_ids=[r.id for r in rules])  # fmt: skip
    except (OSError, ValueError, KeyError, sqlite3.Error) as exc:
        print(f"evaluate: {exc}", file=sys.stderr)
        return 2
    print(f"{'rule':28s} {'faults':>6s} {'found':>6s} {'FP':>4s} {'cons':>4s} {'prec':>6s} "
          f"{'strict':>6s} {'recall':>6s} {'lat s':>7s} {'max s':>7s}")  # fmt: skip
    for rule, r in res.items():
        print(f"{rule:28s} {r['faults']:6d} {r['detected']:6d} {r['false_positives']:4d} "
              f"{r['consequential']:4d} {_f(r['precision']):>6s} "
              f"{_f(r['strict_precision']):>6s} {_f(r['recall']):>6s} "
              f"{_f(r['latency_mean_s']):>7s} {_f(r['latency_max_s']):>7s}")  # fmt: skip
    print(json.dumps(res, ensure_ascii=False))
    return 0


def _f(x: float | None) -> str:
    return "-" if x is None else f"{x:.3g}"
