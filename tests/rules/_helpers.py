"""Shared helpers for the rules tests: frames from rows, a small rule set."""

from __future__ import annotations

import polars as pl

from contracts.config import RuleConfig

S = 1_000_000_000
LC = "lighting_cabinet"
DM = "dust_monitor"
SCHEMA = {
    "device_id": pl.String,
    "kind": pl.String,
    "ts": pl.Int64,
    "field": pl.String,
    "value": pl.Float64,
}


def frame(rows: list[tuple[str, str, int, str, float | None]]) -> pl.DataFrame:
    """A telemetry frame from (device_id, kind, ts, field, value) rows."""
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def theft(for_s: float = 6) -> RuleConfig:
    """Cable theft: circuit current below 0.3 (clear 0.5) with the contactor closed."""
    return RuleConfig(
        id="theft", domain="lighting", kind=LC, field="circuit*_current", op="below",
        set=0.3, clear=0.5, for_s=for_s, guard={"field": "circuit*_on", "equals": 1},
    )  # fmt: skip


def pm10(for_s: float = 10) -> RuleConfig:
    """PM10 stop-work level with hysteresis."""
    return RuleConfig(
        id="pm10", domain="dust", kind=DM, field="pm10", op="above", set=200, clear=150, for_s=for_s
    )


def door() -> RuleConfig:
    """Cabinet door opened, immediately."""
    return RuleConfig(id="door", domain="lighting", kind=LC, field="door_open", op="above", set=0.5)


def keys(trs: list) -> list:
    """Transitions as comparable tuples, in a stable order."""
    return sorted((t.rule_id, t.subject, t.field, t.kind, t.ts, round(t.value, 6), t.geofence,
                   t.lat, t.lon) for t in trs)  # fmt: skip


def same_vehicle_transitions(rules: list, devs: dict, geo: list, bs: list[list]) -> None:
    """The numba engine and the Python vehicle reference agree on these batches: the same
    transitions, late fixes and jumps (a small output buffer, so the kernels resume)."""
    from rules.engine import RulesEngine
    from rules.vreference import VehicleReference

    eng = RulesEngine(rules, devices=devs, geofences=geo, out_capacity=16)
    ref = VehicleReference(rules, geo, devs)
    got, want = [], []
    for b in bs:
        if b:
            got += eng.process(frame(b))
        want += ref.process_rows(b)
    assert keys(got) == keys(want)
    st_ = eng.stats()
    assert (st_["vehicle_late_fixes"], st_["vehicle_jumps"]) == (ref.late, ref.jumps)
