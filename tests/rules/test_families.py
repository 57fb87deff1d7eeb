"""Property: the family kernels and the plain-Python oracle agree on random streams, with
the clock (``tick``) called between batches."""

from __future__ import annotations

import math
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter

from contracts.config import AnyRuleConfig, DeviceConfig
from rules.engine import RulesEngine
from rules.freference import FamilyReference
from tests.rules._helpers import DM, LC, S, frame

_R = [
    {"family": "window", "id": "w_mean", "domain": "dust", "kind": DM, "field": "pm10",
     "agg": "mean", "window_s": 20, "buckets": 4, "set": 150, "clear": 120, "for_s": 2},
    {"family": "window", "id": "w_max", "domain": "dust", "kind": DM, "field": "pm10",
     "agg": "max", "window_s": 7, "buckets": 3, "op": "above", "set": 199, "min_coverage": 0},
    {"family": "window", "id": "w_half", "domain": "dust", "kind": DM, "field": "pm25",
     "agg": "mean", "window_s": 6, "buckets": 6, "set": 60, "min_coverage": 0.5},
    {"family": "spike", "id": "spike", "domain": "dust", "kind": DM, "field": "pm10",
     "factor": 2, "floor": 10},
    {"family": "rate", "id": "rate", "domain": "dust", "kind": DM, "field": "pm25", "set": 600},
    {"family": "flatline", "id": "flat", "domain": "dust", "kind": DM, "field": "pm25",
     "eps": 0.5, "for_s": 4},
    # one endless run (eps wider than any value), so the guard decides
    {"family": "flatline", "id": "flat_on", "domain": "dust", "kind": DM, "field": "noise",
     "eps": 1000, "for_s": 2, "guard": {"field": "power", "below": 0.5}},
    {"family": "cross", "id": "cross", "domain": "dust", "kind": DM, "field": "pm25",
     "other": "pm10", "tolerance_s": 2, "for_s": 3, "max_silence_s": 1},
    {"family": "noise", "id": "noise", "domain": "dust", "kind": DM, "field": "noise",
     "for_s": 1, "guard": [{"field": "power", "equals": 1}, {"field": "pm25", "below": 200}]},
    {"family": "noise", "id": "noise_long", "domain": "dust", "kind": DM, "field": "noise",
     "for_s": 30, "day_limit": 55, "night_limit": 50, "day_end_h": 21.999},
    {"family": "astro", "id": "lit_day", "domain": "lighting", "kind": LC,
     "field": "circuit*_on", "expect": "lit_in_day", "for_s": 2},
    {"family": "astro", "id": "dark_night", "domain": "lighting", "kind": LC,
     "field": "circuit*_on", "expect": "dark_at_night", "on_offset_min": 10},
    {"family": "astro", "id": "dark_late", "domain": "lighting", "kind": LC,
     "field": "circuit*_on", "expect": "dark_at_night", "for_s": 300, "max_silence_s": 200},
    {"family": "stale", "id": "stale", "domain": "dust", "kind": DM, "silent_s": 5},
    {"family": "stale", "id": "stale_duty", "domain": "lighting", "kind": LC,
     "field": "circuit*", "silent_s": 3, "guard": {"field": "door_open", "equals": 0}},
]  # fmt: skip
RULES = TypeAdapter(list[AnyRuleConfig]).validate_python(_R)
DEVS = {
    "L1": DeviceConfig(id="L1", kind=LC, protocol="opcua", profile="p", endpoint="x",
                       location={"lat": 30.66, "lon": 104.06}),
}  # fmt: skip
DEVICES = [("L1", LC), ("D1", DM), ("D2", DM)]
FIELDS = {LC: ["circuit1_on", "circuit2_on", "door_open"], DM: ["pm10", "pm25", "noise", "power"]}
VALUES = st.one_of(
    st.sampled_from([0.0, 1.0, 56.0]),
    st.sampled_from([0.0, 1.0, 50.0, 55.0, 60.0, 70.0, 71.0, 150.0, 200.0, 201.0, 300.0]),
    st.just(math.nan),
    st.integers(0, 400).map(float),
)
# around sunset in Chengdu and across 22:00 local, so day/night both happen
STARTS = [
    int(datetime(2024, 6, 1, 11, 0, tzinfo=UTC).timestamp()) * S,  # 19:00 local, sunset ~20:10
    int(datetime(2024, 6, 1, 13, 59, 50, tzinfo=UTC).timestamp()) * S,  # 21:59:50 local
]


@st.composite
def streams(draw):
    n = draw(st.integers(0, 100))
    t = draw(st.sampled_from(STARTS)) + draw(st.integers(0, 5000)) * S
    rows = []
    for _ in range(n):
        dev, kind = draw(st.sampled_from(DEVICES))
        field = draw(st.sampled_from(FIELDS[kind]))
        t = max(0, t + draw(st.sampled_from([0, 0, 1, 1, 2, 3, -1, -4, 600])) * S // 2)
        rows.append((dev, kind, t, field, draw(VALUES)))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=4)))
    snap_at = draw(st.one_of(st.none(), st.integers(0, len(cuts))))
    ticks = draw(st.lists(st.sampled_from([0, 1, 4, 30, 400, 4000]), min_size=len(cuts) + 1,
                          max_size=len(cuts) + 1))  # fmt: skip
    return rows, cuts, snap_at, ticks


