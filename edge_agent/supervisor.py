"""One supervisor per device: polling on time, timeouts, backoff with jitter, availability.

The supervisor owns its driver: polls and commands take turns under one lock, a lost
connection is closed and reopened with exponential backoff, and the device's
availability follows the outcome:

    online ──failure──► degraded ──OFFLINE_AFTER failures (or no connection)──► offline
       ▲                                                                          │
       └──────────────────────────── a good poll ◄────────────────────────────────┘
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any

from contracts.commands import CommandAction
from contracts.config import DeviceConfig
from contracts.telemetry import TelemetryRow
from drivers import DeviceTimeout, DeviceUnavailable, Driver, DriverError

__all__ = [
    "DeviceSupervisor",
    "OFFLINE_AFTER",
    "STAGGER_MAX_S",
    "backoff_s",
    "stagger_s",
    "RepeatLog",
    "FAIL_LOG_EVERY_S",
]

log = logging.getLogger(__name__)

OFFLINE_AFTER = 3  # consecutive failures before a device counts as offline
MAX_BACKOFF_S = 30.0
FAIL_LOG_EVERY_S = 60.0  # a device that keeps failing is logged this often, not per retry
STAGGER_MAX_S = 5.0  # first polls spread over min(interval, this)
# A driver whose server pushes (OPC-UA subscriptions) wakes its supervisor early; changes
# arriving together are gathered this long and forwarded as one read.
PUSH_GAP_S = 0.05


class RepeatLog:
    """Rate limit for one device's repeated failures: a summary at most every ``every_s``.

    The state change (online → degraded/offline) is logged when it happens; the retries
    after it only count here, and :meth:`due` says when the next summary may go out.
    """

    def __init__(
        self, every_s: float = FAIL_LOG_EVERY_S, clock: Callable[[], float] = time.monotonic
    ):
        self.every_s = every_s
        self._clock = clock
        self._last = -math.inf  # a device failing from the start is reported at once
        self.pending = 0  # failures since the last line logged

    def logged(self) -> None:
        """A line about this device went out now (state change or summary)."""
        self._last = self._clock()
        self.pending = 0

    def due(self) -> int:
        """Count one failure; the failures to report when a summary is due, else 0."""
        self.pending += 1
        if self._clock() - self._last < self.every_s:
            return 0
        n = self.pending
        self.logged()
        return n


def backoff_s(failures: int, interval_s: float, rng: random.Random) -> float:
    """Delay before the next try: doubling from min(interval, 1 s), capped, ±20 % jitter."""
    base = min(interval_s, 1.0)
    cap = max(MAX_BACKOFF_S, interval_s)
    return min(cap, base * 2 ** max(0, failures - 1)) * rng.uniform(0.8, 1.2)


def stagger_s(interval_s: float, rng: random.Random) -> float:
    """Offset of a device's first poll: uniform over min(interval, STAGGER_MAX_S)."""
    return rng.uniform(0, min(interval_s, STAGGER_MAX_S))


