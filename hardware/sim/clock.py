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
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from contracts.astro import CST
from contracts.clock import MAX_SPEED, Clock, ClockError, check_speed, parse_start

__all__ = ["SimClock", "ClockError", "parse_start", "MAX_SPEED"]


class SimClock(Clock):
    """Simulated time for a whole simulated city: start, speed and the wire's time base.

    The arithmetic is the deployment clock's (:class:`contracts.clock.Clock`), so a
    deployment given the same speed, start and anchor reads the same time."""

    def __init__(
        self,
        start: str | float | None = None,
        speed: float = 1.0,
        stamps: str | None = None,
        wall: Callable[[], float] = time.time,
        anchor: float | None = None,
    ):
        speed = check_speed(speed)
        if stamps not in (None, "sim", "wall"):
            raise ClockError(f"clock stamps must be 'sim' or 'wall', got {stamps!r}")
        self.start_spec = start
        self.stamps = stamps or ("wall" if speed == 1.0 else "sim")
        self.anchor = anchor  # fixed wall time of the start: parts of one city share it
        super().__init__(speed, start, anchor, wall)

    def restart(self) -> None:
        """Anchor the clock: simulated time is ``start`` now, or at the fixed ``anchor``
        (the city calls this when it starts)."""
        self.reset(self.anchor, self.start_spec)

    def elapsed(self, t: float | None = None) -> float:
        """Simulated seconds since the start (at ``t``, default now)."""
        return (self.now() if t is None else t) - self.t0

    def stamp(self, t: float) -> float:
        """Epoch seconds a device writes on the wire for simulated moment ``t``."""
        return t if self.stamps == "sim" else self.wall_of(t)

    async def sleep_until(self, t: float) -> None:
        """Sleep until simulated time reaches ``t`` (returns at once if it has)."""
        await asyncio.sleep(max(0.0, self.wall_of(t) - self._wall()))

    def describe(self) -> dict[str, Any]:
        """JSON-ready settings: simulated start (ISO, China time), speed, stamps, anchor.

        ``start`` and ``anchor`` give a deployment's ``clock:`` section the same time."""
        start = datetime.fromtimestamp(self.t0, CST)
        return {
            "start": start.isoformat(timespec="seconds" if not start.microsecond else "auto"),
            "speed": self.speed,
            "stamps": self.stamps,
            "anchor": self.wall0,
        }
