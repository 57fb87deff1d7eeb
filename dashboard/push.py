"""The pusher: wakes every live session soon after the live store changes.

Sessions used to poll the store on a fixed tick, so a change waited for the next tick
(and for the shared marker cache's own interval) before it left for the browser. The
pusher waits on :attr:`LiveStore.changed` instead; on a change it brings the shared,
per-process caches up to date once (the map markers), then asks each session to apply
what changed, on the session's own event loop. Telemetry wakes it at most once per
``interval_s``: a burst of messages becomes one update per session, and under a constant
stream of changes (a whole city's trucks) sessions update at that rate, not faster.
Alarms and command progress — rare, and what operators wait for — go at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from dashboard.livestore import LiveStore

__all__ = ["Pusher", "DEFAULT_INTERVAL_S"]

log = logging.getLogger("rongguan.dashboard.push")

DEFAULT_INTERVAL_S = 0.1


class Pusher:
    """One background thread per process: store changed → caches refreshed → sessions woken."""

    def __init__(
        self,
        store: LiveStore,
        wake_sessions: Callable[[], int],
        *,
        prepare: Sequence[Callable[[], object]] = (),
        interval_s: float = DEFAULT_INTERVAL_S,
    ) -> None:
        self.store = store
        self.wake_sessions = wake_sessions
        self.prepare = list(prepare)
        self.interval_s = interval_s
        self.counters = {"rounds": 0, "wakes": 0, "errors": 0}
        self.last_round_ms = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-pusher", daemon=True)

    def start(self) -> Pusher:
        """Start the thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread (it finishes the round it is in)."""
        self._stop.set()
        self.store.changed.set()
        self.store.urgent.set()
        self._thread.join(10)

    def round(self) -> int:
        """Refresh the shared caches and wake the sessions once; returns sessions woken."""
        t0 = time.perf_counter()
        for refresh in self.prepare:
            try:
                refresh()
            except Exception:  # noqa: BLE001 - counted; sessions still get the store's changes
                self.counters["errors"] += 1
                log.exception("dashboard cache refresh failed")
        woken = self.wake_sessions()
        self.counters["rounds"] += 1
        self.counters["wakes"] += woken
        self.last_round_ms = (time.perf_counter() - t0) * 1000
        return woken

    def _run(self) -> None:
        changed, urgent = self.store.changed, self.store.urgent
        while not self._stop.is_set():
            changed.wait()
            if self._stop.is_set():
                return
            # Before the round: a change made during it triggers the next one.
            changed.clear()
            urgent.clear()
            started = time.monotonic()
            self.round()
            # Coalesce telemetry: what arrives within the interval goes out together in the
            # next round; an alarm or a command's progress cuts the wait short.
            rest = self.interval_s - (time.monotonic() - started)
            if rest > 0:
                urgent.wait(rest)
