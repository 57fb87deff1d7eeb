"""Hand-written tables for the rule semantics, run through both engines."""

from __future__ import annotations

import math

import pytest

from contracts.config import DeviceConfig, RuleConfig
from rules.engine import RulesEngine
from rules.reference import ReferenceEngine
from tests.rules._helpers import DM, LC, S, door, frame, pm10, theft

NAN = math.nan


def _rule(**kw) -> RuleConfig:
    return RuleConfig.model_validate({"domain": "lighting", "kind": LC, **kw})


#: theft with voltage present as a second guard
THEFT_V = _rule(
    id="theft",
    field="circuit*_current",
    op="below",
    set=0.3,
    clear=0.5,
    guard=[{"field": "circuit*_on", "equals": 1}, {"field": "voltage", "above": 150}],
)
#: lamp failure relative to the circuit's expected current (L1: 10 A and 20 A, see DEVS)
LAMPS = _rule(
    id="lamps",
    field="circuit*_current",
    op="below",
    set=0.9,
    clear=0.95,
    relative_to="expected_current",
    guard={"field": "circuit*_on", "equals": 1},
)
PM10_DRY = RuleConfig(
    id="pm10",
    domain="dust",
    kind=DM,
    field="pm10",
    op="above",
    set=200,
    guard={"field": "humidity", "below": 95},
)
#: pm10 for 10 min, confirmed by the clock only while the monitor was heard within 5 min
PM10_SILENT = RuleConfig(
    id="pm10",
    domain="dust",
    kind=DM,
    field="pm10",
    op="above",
    set=200,
    for_s=600,
    max_silence_s=300,
    guard={"field": "power", "equals": 1},
)
# 209 W / (220 V x 0.95) = 1 A per lamp
DEVS = {
    "L1": DeviceConfig(
        id="L1",
        kind=LC,
        protocol="opcua",
        profile="p",
        endpoint="x",
        attrs={"lamps_per_circuit": "10,20", "lamp_watts": "209"},
    ),
    "L2": DeviceConfig(id="L2", kind=LC, protocol="opcua", profile="p", endpoint="x"),
}
TICK = "tick"  # a row ("tick", t) advances the clock to t

