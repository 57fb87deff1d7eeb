"""Hand-written tables for the rule semantics, run through both engines."""

from __future__ import annotations

import math

import pytest

from rules.engine import RulesEngine
from rules.reference import ReferenceEngine
from tests.rules._helpers import DM, LC, S, door, frame, pm10, theft

NAN = math.nan

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
]


def _rows(rows):
    return [(d, k, int(t * S), f, v) for d, k, t, f, v in rows]


@pytest.mark.parametrize("name,rules,rows,expected", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("engine", ["numba", "reference"])
def test_semantics(engine: str, name: str, rules, rows, expected) -> None:
    rows = _rows(rows)
    if engine == "numba":
        got = RulesEngine(rules).process(frame(rows))
    else:
        got = ReferenceEngine(rules).process_rows(rows)
    assert [(t.rule_id, t.subject, t.kind, t.ts / S) for t in got] == expected


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