def _key(tr):
    return (tr.rule_id, tr.subject, tr.kind, tr.ts, tr.value, tr.threshold)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_family_kernels_match_reference(stream) -> None:
    rows, cuts, snap_at, ticks = stream
    ref = FamilyReference(RULES, DEVS)
    eng = RulesEngine(RULES, out_capacity=16, devices=DEVS)
    bounds = [0, *cuts, len(rows)]
    clock = 0
    for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
        if i == snap_at:  # a restart changes nothing, windows and latches included
            data = eng.snapshot()
            eng = RulesEngine(RULES, out_capacity=16, devices=DEVS)
            eng.restore(data)
        batch = rows[a:b]
        assert [_key(t) for t in eng.process(frame(batch))] == [
            _key(t) for t in ref.process_rows(batch)
        ]
        clock = max([clock, *(r[2] for r in batch)])
        now = clock = clock + ticks[i] * S
        assert sorted(map(_key, eng.tick(now))) == sorted(map(_key, ref.tick(now)))


def _one(rule: dict):
    return TypeAdapter(list[AnyRuleConfig]).validate_python([rule])


def test_an_hourly_mean_needs_three_quarters_of_its_hour() -> None:
    rule = _one({"family": "window", "id": "pm10_1h", "domain": "dust", "kind": DM,
                 "field": "pm10", "window_s": 3600, "set": 150, "clear": 140})  # fmt: skip
    eng, ref = RulesEngine(rule), FamilyReference(rule)
    two = [("D1", DM, 0, "pm10", 400.0), ("D1", DM, 60 * S, "pm10", 400.0)]
    assert eng.process(frame(two)) == [] and ref.process_rows(two) == []
    # a row every 2 min: the 23rd bucket of 30 brings coverage to 0.75
    rows = [("D1", DM, (120 + 120 * i) * S, "pm10", 400.0) for i in range(25)]
    got = eng.process(frame(rows))
    assert [(t.kind, t.ts // S) for t in got] == [("raise", 120 * 22)]
    assert got == ref.process_rows(rows)


def test_a_spike_is_one_row_above_both_neighbours_seen_on_the_next_row() -> None:
    rule = _one({"family": "spike", "id": "spike", "domain": "dust", "kind": DM,
                 "field": "pm10", "factor": 4, "floor": 20})  # fmt: skip
    vals = [80, 85, 640, 90, 88, 400, 420, 410, 5, 30, 6]  # a spike; an episode; small noise
    rows = [("D1", DM, i * 10 * S, "pm10", float(v)) for i, v in enumerate(vals)]
    got = RulesEngine(rule).process(frame(rows))
    assert [(t.kind, t.ts // S, round(t.value, 2)) for t in got] == [
        ("raise", 30, 7.11), ("clear", 40, 0.14)]  # fmt: skip
    assert got == FamilyReference(rule).process_rows(rows)


def test_the_clock_confirms_a_contactor_that_opened_at_night_and_reports_no_more() -> None:
    # 2024-06-01 21:00 local in Chengdu (sunset ~20:10): night; the agent reports by
    # exception, so the contactor's 0 is sent once and nothing follows
    rule = _one({"family": "astro", "id": "dark", "domain": "lighting", "kind": LC,
                 "field": "circuit*_on", "expect": "dark_at_night", "for_s": 600,
                 "max_silence_s": 120})  # fmt: skip
    t0 = int(datetime(2024, 6, 1, 13, 0, tzinfo=UTC).timestamp()) * S
    beat = [("L1", LC, t0 + i * 60 * S, "circuit1_on", 0.0 if i else 1.0) for i in range(2)]
    eng, ref = RulesEngine(rule, devices=DEVS), FamilyReference(rule, DEVS)
    assert eng.process(frame(beat)) == ref.process_rows(beat) == []
    assert eng.tick(t0 + 700 * S) == ref.tick(t0 + 700 * S) == []  # due at t0 + 660 s...
    # ... but the cabinet has been silent since t0 + 60 s: more than 120 s before the due time
    assert eng.tick(t0 + 4000 * S) == []
    rule2 = _one({**rule[0].model_dump(), "max_silence_s": 900})
    eng2 = RulesEngine(rule2, devices=DEVS)
    eng2.process(frame(beat))
    (got,) = eng2.tick(t0 + 700 * S)
    assert (got.kind, got.ts) == ("raise", t0 + 660 * S)


def test_the_clock_confirms_a_flatline_without_new_rows_but_not_a_window() -> None:
    rules = _one({"family": "flatline", "id": "flat", "domain": "dust", "kind": DM,
                  "field": "pm10", "eps": 0.1, "for_s": 1800})  # fmt: skip
    rules += _one({"family": "window", "id": "w", "domain": "dust", "kind": DM,
                   "field": "pm25", "window_s": 60, "set": 50, "for_s": 10, "min_coverage": 0})  # fmt: skip
    eng = RulesEngine(rules)
    rows = [("D1", DM, 0, "pm10", 80.0), ("D1", DM, 0, "pm25", 80.0),
            ("D1", DM, 1700 * S, "pm10", 80.05)]  # fmt: skip
    assert eng.process(frame(rows)) == []
    assert [(t.rule_id, t.ts // S) for t in eng.tick(2000 * S)] == [("flat", 1800)]
    got = eng.process(frame([("D1", DM, 2001 * S, "pm10", 90.0)]))
    assert [(t.rule_id, t.kind, t.ts // S) for t in got] == [("flat", "clear", 2001)]
