"""The deployment clock: its arithmetic, the process-wide instance, and its config section."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

import pytest

from contracts import clock
from contracts.astro import CST
from contracts.clock import Clock, ClockError
from contracts.commands import Command, CommandAction
from contracts.config import ConfigError, parse_config

ANCHOR = datetime(2026, 12, 21, 9, 0, tzinfo=CST).timestamp()  # a morning, China time


class FakeWall:
    """A wall clock the test moves by hand."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def installed() -> Iterator[None]:
    """Restore the wall clock after a test that installs another."""
    before = clock.current()
    yield
    clock.install(before)


def test_default_is_the_wall_clock():
    c = Clock()
    assert c.is_wall and c.speed == 1.0
    before = time.time_ns()
    now = c.now_ns()
    assert before <= now <= time.time_ns()
    assert clock.current().is_wall  # nothing configured: the process runs on the wall


def test_simulated_time_is_start_plus_wall_elapsed_times_speed():
    wall = FakeWall(ANCHOR)
    c = Clock(speed=120, start="17:30", anchor=ANCHOR, wall=wall)
    start = datetime(2026, 12, 21, 17, 30, tzinfo=CST).timestamp()  # HH:MM: the anchor's day
    assert c.t0 == start and not c.is_wall
    assert c.now() == start
    wall.t += 10  # ten wall seconds are twenty simulated minutes
    assert c.now() == start + 1200
    assert c.now_ns() == round((start + 1200) * 1e9)
    assert c.wall_of(start + 1200) == ANCHOR + 10
    assert c.wall_s(1200) == 10 and c.sim_s(10) == 1200
    assert c.local_time().strftime("%H:%M") == "17:50"
    wall.t = ANCHOR - 30  # before the anchor the clock runs too, behind the start
    assert c.now() == start - 3600


def test_real_wall_at_speed_counts_whole_nanoseconds():
    anchor = time.time()
    c = Clock(speed=60, start=anchor + 86400, anchor=anchor)
    expected = (anchor + 86400 + (time.time() - anchor) * 60) * 1e9
    assert abs(c.now_ns() - expected) < 60e9  # within a wall second of the formula
    assert isinstance(c.now_ns(), int)


@pytest.mark.parametrize("speed", [0, -1, 3601, "fast", True])
def test_bad_speed_is_refused(speed):
    with pytest.raises(ClockError, match="speed"):
        Clock(speed=speed)


def test_bad_start_is_refused():
    with pytest.raises(ClockError, match="HH:MM or an ISO"):
        Clock(start="half past five", anchor=ANCHOR)


def test_installed_clock_drives_now_and_allowances(installed):
    wall = FakeWall(ANCHOR)
    clock.install(Clock(speed=300, start=ANCHOR + 3600, anchor=ANCHOR, wall=wall))
    assert clock.speed() == 300
    assert clock.now_ns() == round((ANCHOR + 3600) * 1e9)
    assert clock.scaled(5.0) == 1500.0
    # a command's time to live is wall seconds: 30 s are 9,000 simulated seconds at ×300
    cmd = Command(device_id="LC-0001", action=CommandAction.SWITCH_CIRCUIT)
    assert cmd.issued_ns == clock.now_ns()
    wall.t += 29
    assert not cmd.expired()
    wall.t += 2
    assert cmd.expired()


def _err(section: dict) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_config({"clock": section}, "deploy.yaml")
    assert len(exc.value.errors) == 1
    return exc.value.errors[0]


def test_config_section_builds_the_clock():
    cfg = parse_config(
        {"clock": {"speed": 120, "start": "17:30", "anchor": "2026-12-21T09:00"}}, "d.yaml"
    )
    c = cfg.clock.build()
    assert (c.speed, c.wall0) == (120.0, ANCHOR)
    assert c.t0 == datetime(2026, 12, 21, 17, 30, tzinfo=CST).timestamp()
    assert parse_config({}, "d.yaml").clock.build().is_wall


def test_config_errors_name_file_field_and_value():
    assert _err({"speed": 0, "anchor": ANCHOR}).startswith("deploy.yaml: clock.speed: ")
    assert "(got 5000)" in _err({"speed": 5000, "anchor": ANCHOR})
    e = _err({"start": "25:61", "anchor": ANCHOR})
    assert e.startswith("deploy.yaml: clock.start: ") and "'25:61'" in e
    assert "anchor is needed" in _err({"speed": 60})
    assert "anchor is needed" in _err({"start": "17:30"})
    assert "not HH:MM" in _err({"speed": 2, "anchor": "09:00"})
    assert "clock.surprise" in _err({"surprise": 1})


def test_config_error_points_at_the_line(tmp_path):
    from contracts.config import load_config

    path = tmp_path / "d.yaml"
    path.write_text("site: x\nclock:\n  speed: 120\n  start: noon\n  anchor: 1796000000\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)
    assert exc.value.errors[0].startswith(f"{path}:4: clock.start: ")


def test_an_unquoted_hh_mm_in_yaml_is_refused_not_read_as_1970(tmp_path):
    from contracts.config import load_config

    path = tmp_path / "d.yaml"
    path.write_text("site: x\nclock:\n  speed: 120\n  start: 17:30\n  anchor: 8:00\n")
    with pytest.raises(ConfigError) as exc:
        load_config(path)  # YAML 1.1 reads 17:30 as 1050 and 8:00 as 480
    assert len(exc.value.errors) == 2 and all("quote it" in e for e in exc.value.errors)
    path.write_text('site: x\nclock:\n  speed: 120\n  start: "17:30"\n  anchor: 1796000000\n')
    assert load_config(path).clock.build().t0 > 1796000000 - 86400
