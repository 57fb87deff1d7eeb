"""``rongguan lighting schedule``: almanac-true times, offsets, half-night, bad input."""

from __future__ import annotations

import json
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from rongguan.cli import main
from rongguan.lighting import night_schedule

CST = ZoneInfo("Asia/Shanghai")


def _t(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_winter_solstice_in_chengdu_matches_the_almanac():
    s = night_schedule(30.66, 104.06, date(2026, 12, 21), CST)
    # Almanac: sunset 18:06, next sunrise 07:56 (CST), within two minutes.
    assert abs((_t(s["sunset"]) - datetime(2026, 12, 21, 18, 6, tzinfo=CST)).total_seconds()) <= 120
    assert (
        abs((_t(s["lights_off"]) - datetime(2026, 12, 22, 7, 56, tzinfo=CST)).total_seconds())
        <= 120
    )
    assert s["hours_lit"] == pytest.approx(13.8, abs=0.1)
    assert s["hours_lit_half_night"] == pytest.approx(s["hours_lit"] - 5, abs=0.01)


def test_offsets_move_switching_and_summer_nights_are_short():
    base = night_schedule(30.66, 104.06, date(2026, 6, 21), CST)
    shifted = night_schedule(30.66, 104.06, date(2026, 6, 21), CST, on_offset=15, off_offset=-15)
    assert (_t(shifted["lights_on"]) - _t(base["lights_on"])).total_seconds() == pytest.approx(
        900, abs=60
    )
    assert (_t(base["lights_off"]) - _t(shifted["lights_off"])).total_seconds() == pytest.approx(
        900, abs=60
    )
    assert base["hours_lit"] < 10.5


def test_half_night_is_clipped_to_the_lit_period():
    s = night_schedule(30.66, 104.06, date(2026, 6, 21), CST, half_night=(time(22, 0), time(7, 0)))
    assert s["half_night_off"] == "2026-06-21T22:00+08:00"
    assert s["half_night_on"] == s["lights_off"]  # dawn comes before 07:00


def test_command_prints_json_and_refuses_bad_input(capsys: pytest.CaptureFixture[str]):
    argv = ["lighting", "schedule", "--lat", "30.66", "--lon", "104.06", "--date", "2026-12-21"]
    assert main([*argv, "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["timezone"] == "Asia/Shanghai" and doc["lights_on"].startswith("2026-12-21T18:0")
    assert main(["lighting", "schedule", "--lat", "95", "--lon", "104"]) == 2
    assert "out of range" in capsys.readouterr().out
    assert main([*argv, "--half-night", "nonsense"]) == 2