# (name, rules, rows as (device, kind, t_s, field, value), expected (rule, subject, kind, t_s))
CASES = [
    (
        "duration: raise only after for_s held, at the first row past it",
        [pm10(10)],
        [
            ("D1", DM, 0, "pm10", 250),
            ("D1", DM, 5, "pm10", 260),
            ("D1", DM, 9, "pm10", 270),
            ("D1", DM, 10, "pm10", 240),
        ],
        [("pm10", "D1", "raise", 10)],
    ),
    (
        "duration: a release before for_s cancels the pending condition",
        [pm10(10)],
        [
            ("D1", DM, 0, "pm10", 250),
            ("D1", DM, 5, "pm10", 140),
            ("D1", DM, 11, "pm10", 250),
            ("D1", DM, 20, "pm10", 250),
        ],
        [],
    ),
    (
        "hysteresis: the band between clear and set neither cancels nor clears",
        [pm10(0)],
        [
            ("D1", DM, 0, "pm10", 180),
            ("D1", DM, 1, "pm10", 201),
            ("D1", DM, 2, "pm10", 160),
            ("D1", DM, 3, "pm10", 150),
            ("D1", DM, 4, "pm10", 149.9),
            ("D1", DM, 5, "pm10", 190),
        ],
        [("pm10", "D1", "raise", 1), ("pm10", "D1", "clear", 4)],
    ),
    (
        "hysteresis: a pending condition survives the band",
        [pm10(10)],
        [("D1", DM, 0, "pm10", 250), ("D1", DM, 5, "pm10", 160), ("D1", DM, 10, "pm10", 170)],
        [("pm10", "D1", "raise", 10)],
    ),
    (
        "for_s 0: the crossing row raises; exactly at set is no crossing",
        [door()],
        [
            ("L1", LC, 0, "door_open", 0.5),
            ("L1", LC, 1, "door_open", 1),
            ("L1", LC, 2, "door_open", 0),
        ],
        [("door", "L1", "raise", 1), ("door", "L1", "clear", 2)],
    ),
    (
        "guard: condition only while the contactor is closed; unknown guard is false",
        [theft(0)],
        [
            ("L1", LC, 0, "circuit1_current", 0.0),
            ("L1", LC, 1, "circuit1_on", 1),
            ("L1", LC, 2, "circuit1_current", 0.1),
            ("L1", LC, 3, "circuit1_on", 0),
            ("L1", LC, 4, "circuit1_current", 0.1),
        ],
        [
            ("theft", "L1/circuit1_current", "raise", 2),
            ("theft", "L1/circuit1_current", "clear", 4),
        ],
    ),
    (
        "guard: the '*' binds per circuit",
        [theft(0)],
        [
            ("L1", LC, 0, "circuit1_on", 1),
            ("L1", LC, 0, "circuit2_on", 0),
            ("L1", LC, 1, "circuit1_current", 0.1),
            ("L1", LC, 1, "circuit2_current", 0.1),
        ],
        [("theft", "L1/circuit1_current", "raise", 1)],
    ),
    (
        "NaN rows change nothing",
        [pm10(0)],
        [
            ("D1", DM, 0, "pm10", 250),
            ("D1", DM, 1, "pm10", NAN),
            ("D1", DM, 2, "pm10", None),
            ("D1", DM, 3, "pm10", 100),
        ],
        [("pm10", "D1", "raise", 0), ("pm10", "D1", "clear", 3)],
    ),
    (
        "late rows (older than the series' last ts) are ignored; equal ts is processed",
        [pm10(0)],
        [("D1", DM, 10, "pm10", 250), ("D1", DM, 5, "pm10", 100), ("D1", DM, 10, "pm10", 100)],
        [("pm10", "D1", "raise", 10), ("pm10", "D1", "clear", 10)],
    ),
    (
        "late guard rows do not change the guard",
        [theft(0)],
        [
            ("L1", LC, 5, "circuit1_on", 1),
            ("L1", LC, 4, "circuit1_on", 0),
            ("L1", LC, 6, "circuit1_current", 0.0),
        ],
        [("theft", "L1/circuit1_current", "raise", 6)],
    ),
    (
        "devices and rules are independent; other kinds are not matched",
        [pm10(0), door()],
        [
            ("D1", DM, 0, "pm10", 300),
            ("D2", DM, 0, "pm10", 100),
            ("L1", LC, 0, "pm10", 999),
            ("L1", LC, 0, "door_open", 1),
            ("D1", DM, 0, "door_open", 1),
        ],
        [("pm10", "D1", "raise", 0), ("door", "L1", "raise", 0)],
    ),
    (
        "guards: all must hold (equals and above); a failing one releases",
        [THEFT_V],
        [
            ("L1", LC, 0, "circuit1_on", 1),
            ("L1", LC, 0, "circuit1_current", 0.1),  # voltage never seen: guard fails
            ("L1", LC, 1, "voltage", 220),
            ("L1", LC, 2, "circuit1_current", 0.1),
            ("L1", LC, 3, "voltage", 0),  # supply lost: not theft
            ("L1", LC, 4, "circuit1_current", 0.0),
            ("L1", LC, 5, "circuit1_current", 0.0),
        ],
        [
            ("theft", "L1/circuit1_current", "raise", 2),
            ("theft", "L1/circuit1_current", "clear", 4),
        ],
    ),
    (
        "guards: below a level",
        [PM10_DRY],
        [
            ("D1", DM, 0, "humidity", 97),
            ("D1", DM, 1, "pm10", 300),
            ("D1", DM, 2, "humidity", 80),
            ("D1", DM, 3, "pm10", 300),
        ],
        [("pm10", "D1", "raise", 3)],
    ),
    (
        "relative: levels are shares of the subject's expected value; no attrs, no subject",
        [LAMPS],
        [
            ("L1", LC, 0, "circuit1_on", 1),
            ("L1", LC, 0, "circuit2_on", 1),
            ("L1", LC, 0, "circuit3_on", 1),
            ("L2", LC, 0, "circuit1_on", 1),
            ("L1", LC, 1, "circuit1_current", 9.1),  # 91 % of 10 A: fine
            ("L1", LC, 1, "circuit2_current", 17.9),  # 89.5 % of 20 A
            ("L1", LC, 1, "circuit3_current", 0.0),  # not in the asset register
            ("L2", LC, 1, "circuit1_current", 0.0),  # no asset register
            ("L1", LC, 2, "circuit1_current", 8.9),
            ("L1", LC, 3, "circuit2_current", 18.9),  # 94.5 %: in the band, holds
            ("L1", LC, 4, "circuit2_current", 19.1),
        ],
        [
            ("lamps", "L1/circuit2_current", "raise", 1),
            ("lamps", "L1/circuit1_current", "raise", 2),
            ("lamps", "L1/circuit2_current", "clear", 4),
        ],
    ),
    (
        "clock: a value that stops arriving stands; it raises at since + for_s, not at now",
        [pm10(10), door()],
        [
            ("D1", DM, 0, "pm10", 250),
            ("L1", LC, 0, "door_open", 1),
            (TICK, 9.5),
            (TICK, 12),
            ("D1", DM, 13, "pm10", 240),  # already raised: nothing
            (TICK, 30),
            ("D1", DM, 31, "pm10", 100),
        ],
        [("door", "L1", "raise", 0), ("pm10", "D1", "raise", 10), ("pm10", "D1", "clear", 31)],
    ),
    (
        "clock: a release row first, or a failing guard, and nothing is confirmed",
        [pm10(10), theft(6)],
        [
            ("D1", DM, 0, "pm10", 250),
            ("D1", DM, 5, "pm10", 100),
            ("L1", LC, 0, "circuit1_on", 1),
            ("L1", LC, 0, "circuit1_current", 0.1),
            ("L1", LC, 3, "circuit1_on", 0),  # contactor opened: current 0 is no theft
            (TICK, 20),
        ],
        [],
    ),
    (
        "clock: a device silent longer than max_silence_s before the due time is not confirmed",
        [PM10_SILENT],
        [
            ("D1", DM, 0, "power", 1),
            ("D1", DM, 0, "pm10", 250),
            ("D2", DM, 0, "power", 1),
            ("D2", DM, 0, "pm10", 250),
            ("D2", DM, 400, "power", 1),  # D2 is still heard; D1 went silent at 0
            (TICK, 900),
        ],
        [("pm10", "D2", "raise", 600)],
    ),
]


