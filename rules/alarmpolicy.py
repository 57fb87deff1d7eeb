"""How the alarm book tames noisy conditions: re-raise, flapping suppression, storm grouping.

Pure bookkeeping (no I/O) so it can be reasoned about and tested on its own; the
:class:`rules.alarms.AlarmBook` applies it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from contracts.alarms import AlarmEvent

__all__ = ["AlarmPolicy", "FlapTracker", "group_keys", "SITE_ATTRS"]

S = 1_000_000_000

#: device attributes naming a construction site, most specific first
SITE_ATTRS = ("permit_no", "site", "site_name")


@dataclass(frozen=True, slots=True)
class AlarmPolicy:
    """Thresholds of the alarm book; all times in seconds of event time."""

    #: a raise within this long of the subject's automatic resolution reopens that alarm
    #: (same id, same case) instead of filing a new one
    reopen_s: float = 600.0
    #: more than ``flap_count`` raises and clears within ``flap_window_s`` is flapping
    flap_count: int = 4
    flap_window_s: float = 600.0
    #: a flapping alarm is released after this long without a raise or clear
    flap_quiet_s: float = 300.0
    #: alarms of one device (a cabinet's circuits) or one site raised within this long of
    #: the group's last member are children of the first; 0 disables grouping
    storm_window_s: float = 60.0


class FlapTracker:
    """Recent raise/clear times per (rule, subject); bounded to what the decision needs."""

    def __init__(self, policy: AlarmPolicy, max_keys: int = 100_000):
        self.policy = policy
        self.max_keys = max_keys
        self.evicted = 0  # keys dropped because the table was full (oldest first)
        self._times: dict[tuple[str, str], deque[int]] = {}

    def note(self, key: tuple[str, str], ts: int) -> bool:
        """Record a transition at ``ts``; True when the subject is now flapping."""
        times = self._times.get(key)
        if times is None:
            if len(self._times) >= self.max_keys:
                del self._times[next(iter(self._times))]
                self.evicted += 1
            times = self._times[key] = deque(maxlen=self.policy.flap_count + 1)
        times.append(ts)
        horizon = ts - int(self.policy.flap_window_s * S)
        return len(times) > self.policy.flap_count and times[0] >= horizon

    def last(self, key: tuple[str, str]) -> int | None:
        """The time of the subject's last transition, if remembered."""
        times = self._times.get(key)
        return times[-1] if times else None


def group_keys(ev: AlarmEvent) -> list[str]:
    """What an alarm may be grouped by: its device, and its construction site if it has one."""
    keys = [f"device:{ev.device_id}"]
    for attr in SITE_ATTRS:
        site = ev.extra.get(attr)
        if site:
            keys.append(f"site:{site}")
            break
    return keys
