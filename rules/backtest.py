"""``rongguan backtest``: run a rule set over stored history and report what it would raise.

History is read through the store's public API (``latest`` lists the series, ``range``
reads one series) one time slice at a time, so memory is bounded by a slice, not by the
history; each slice is merged by time and fed to a fresh :class:`RulesEngine` in event
time, with staleness checked at the end of every batch.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import polars as pl

from contracts.config import AnyRuleConfig, DeploymentConfig, load_config
from rules.engine import RulesEngine, rules_at_speed
from rules.transition import Transition

__all__ = ["main", "run", "history_slices"]

S = 1_000_000_000
_DAY_S = 86_400.0
_BATCH = 10_000  # rows per engine call, the size the engine is tuned for


def history_slices(
    store: Any, start_ns: int, end_ns: int, slice_s: float = 3600.0
) -> Iterator[tuple[int, pl.DataFrame]]:
    """(slice end, rows of every series in the slice sorted by ts) over [start_ns, end_ns)."""
    series = store.latest().select("device_id", "kind", "field").unique(maintain_order=True)
    keys = list(series.iter_rows())
    step = max(1, int(slice_s * S))
    t = start_ns
    while t < end_ns:
        hi = min(end_ns, t + step)
        parts = []
        for device_id, kind, field in keys:
            part = store.range(device_id, field, t, hi)
            if part.height:
                parts.append(
                    part.select(
                        pl.lit(device_id, pl.String).alias("device_id"),
                        pl.lit(kind, pl.String).alias("kind"),
                        pl.col("ts").cast(pl.Int64),
                        pl.lit(field, pl.String).alias("field"),
                        pl.col("value").cast(pl.Float64),
                    )
                )
        frame = pl.concat(parts).sort("ts", maintain_order=True) if parts else None
        yield hi, frame if frame is not None else pl.DataFrame()
        t = hi


def _bounds(store: Any, start: str | None, end: str | None) -> tuple[int, int]:
    latest = store.latest()
    if not latest.height:
        return (_ns(start) if start else 0, _ns(end) if end else 0)
    hi = _ns(end) if end else int(latest.get_column("ts").max()) + 1
    if start:
        return _ns(start), hi
    # the store has no "oldest row" call: the first daily bucket of each series bounds it
    lo = hi
    for device_id, field in latest.select("device_id", "field").iter_rows():
        days = store.range(device_id, field, 0, hi, every_s=_DAY_S, agg="max")
        if not days.height:
            continue
        day = int(days.get_column("ts").min())
        # then the first second of that day (at most 86 400 buckets, usually far fewer)
        secs = store.range(device_id, field, day, day + int(_DAY_S * S), every_s=1.0, agg="max")
        lo = min(lo, int(secs.get_column("ts").min()) if secs.height else day)
    return lo, hi


def _ns(iso: str) -> int:
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(f"not an ISO time: {iso!r}") from None
    if dt.tzinfo is None:
        raise ValueError(f"give a time zone in {iso!r} (e.g. +08:00 or Z)")
    return int(dt.timestamp() * S)


class _Progress:
    """A one-line progress bar on a terminal stream (plain lines when not a terminal)."""

    def __init__(self, total: int, out: TextIO, width: int = 30):
        self.total, self.out, self.width = max(1, total), out, width
        self.tty = out.isatty()
        self._last_pct = -1

    def update(self, done: int, rows: int, raised: int) -> None:
        pct = min(100, done * 100 // self.total)
        if pct == self._last_pct:
            return
        self._last_pct = pct
        bar = "#" * (pct * self.width // 100)
        line = f"backtest [{bar:<{self.width}s}] {pct:3d}% {rows} rows {raised} alarms"
        self.out.write(("\r" + line) if self.tty else line + "\n")
        self.out.flush()

    def close(self) -> None:
        if self.tty:
            self.out.write("\n")


def run(
    cfg: DeploymentConfig,
    rules: list[AnyRuleConfig] | None = None,
    start_ns: int | None = None,
    end_ns: int | None = None,
    store: Any = None,
    on_progress: Callable[[int, int, int], None] | None = None,
    slice_s: float = 3600.0,
) -> dict[str, Any]:
    """Run ``rules`` (default: the config's) over stored history; return per-rule figures."""
    own = store is None
    if own:
        from ingest.store import open_store

        store = open_store(cfg, read_only=True)
    try:
        lo, hi = _bounds(store, None, None)
        lo = lo if start_ns is None else start_ns
        hi = hi if end_ns is None else end_ns
        devices = {d.id: d for _, d in cfg.devices().values()}
        # history recorded on a sped-up clock is judged as it was live
        chosen = rules_at_speed(list(cfg.rules if rules is None else rules), cfg.clock.speed)
        engine = RulesEngine(chosen, devices=devices, tz=cfg.tz)
        t0 = time.perf_counter()
        raises: list[Transition] = []
        clears = Counter[str]()
        rows = 0
        for slice_end, frame in history_slices(store, lo, hi, slice_s):
            for off in range(0, frame.height, _BATCH):
                batch = frame.slice(off, _BATCH)
                trs = engine.process(batch) + engine.tick(int(batch.get_column("ts").max()))
                raises += [t for t in trs if t.kind == "raise"]
                clears.update(t.rule_id for t in trs if t.kind == "clear")
                rows += batch.height
            # stale rules see silence at the end of every slice too
            for tr in engine.tick(slice_end):
                if tr.kind == "raise":
                    raises.append(tr)
                else:
                    clears[tr.rule_id] += 1
            if on_progress is not None:
                on_progress(slice_end - lo, rows, len(raises))
        per_rule: dict[str, dict[str, int]] = {}
        for tr in raises:
            st = per_rule.setdefault(tr.rule_id, {"raised": 0, "cleared": 0, "subjects": 0})
            st["raised"] += 1
        for rule_id, st in per_rule.items():
            st["cleared"] = clears[rule_id]
            st["subjects"] = len({t.subject for t in raises if t.rule_id == rule_id})
        return {
            "start_ns": lo, "end_ns": hi, "rows": rows, "alarms": len(raises),
            "seconds": round(time.perf_counter() - t0, 3),
            "per_rule": dict(sorted(per_rule.items())),
            "raises": [{"rule_id": t.rule_id, "device_id": t.device_id, "subject": t.subject,
                        "ts": t.ts, "value": t.value} for t in raises],
        }  # fmt: skip
    finally:
        if own:
            store.close()


def main(argv: list[str] | None = None) -> int:
    """``rongguan backtest -c CONFIG [--start ISO] [--end ISO] [--rules FILE] [--json]``."""
    ap = argparse.ArgumentParser(prog="rongguan backtest", description=__doc__.splitlines()[0])
    ap.add_argument("-c", "--config", required=True, help="deployment config YAML")
    ap.add_argument("--start", help="ISO time with zone (default: the oldest stored row)")
    ap.add_argument("--end", help="ISO time with zone (default: just after the newest row)")
    ap.add_argument("--rules", help="YAML rule list to test (default: the config's rules)")
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    ap.add_argument("--raises", help="write every raise as JSON lines (for rongguan evaluate)")
    args = ap.parse_args(argv)
    try:
        cfg = load_config(args.config)
        rules = None
        if args.rules:
            from rules.defaults import load_rules_file

            rules = load_rules_file(Path(args.rules))
        from ingest.store import open_store

        store = open_store(cfg, read_only=True)
        try:
            lo, hi = _bounds(store, args.start, args.end)
            bar = _Progress(hi - lo, sys.stderr)
            res = run(cfg, rules, lo, hi, store=store, on_progress=bar.update)
            bar.close()
        finally:
            store.close()
    except Exception as exc:  # noqa: BLE001 - a CLI: one clear line, non-zero exit
        print(f"backtest: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    raises = res.pop("raises")
    if args.raises:
        with open(args.raises, "w", encoding="utf-8") as f:
            f.writelines(json.dumps({**r, "kind": "raise"}) + "\n" for r in raises)
    if not args.json:
        print(f"{'rule':32s} {'raised':>7s} {'cleared':>7s} {'subjects':>8s}")
        for rule_id, st in res["per_rule"].items():
            print(f"{rule_id:32s} {st['raised']:7d} {st['cleared']:7d} {st['subjects']:8d}")
        print(f"{res['rows']} rows, {res['alarms']} alarms in {res['seconds']} s")
    print(json.dumps(res, ensure_ascii=False))
    return 0
