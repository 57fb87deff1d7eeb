"""Property: the family kernels and the plain-Python oracle agree on random streams."""

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
     "agg": "max", "window_s": 7, "buckets": 3, "op": "above", "set": 199},
    {"family": "rate", "id": "rate", "domain": "dust", "kind": DM, "field": "pm25", "set": 600},
    {"family": "flatline", "id": "flat", "domain": "dust", "kind": DM, "field": "pm25",
     "eps": 0.5, "for_s": 4},
    {"family": "cross", "id": "cross", "domain": "dust", "kind": DM, "field": "pm25",
     "other": "pm10", "tolerance_s": 2},
    {"family": "noise", "id": "noise", "domain": "dust", "kind": DM, "field": "noise",
     "for_s": 1, "guard": {"field": "power", "equals": 1}},
    {"family": "astro", "id": "lit_day", "domain": "lighting", "kind": LC,
     "field": "circuit*_on", "expect": "lit_in_day", "for_s": 2},
    {"family": "astro", "id": "dark_night", "domain": "lighting", "kind": LC,
     "field": "circuit*_on", "expect": "dark_at_night", "on_offset_min": 10},
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
    return rows, cuts, snap_at


def _key(tr):
    return (tr.rule_id, tr.subject, tr.kind, tr.ts, tr.value, tr.threshold)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_family_kernels_match_reference(stream) -> None:
    rows, cuts, snap_at = stream
    ref = FamilyReference(RULES, DEVS)
    eng = RulesEngine(RULES, out_capacity=16, devices=DEVS)
    bounds = [0, *cuts, len(rows)]
    for i, (a, b) in enumerate(zip(bounds, bounds[1:])):
        if i == snap_at:  # a restart changes nothing, windows and latches included
            data = eng.snapshot()
            eng = RulesEngine(RULES, out_capacity=16, devices=DEVS)
            eng.restore(data)
        batch = rows[a:b]
        assert [_key(t) for t in eng.process(frame(batch))] == [
            _key(t) for t in ref.process_rows(batch)
        ]
        now = max([r[2] for r in batch], default=0) + 4 * S
        assert sorted(map(_key, eng.tick(now))) == sorted(map(_key, ref.tick(now)))
