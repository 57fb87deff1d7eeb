"""The one simulated clock every simulator of a city runs on.

Simulated epoch seconds are ``t = start + (wall - wall0) × speed``. Everything the devices
*do* follows ``t``: astronomical switching, the dust diurnal cycle, truck trips, fault
windows, scenario timelines and reporting intervals (a tracker that reports every 20 s
reports every 20 simulated seconds, i.e. every 20 / speed wall seconds). Link timers —
reply timeouts, retransmissions, reconnect backoff, keep-alives — stay in wall time: they
belong to the network, not to the simulated world.

What devices write on the wire (``stamp``) is simulated time, so a night run at speed 60
carries the night's times and the ground truth matches them. One exception, and the
default at speed 1: a real-speed clock shifted to another time of day (the live demo
showing the night in the afternoon) stamps wall time, because the pipeline it feeds
judges freshness by its own clock. ``stamps="sim"`` or ``"wall"`` overrides the default.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from contracts.astro import CST

__all__ = ["SimClock", "ClockError", "parse_start"]

_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
MAX_SPEED = 3600.0  # an hour a second: beyond it a 1 s report interval means nothing


class ClockError(ValueError):
    """A clock setting that cannot be used; the message names it."""


def parse_start(start: str | float | None, now: float) -> float | None:
    """Simulated start as epoch seconds: ``HH:MM`` (today, China time), an ISO date-time
    (China time unless it has an offset), epoch seconds, or None (start at ``now``)."""
    if start is None:
        return None
    if isinstance(start, (int, float)) and not isinstance(start, bool):
        return float(start)
    text = str(start).strip()
    if m := _HHMM.fullmatch(text):
        today = datetime.fromtimestamp(now, CST)
        return today.replace(hour=int(m[1]), minute=int(m[2]), second=0, microsecond=0).timestamp()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ClockError(
            f"clock start must be HH:MM or an ISO date-time like 2026-12-21T17:00, got {start!r}"
        ) from None
    return (when if when.tzinfo else when.replace(tzinfo=CST)).timestamp()


class SimClock:
    """Simulated time for a whole simulated city: start, speed and the wire's time base."""

    def __init__(
        self,
        start: str | float | None = None,
        speed: float = 1.0,
        stamps: str | None = None,
        wall: Callable[[], float] = time.time,
        anchor: float | None = None,
    ):
        if not isinstance(speed, (int, float)) or isinstance(speed, bool):
            raise ClockError(f"clock speed must be a number, got {speed!r}")
        if not 0 < speed <= MAX_SPEED:
            raise ClockError(f"clock speed must be in (0, {MAX_SPEED:g}], got {speed!r}")
        if stamps not in (None, "sim", "wall"):
            raise ClockError(f"clock stamps must be 'sim' or 'wall', got {stamps!r}")
        self.start_spec = start
        self.speed = float(speed)
        self.stamps = stamps or ("wall" if self.speed == 1.0 else "sim")
        self._wall = wall
        self.anchor = anchor  # fixed wall time of the start: parts of one city share it
        parse_start(start, wall())  # a bad start fails here, not when the city starts
        self.restart()

    def restart(self) -> None:
        """Anchor the clock: simulated time is ``start`` now, or at the fixed ``anchor``
        (the city calls this when it starts)."""
        self.wall0 = self._wall() if self.anchor is None else float(self.anchor)
        start = parse_start(self.start_spec, self.wall0)
        self.t0 = self.wall0 if start is None else start

    def wall(self) -> float:
        """Wall epoch seconds (the clock's source, replaceable in tests)."""
        return self._wall()

    def now(self) -> float:
        """Simulated epoch seconds now."""
        return self.at(self._wall())

    def at(self, wall: float) -> float:
        """Simulated epoch seconds at wall time ``wall``."""
        return self.t0 + (wall - self.wall0) * self.speed

    def wall_of(self, t: float) -> float:
        """Wall epoch seconds at which simulated time reaches ``t``."""
        return self.wall0 + (t - self.t0) / self.speed

    def elapsed(self, t: float | None = None) -> float:
        """Simulated seconds since the start (at ``t``, default now)."""
        return (self.now() if t is None else t) - self.t0

    def stamp(self, t: float) -> float:
        """Epoch seconds a device writes on the wire for simulated moment ``t``."""
        return t if self.stamps == "sim" else self.wall_of(t)

    def wall_s(self, sim_s: float) -> float:
        """Wall seconds a span of simulated seconds takes."""
        return sim_s / self.speed

    async def sleep_until(self, t: float) -> None:
        """Sleep until simulated time reaches ``t`` (returns at once if it has)."""
        await asyncio.sleep(max(0.0, self.wall_of(t) - self._wall()))

    def describe(self) -> dict[str, Any]:
        """JSON-ready settings: simulated start (ISO, China time), speed, stamps."""
        return {
            "start": datetime.fromtimestamp(self.t0, CST).isoformat(timespec="seconds"),
            "speed": self.speed,
            "stamps": self.stamps,
            "anchor": self.wall0,
        }