class DeviceSupervisor:
    """Polls one device and reports its rows and availability."""

    def __init__(
        self,
        device: DeviceConfig,
        driver: Driver | None,
        sink: Callable[[list[TelemetryRow]], None],
        on_availability: Callable[[str, dict[str, Any]], None],
        *,
        rng: random.Random | None = None,
        config_error: str = "",
    ):
        self.device = device
        self.driver = driver
        self._sink = sink
        self._on_availability = on_availability
        self._rng = rng or random.Random()
        self._lock = asyncio.Lock()
        self._connected = False
        self._repeat = RepeatLog()
        self.failures = 0
        self.state = "offline"
        self.reason = config_error or "not polled yet"
        self.since_ns = time.time_ns()
        self.last_ok_ns: int | None = None
        self.last_latency_ms: float | None = None
        self.latency_sum_s = 0.0  # over successful polls (count: polls_ok), for a mean rate
        self.start_offset_s: float | None = None  # the first poll's stagger, once running
        self.counters = {
            "polls_ok": 0,
            "polls_failed": 0,
            "timeouts": 0,
            "reconnects": 0,
            "rows": 0,
        }

    def availability(self) -> dict[str, Any]:
        """The retained availability document of this device."""
        return {
            "device_id": self.device.id,
            "state": self.state,
            "since_ns": self.since_ns,
            "reason": self.reason,
            "failures": self.failures,
            "last_ok_ns": self.last_ok_ns,
            "latency_ms": self.last_latency_ms,
        }

    def _set_state(self, state: str, reason: str) -> None:
        changed = state != self.state
        self.reason = reason
        if changed:
            self.state = state
            self.since_ns = time.time_ns()
            level = logging.INFO if state == "online" else logging.WARNING
            log.log(level, "device %s is %s (%s)", self.device.id, state, reason or "ok")
            self._repeat.logged()
            self._on_availability(self.device.id, self.availability())
        elif state != "online":
            n = self._repeat.due()
            if n:
                log.warning(
                    "device %s %s since %s: %d failed attempt(s) since the last report; last: %s",
                    self.device.id,
                    state,
                    time.strftime("%H:%M:%S", time.localtime(self.since_ns / 1e9)),
                    n,
                    reason,
                )

    async def _poll_once(self) -> list[TelemetryRow]:
        assert self.driver is not None
        timeout = self.device.timeout_s
        if not self._connected:
            self.counters["reconnects"] += 1
            await asyncio.wait_for(self.driver.connect(), timeout * 2)
            self._connected = True
        t0 = time.perf_counter()
        # Each try of a request may take the whole timeout: the poll allows every retry.
        budget = timeout * (1 + self.device.retries)
        async with asyncio.timeout(budget):  # no extra task per poll, unlike wait_for
            rows = await self.driver.read()
        took = time.perf_counter() - t0
        self.latency_sum_s += took
        self.last_latency_ms = round(took * 1000, 3)
        return rows

    async def poll(self) -> bool:
        """One poll (connecting first if needed); True when it succeeded."""
        if self.driver is None:
            self._set_state("offline", self.reason)
            return False
        async with self._lock:
            try:
                rows = await self._poll_once()
            except asyncio.CancelledError:
                raise
            except (DriverError, TimeoutError) as exc:
                await self._failed(exc)
                return False
            except Exception as exc:  # a driver bug must not take the agent down
                log.exception("device %s: unexpected error in driver", self.device.id)
                await self._failed(DriverError(f"driver bug: {type(exc).__name__}: {exc}"))
                return False
        self.failures = 0
        self.last_ok_ns = time.time_ns()
        self.counters["polls_ok"] += 1
        self.counters["rows"] += len(rows)
        self._set_state("online", "")
        self._sink(rows)
        return True

    async def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.counters["polls_failed"] += 1
        timeout = isinstance(exc, (DeviceTimeout, asyncio.TimeoutError, TimeoutError))
        if timeout:
            self.counters["timeouts"] += 1
        reason = str(exc) or ("timed out" if timeout else type(exc).__name__)
        # A lost connection, or repeated timeouts, mean the session is not to be trusted.
        if (
            isinstance(exc, DeviceUnavailable)
            or self.failures >= OFFLINE_AFTER
            or not self._connected
        ):
            await self._reset()
        offline = self.failures >= OFFLINE_AFTER or self.state == "offline"
        self._set_state("offline" if offline else "degraded", reason)

    async def _reset(self) -> None:
        if self._connected and self.driver is not None:
            try:
                await asyncio.wait_for(self.driver.close(), 5)
            except Exception:
                log.debug("device %s: close failed", self.device.id, exc_info=True)
        self._connected = False

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every ``interval_s`` (first poll staggered) until ``stop`` is set."""
        interval = self.device.interval_s
        # First polls spread over the interval (at most STAGGER_MAX_S): 25,000 devices
        # starting together would time each other out (measured at city size).
        self.start_offset_s = stagger_s(interval, self._rng)
        next_t = time.monotonic() + self.start_offset_s
        while not stop.is_set():
            delay = next_t - time.monotonic()
            if delay > 0 and await _sleep(stop, delay, getattr(self.driver, "changed", None)):
                break
            ok = await self.poll()
            now = time.monotonic()
            if ok and now < next_t:
                pass  # woken early by pushed data: the regular poll stays where it was
            elif ok:
                next_t = max(next_t + interval, now)  # keep the rate, never burst to catch up
            else:
                next_t = now + backoff_s(self.failures, interval, self._rng)
        async with self._lock:
            await self._reset()

    async def execute(self, action: CommandAction, params: dict[str, Any]) -> dict[str, float]:
        """Run a command through the driver, between polls; DriverError on failure."""
        if self.driver is None:
            raise DeviceUnavailable(f"{self.device.id}: {self.reason}")
        async with self._lock:
            try:
                if not self._connected:
                    await asyncio.wait_for(self.driver.connect(), self.device.timeout_s * 2)
                    self._connected = True
                return await asyncio.wait_for(
                    self.driver.execute(action, params), self.device.timeout_s * 2
                )
            except TimeoutError:
                raise DeviceTimeout(
                    f"{self.device.id}: no answer within {self.device.timeout_s * 2} s"
                ) from None
            except DeviceUnavailable:
                await self._reset()
                raise

    def stats(self) -> dict[str, Any]:
        """Counters, state and the driver's own counters."""
        out: dict[str, Any] = {
            **self.counters,
            "state": self.state,
            "latency_ms": self.last_latency_ms,
        }
        if self.driver is not None:
            out.update({f"driver_{k}": v for k, v in self.driver.stats().items()})
        return out


async def _sleep(stop: asyncio.Event, delay: float, changed: asyncio.Event | None) -> bool:
    """Wait up to ``delay`` s, or until the driver has pushed data (then gather
    PUSH_GAP_S more); True when ``stop`` is set."""
    waits = [asyncio.ensure_future(stop.wait())]
    if changed is not None:
        waits.append(asyncio.ensure_future(changed.wait()))
    try:
        await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
    if changed is not None and changed.is_set() and not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), PUSH_GAP_S)
        except TimeoutError:
            pass
    return stop.is_set()
