"""Property: on random streams the numba engine and the reference engine agree exactly,
with the clock (``tick``) called between batches."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.config import DeviceConfig, RuleConfig
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
    # the clock confirms it only when L1/L2 sent a row within 0.5 s of the due time
    RuleConfig(id="low_current", domain="lighting", kind=LC, field="circuit*_current", op="below",
               set=1.0, clear=1.2, for_s=1, max_silence_s=0.5),
    # a guard that often turns while its subject is pending
    RuleConfig(id="pm10_off", domain="dust", kind=DM, field="pm10", op="above", set=100,
               for_s=1, guard={"field": "power", "below": 0.5}),
    # guard lists (equals, above, below; a plain guard on a '*' rule), a short silence bound
    RuleConfig(id="theft_v", domain="lighting", kind=LC, field="circuit*_current", op="below",
               set=0.3, clear=0.5, for_s=2, max_silence_s=1.5,
               guard=[{"field": "circuit*_on", "equals": 1}, {"field": "voltage", "above": 150},
                      {"field": "door_open", "below": 0.5}]),
    # levels relative to the circuit's expected current: L1 has 1 A and 0.5 A, L2 none
    RuleConfig(id="lamps", domain="lighting", kind=LC, field="circuit*_current", op="below",
               set=0.9, clear=0.95, for_s=1.5, relative_to="expected_current",
               guard={"field": "circuit*_on", "equals": 1}),
]  # fmt: skip
DEVS = {
    "L1": DeviceConfig(id="L1", kind=LC, protocol="opcua", profile="p", endpoint="x",
                       attrs={"lamps_per_circuit": "2,1", "lamp_watts": "104.5"}),
}  # fmt: skip

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
    # after each batch the clock moves to its last ts plus a little, or not at all (None)
    ticks = draw(st.lists(st.sampled_from([None, 0, 1, 2, 5, 60]), min_size=len(cuts) + 1,
                          max_size=len(cuts) + 1))  # fmt: skip
    return rows, cuts, snap_at, ticks


def _batches(rows, cuts):
    bounds = [0, *cuts, len(rows)]
    return [rows[a:b] for a, b in zip(bounds, bounds[1:])]


def _key(t):
    return (t.rule_id, t.subject, t.kind, t.ts, t.value, t.threshold)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams())
def test_numba_engine_matches_reference(stream) -> None:
    rows, cuts, snap_at, ticks = stream
    ref = ReferenceEngine(RULES, DEVS)
    eng = RulesEngine(RULES, out_capacity=16, devices=DEVS)
    clock = 0
    for i, batch in enumerate(_batches(rows, cuts)):
        if i == snap_at:  # a restart in the middle of the stream changes nothing
            data = eng.snapshot()
            eng = RulesEngine(RULES, out_capacity=16, devices=DEVS)
            eng.restore(data)
        got, expected = eng.process(frame(batch)), ref.process_rows(batch)
        assert [_key(t) for t in got] == [_key(t) for t in expected]
        assert got == expected
        if ticks[i] is not None:
            clock = max([clock, *(r[2] for r in batch)]) + ticks[i] * S
            # one clock reading: its raises in any order (each engine walks its own slots)
            assert sorted(map(_key, eng.tick(clock))) == sorted(map(_key, ref.tick(clock)))