def _rows(rows):
    return [(d, k, int(t * S), f, v) for d, k, t, f, v in rows]


def _run(engine: str, rules, rows) -> list:
    """Feed rows to one engine, calling its clock at every ("tick", t) row."""
    eng = RulesEngine(rules, devices=DEVS) if engine == "numba" else ReferenceEngine(rules, DEVS)
    out, batch = [], []
    for row in [*rows, (TICK, None)]:
        if row[0] != TICK:
            batch.append(row)
            continue
        if batch:
            b = _rows(batch)
            out += eng.process(frame(b)) if engine == "numba" else eng.process_rows(b)  # type: ignore[union-attr]
        batch = []
        if row[1] is not None:
            out += eng.tick(int(row[1] * S))
    return out


@pytest.mark.parametrize("name,rules,rows,expected", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("engine", ["numba", "reference"])
def test_semantics(engine: str, name: str, rules, rows, expected) -> None:
    got = _run(engine, rules, rows)
    assert [(t.rule_id, t.subject, t.kind, t.ts / S) for t in got] == expected


def test_relative_rules_report_absolute_levels_and_count_unrated_subjects() -> None:
    eng = RulesEngine([LAMPS], devices=DEVS)
    got = eng.process(frame(_rows([("L1", LC, 0, "circuit1_on", 1),
                                   ("L1", LC, 0, "circuit1_current", 5.0),
                                   ("L2", LC, 0, "circuit1_current", 5.0),
                                   ("L1", LC, 0, "circuit7_current", 5.0)])))  # fmt: skip
    assert [(t.value, t.threshold) for t in got] == [(5.0, 9.0)]
    assert eng.stats()["unrated_subjects"] == 2


def test_row_at_a_time_equals_one_batch() -> None:
    rows = _rows(CASES[2][2])
    whole = RulesEngine([pm10(0)]).process(frame(rows))
    eng = RulesEngine([pm10(0)])
    split = [t for r in rows for t in eng.process(frame([r]))]
    assert whole == split


def test_counters_name_what_was_ignored() -> None:
    eng = RulesEngine([pm10(0)])
    eng.process(
        frame(
            _rows(
                [
                    ("D1", DM, 10, "pm10", 250),
                    ("D1", DM, 5, "pm10", 1),
                    ("D1", DM, 11, "pm10", NAN),
                    ("D1", DM, 12, "noise", 50),
                ]
            )
        )
    )
    st = eng.stats()
    assert (st["rows"], st["late_rows"], st["nan_rows"], st["unused_rows"], st["active"]) == (
        1,
        1,
        1,
        1,
        1,
    )
    assert eng.process(frame([])) == []
