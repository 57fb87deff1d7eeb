"""Wall-screen figures computed from the live store's devices and alarms (pure functions)."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from contracts import clock  # data time: the deployment's clock
from contracts.alarms import ACTIVE_STATES, AlarmEvent
from dashboard.alarmgroups import group_alarms, severity_counts
from dashboard.livestore import DeviceInfo, LiveStore

__all__ = [
    "Kpis",
    "KpiCache",
    "compute_kpis",
    "is_online",
    "circuits_of",
    "LAMP_ON_MIN_CURRENT_A",
    "PM10_WARN",
    "STALE_S",
    "LAYER_STALE_S",
    "ROAD_TARGETS",
]

LAMP_ON_MIN_CURRENT_A = 0.5  # a circuit commanded on that draws less is counted dark
PM10_WARN = 150.0  # µg/m³, the city's hourly site warning (GB 3095 24-h grade II is 150 too)
STALE_S = 300.0  # a device silent this long is not counted online / on duty
LAYER_STALE_S = 120.0  # a whole layer with no telemetry this long gets a staleness badge
#: lamp-on rate targets by road class (the city's lighting assessment)
ROAD_TARGETS: dict[str, float] = {"main": 0.98, "secondary": 0.96}
_CIRCUIT = re.compile(r"^circuit(\d+)_on$")


@dataclass(slots=True)
class Kpis:
    """The KPI tiles' figures."""

    online: dict[str, tuple[int, int]] = field(default_factory=dict)  # kind -> (online, total)
    lamp_on_rate: float | None = None  # share of circuits on that really draw current
    lamp_by_road: dict[str, float | None] = field(default_factory=dict)  # road class -> rate
    newest_ns: dict[str, int] = field(default_factory=dict)  # kind -> newest telemetry ts
    circuits_on: int = 0
    dust_exceedances: int = 0
    trucks_on_duty: int = 0
    trucks_total: int = 0
    alarms: dict[str, int] = field(default_factory=dict)  # severity -> active groups
    alarms_total: int = 0  # active alarms, storm children included


def circuits_of(dev: DeviceInfo) -> list[int]:
    """Circuit numbers a cabinet reports, ascending."""
    return sorted(int(m.group(1)) for k in dev.values if (m := _CIRCUIT.match(k)))


def is_online(dev: DeviceInfo, now_ns: int) -> bool:
    """Online per the agent's availability if known, else by fresh telemetry."""
    if dev.availability is not None:
        return dev.availability == "online"
    # STALE_S allows for wall-time polling and latency: on a sped-up clock it spans more
    return dev.last_ns > 0 and (now_ns - dev.last_ns) < clock.scaled(STALE_S) * 1e9


def compute_kpis(devices: list[DeviceInfo], alarms: list[AlarmEvent], now_ns: int) -> Kpis:
    """All tiles in one pass over the devices."""
    k = Kpis()
    online: Counter[str] = Counter()
    total: Counter[str] = Counter()
    lit = 0
    road_on: Counter[str] = Counter()
    road_lit: Counter[str] = Counter()
    newest: dict[str, int] = {}
    for dev in devices:
        total[dev.kind] += 1
        if dev.last_ns > newest.get(dev.kind, 0):
            newest[dev.kind] = dev.last_ns
        up = is_online(dev, now_ns)
        online[dev.kind] += up
        if dev.kind == "lighting_cabinet":
            road = dev.attrs.get("road_class", "")
            for n in circuits_of(dev):
                if dev.values.get(f"circuit{n}_on"):
                    k.circuits_on += 1
                    cur = dev.values.get(f"circuit{n}_current")
                    ok = cur is not None and cur > LAMP_ON_MIN_CURRENT_A
                    lit += ok
                    road_on[road] += 1
                    road_lit[road] += ok
        elif dev.kind == "dust_monitor":
            pm10 = dev.values.get("pm10")
            k.dust_exceedances += pm10 is not None and pm10 > PM10_WARN
        elif dev.kind == "vehicle":
            k.trucks_total += 1
            k.trucks_on_duty += up and dev.last_ns > 0
    k.online = {kind: (online[kind], total[kind]) for kind in sorted(total)}
    k.lamp_on_rate = lit / k.circuits_on if k.circuits_on else None
    k.lamp_by_road = {r: (road_lit[r] / road_on[r] if road_on[r] else None) for r in ROAD_TARGETS}
    k.newest_ns = newest
    active = [a for a in alarms if a.state in ACTIVE_STATES]
    # A storm (one cabinet's circuits, one site) counts once, at its worst severity.
    k.alarms = severity_counts(group_alarms(active))
    k.alarms_total = len(active)
    return k


class KpiCache:
    """KPIs computed at most once per ``min_interval_s`` per process, shared by all sessions."""

    def __init__(self, store: LiveStore, min_interval_s: float = 1.0) -> None:
        self.store = store
        self.min_interval_s = min_interval_s
        self._lock = threading.Lock()
        self._at = -1e18
        self._version = -1
        self._value = Kpis()

    def get(self) -> Kpis:
        """The current figures (recomputed when the store changed and the interval passed)."""
        with self._lock:
            now = time.monotonic()
            changed = self._version != self.store.version and now - self._at >= self.min_interval_s
            # Silence changes nothing in the store, yet makes devices go stale: recompute anyway.
            if changed or now - self._at >= 10 * self.min_interval_s:
                self._version = self.store.version
                self._at = now
                self._value = compute_kpis(
                    self.store.devices(), self.store.alarms(), clock.now_ns()
                )
            return self._value
