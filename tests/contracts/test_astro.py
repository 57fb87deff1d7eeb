"""The astronomical clock against published sunrise/sunset times for Chengdu."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from contracts.astro import CST, lights_on, sun_times, switch_times

CHENGDU = (30.66, 104.06)


def _local(dt: datetime | None) -> datetime:
    assert dt is not None
    return dt.astimezone(CST)


@pytest.mark.parametrize(
    ("day", "sunrise", "sunset"),
    [
        # Published almanac values for Chengdu (30.66 N, 104.06 E), China Standard Time.
        (date(2026, 6, 21), (6, 1), (20, 9)),
        (date(2026, 12, 21), (7, 56), (18, 6)),
        (date(2026, 3, 20), (7, 10), (19, 15)),
    ],
)
def test_sun_times_match_the_almanac(
    day: date, sunrise: tuple[int, int], sunset: tuple[int, int]
) -> None:
    rise, set_ = sun_times(*CHENGDU, day)
    want_rise = datetime(day.year, day.month, day.day, *sunrise, tzinfo=CST)
    want_set = datetime(day.year, day.month, day.day, *sunset, tzinfo=CST)
    assert abs(_local(rise) - want_rise) < timedelta(minutes=3)
    assert abs(_local(set_) - want_set) < timedelta(minutes=3)


def test_brief_targets_summer_and_winter_sunset() -> None:
    assert abs(
        _local(sun_times(*CHENGDU, date(2026, 6, 21))[1])
        - datetime(2026, 6, 21, 20, 10, tzinfo=CST)
    ) < timedelta(minutes=5)
    assert abs(
        _local(sun_times(*CHENGDU, date(2026, 12, 21))[1])
        - datetime(2026, 12, 21, 18, 10, tzinfo=CST)
    ) < timedelta(minutes=5)


def test_lights_follow_the_clock_with_offsets() -> None:
    day = date(2026, 6, 21)
    off, on = switch_times(*CHENGDU, day, on_offset_min=10, off_offset_min=-10)
    assert lights_on(*CHENGDU, on + timedelta(seconds=1), 10, -10)
    assert not lights_on(*CHENGDU, on - timedelta(seconds=1), 10, -10)
    assert lights_on(*CHENGDU, off - timedelta(seconds=1), 10, -10)
    assert not lights_on(*CHENGDU, datetime(2026, 6, 21, 13, 0, tzinfo=CST))
    assert lights_on(*CHENGDU, datetime(2026, 6, 21, 23, 30, tzinfo=CST))
    assert lights_on(*CHENGDU, datetime(2026, 6, 22, 3, 0, tzinfo=CST))


def test_polar_night_has_no_switch_times() -> None:
    rise, set_ = sun_times(80.0, 15.0, date(2026, 12, 21))
    assert rise is None and set_ is None
    with pytest.raises(ValueError):
        switch_times(80.0, 15.0, date(2026, 12, 21))
