"""The shipped power-factor rule judges a cabinet under load, not a dark one (pf reads 0)."""

from __future__ import annotations

from rules.defaults import load_default_rules
from rules.engine import RulesEngine
from tests.rules._helpers import LC, S, frame


def _cabinet(minutes: int, pf: float, kw: float) -> list[tuple]:
    rows = []
    for t in range(0, minutes * 60, 30):
        rows += [("LC-1", LC, t * S, "active_power", kw), ("LC-1", LC, t * S, "power_factor", pf)]
    return rows


def _raised(rows: list[tuple]) -> list[str]:
    rules = [r for r in load_default_rules() if r.id == "lighting.power_factor_low"]
    got = RulesEngine(rules).process(frame(rows))
    return [t.kind for t in got]


def test_a_dark_cabinet_raises_no_power_factor_alarm() -> None:
    assert _raised(_cabinet(30, pf=0.0, kw=0.0)) == []


def test_a_lit_cabinet_with_a_poor_power_factor_raises_after_ten_minutes() -> None:
    assert _raised(_cabinet(30, pf=0.5, kw=6.0)) == ["raise"]


def test_lamps_going_off_then_silence_raises_nothing_on_the_clock() -> None:
    """Report by exception: pf drops to 0 (before the power does, in the same poll), then
    only a keep-alive comes; the clock's confirmation past 10 min sees the guard fail,
    where the same silence under load raises."""
    rules = [r for r in load_default_rules() if r.id == "lighting.power_factor_low"]
    lit = _cabinet(5, pf=0.9, kw=6.0)
    off = 5 * 60 * S
    for pf, kw, raised in ((0.0, 0.0, []), (0.5, 6.0, ["raise"])):
        eng = RulesEngine(rules)
        change = [("LC-1", LC, off, "power_factor", pf), ("LC-1", LC, off, "active_power", kw)]
        heard = [("LC-1", LC, off + 400 * S, "active_power", kw)]  # a keep-alive, unchanged
        assert eng.process(frame(lit + change + heard)) == []
        assert [t.kind for t in eng.tick(off + 700 * S)] == raised, (pf, kw)
