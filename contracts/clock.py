"""The deployment's clock: the time every part stamps and judges data by.

Simulated epoch seconds are ``t = start + (wall - anchor) × speed``. By default the clock
is the wall clock (speed 1, no offset). A demo or a test runs the whole deployment faster
(a night in minutes) by giving every process the same ``clock:`` section (speed, start,
anchor): each service installs it once at start-up with :func:`install`, and the sites
that stamp or judge *data time* read :func:`now_ns`. Plumbing (retry backoff, buffer ages,
poll periods, timeouts) stays on the wall: it belongs to the network, not the city.

An allowance for pipeline latency is wall seconds; compared in simulated time it spans
``wall_s × speed`` simulated seconds (:func:`scaled`).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import datetime, tzinfo

from contracts.astro import CST

__all__ = [
    "Clock",
    "ClockError",
    "MAX_SPEED",
    "HHMM",
    "check_speed",
    "parse_start",
    "install",
    "current",
    "now_ns",
    "speed",
    "scaled",
]

MAX_SPEED = 3600.0  # an hour a second: beyond it a 1 s report interval means nothing
HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")


class ClockError(ValueError):
    """A clock setting that cannot be used; the message names it."""


def parse_start(start: str | float | None, now: float) -> float | None:
    """Simulated start as epoch seconds: ``HH:MM`` (the day of ``now``, China time), an ISO
    date-time (China time unless it has an offset), epoch seconds, or None (start at ``now``)."""
    if start is None:
        return None
    if isinstance(start, (int, float)) and not isinstance(start, bool):
        return float(start)
    text = str(start).strip()
    if m := HHMM.fullmatch(text):
        today = datetime.fromtimestamp(now, CST)
        return today.replace(hour=int(m[1]), minute=int(m[2]), second=0, microsecond=0).timestamp()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ClockError(
            f"clock start must be HH:MM or an ISO date-time like 2026-12-21T17:00, got {start!r}"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=CST)).timestamp()


def check_speed(speed: object) -> float:
    """``speed`` as a float in (0, MAX_SPEED]; ClockError names a bad one."""
    if not isinstance(speed, (int, float)) or isinstance(speed, bool):
        raise ClockError(f"clock speed must be a number, got {speed!r}")
    if not 0 < speed <= MAX_SPEED:
        raise ClockError(f"clock speed must be in (0, {MAX_SPEED:g}], got {speed!r}")
    return float(speed)


class Clock:
    """Simulated time ``t0 + (wall - wall0) × speed``; the wall clock itself by default."""

    def __init__(
        self,
        speed: float = 1.0,
        start: str | float | None = None,
        anchor: str | float | None = None,
        wall: Callable[[], float] = time.time,
    ):
        self.speed = check_speed(speed)
        self._wall = wall
        self.reset(anchor, start)

    def reset(self, anchor: str | float | None, start: str | float | None) -> None:
        """Simulated time is ``start`` (default: the anchor) at wall time ``anchor``
        (default: now); an ``HH:MM`` start falls on the anchor's day."""
        wall0 = self._wall() if anchor is None else parse_start(anchor, 0.0)
        assert wall0 is not None
        t0 = parse_start(start, wall0)
        self.wall0 = wall0
        self.t0 = wall0 if t0 is None else t0

    @property
    def is_wall(self) -> bool:
        """Whether this clock is the wall clock (speed 1, no offset)."""
        return self.speed == 1.0 and self.t0 == self.wall0

    def wall(self) -> float:
        """Wall epoch seconds (the clock's source, replaceable in tests)."""
        return self._wall()

    def now(self) -> float:
        """Simulated epoch seconds now."""
        return self.at(self._wall())

    def now_ns(self) -> int:
        """Simulated epoch nanoseconds now (exactly ``time.time_ns()`` for the wall clock)."""
        if self._wall is time.time:
            wall_ns = time.time_ns()
            if self.is_wall:
                return wall_ns
            # integer ns: a float of epoch seconds resolves only ~0.2 µs
            return round(self.t0 * 1e9) + round((wall_ns - round(self.wall0 * 1e9)) * self.speed)
        return round(self.now() * 1e9)

    def at(self, wall: float) -> float:
        """Simulated epoch seconds at wall time ``wall``."""
        return self.t0 + (wall - self.wall0) * self.speed

    def wall_of(self, t: float) -> float:
        """Wall epoch seconds at which simulated time reaches ``t``."""
        return self.wall0 + (t - self.t0) / self.speed

    def wall_s(self, sim_s: float) -> float:
        """Wall seconds a span of simulated seconds takes."""
        return sim_s / self.speed

    def sim_s(self, wall_s: float) -> float:
        """Simulated seconds that pass in ``wall_s`` wall seconds."""
        return wall_s * self.speed

    def local_time(self, tz: tzinfo = CST) -> datetime:
        """The simulated date-time now, in time zone ``tz``."""
        return datetime.fromtimestamp(self.now(), tz)


_current = Clock()


def install(clock: Clock) -> Clock:
    """Make ``clock`` this process's deployment clock (once, at start-up); returns it."""
    global _current
    _current = clock
    return clock


def current() -> Clock:
    """This process's deployment clock."""
    return _current


def now_ns() -> int:
    """Deployment time now, epoch nanoseconds: what data is stamped and judged by."""
    return _current.now_ns()


def speed() -> float:
    """Simulated seconds per wall second of the deployment clock (1 unless sped up)."""
    return _current.speed


def scaled(wall_s: float) -> float:
    """A wall-seconds allowance (pipeline latency, staleness) in simulated seconds."""
    return wall_s * _current.speed
