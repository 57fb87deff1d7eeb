"""Property: on random streams the numba engine and the reference engine agree exactly."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.config import RuleConfig
from rules.engine import RulesEngine
from rules.reference import ReferenceEngine
from tests.rules._helpers import DM, LC, S, door, frame, pm10, theft

RULES = [
    theft(3),
    pm10(2),
    door(),
    # a second rule on the same series, and a guard without '*'
    RuleConfig(id="pm10_warn", domain="dust", kind=DM, field="pm10", op="above", set=150, for_s=0,
               guard={"field": "power", "equals": 1}),
    RuleConfig(id="low_current", domain="lighting", kind=LC, field="circuit*_current", op="below",
               set=1.0, clear=1.2, for_s=1),
]  # fmt: skip

DEVICES = [("L1", LC), ("L2", LC), ("D1", DM)]
FIELDS = {
    LC: [
        "circuit1_current",
        "circuit2_current",
        "circuit1_on",
        "circuit2_on",
        "door_open",
        "voltage",
    ],
    DM: ["pm10", "power", "noise"],
}
VALUES = st.one_of(
    st.sampled_from(
        [0.0, 0.1, 0.3, 0.4, 0.5, 0.6, 1.0, 1.1, 1.3, 149.0, 150.0, 160.0, 200.0, 201.0, 300.0]
    ),
    st.just(math.nan),
    st.floats(-10, 400, allow_nan=False),
)


@st.composite
def streams(draw):
    n = draw(st.integers(0, 120))
    rows, t = [], 0
    for _ in range(n):
        dev, kind = draw(st.sampled_from(DEVICES))
        # a narrow mix of fields, so rows of one series often meet at the same instant
        field = draw(st.sampled_from(FIELDS[kind][:3] if draw(st.booleans()) else FIELDS[kind]))
        # mostly forward in time, sometimes back (late rows), sometimes the same instant
        t = max(0, t + draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3, -1, -4])) * S // 2)
        rows.append((dev, kind, t, field, draw(VALUES)))
    cuts = sorted(draw(st.lists(st.integers(0, n), max_size=5)))
    snap_at = draw(st.one_of(st.none(), st.integers(0, len(cuts))))
    return rows, cuts, snap_at


def _batches(rows, cuts):
    bounds = [0, *cuts, len(rows)]
    return [rows[a:b] for a, b in zip(bounds, bounds[1:])]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_numba_engine_matches_reference(stream) -> None:
    rows, cuts, snap_at = stream
    expected = ReferenceEngine(RULES).process_rows(rows)
    eng = RulesEngine(RULES, out_capacity=16)
    got = []
    for i, batch in enumerate(_batches(rows, cuts)):
        if i == snap_at:  # a restart in the middle of the stream changes nothing
            data = eng.snapshot()
            eng = RulesEngine(RULES, out_capacity=16)
            eng.restore(data)
        got.extend(eng.process(frame(batch)))
    assert [(t.rule_id, t.subject, t.kind, t.ts, t.value) for t in got] == [
        (t.rule_id, t.subject, t.kind, t.ts, t.value) for t in expected
    ]
    assert got == expected
