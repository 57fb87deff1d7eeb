"""The rules engine: telemetry frames in, alarm transitions out, state carried across batches."""

from __future__ import annotations

import io
import threading
from collections.abc import Mapping
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl

from contracts.config import AnyRuleConfig, DeviceConfig, RuleConfig, StaleRuleConfig
from contracts.geofence import GeofenceConfig
from contracts.rule_config import VEHICLE_FAMILIES
from rules.families import FamilyEngine
from rules.idmap import key_hashes
from rules.threshold import ThresholdEngine
from rules.transition import Transition
from rules.vehicles import VehicleEngine

__all__ = ["RulesEngine", "Transition", "SnapshotError", "rules_at_speed", "SILENCE_AT_SPEED_S"]

#: wall seconds of silence that make a device offline on a sped-up clock (rows come on
#: wall-time periods: a device polled every 5 s is 10 simulated minutes apart at x120)
SILENCE_AT_SPEED_S = 60.0


def rules_at_speed(rules: list[AnyRuleConfig], speed: float) -> list[AnyRuleConfig]:
    """The rules as they run on a clock ``speed`` times the wall's (live, or a backtest of
    history recorded so): a deadman's silence, and the silence within which the tick
    confirms a pending condition, are at least :data:`SILENCE_AT_SPEED_S` of wall time."""
    if speed == 1.0:
        return rules
    floor = SILENCE_AT_SPEED_S * speed
    out: list[AnyRuleConfig] = []
    for r in rules:
        update = {"max_silence_s": max(r.max_silence_s, floor)}
        if isinstance(r, StaleRuleConfig):
            update["silent_s"] = max(r.silent_s, floor)
        out.append(r.model_copy(update=update))
    return out


_SNAPSHOT_VERSION = 1
_THRESHOLD_KEYS = (
    *(f"ser_{c}" for c in ("dev", "kind", "field", "val", "ts")),
    *(f"slot_{c}" for c in ("rule", "dev", "field", "since", "active", "last")),
    "counters",
)


class SnapshotError(ValueError):
    """A state snapshot that cannot be restored."""


class RulesEngine:
    """Rules over telemetry frames (columns device_id, kind, ts, field, value).

    Threshold rules run in :mod:`rules.threshold`; the other families (window, stale,
    flatline, rate, cross, astro, noise, spike) in :mod:`rules.families`; vehicle rules on
    fixes in :mod:`rules.vehicles`. ``devices`` gives astro rules their locations, relative
    thresholds their expected values and vehicles their fleets, ``tz`` the local time of
    day/night limits and banned hours, ``geofences`` the places vehicle rules refer to (a
    rule with none does nothing).
    """

    def __init__(
        self,
        rules: list[AnyRuleConfig],
        out_capacity: int = 1024,
        devices: Mapping[str, DeviceConfig] | None = None,
        tz: ZoneInfo | None = None,
        geofences: list[GeofenceConfig] | None = None,
    ):
        self.all_rules = list(rules)
        self.rules: list[RuleConfig] = [r for r in rules if isinstance(r, RuleConfig)]
        veh = [r for r in rules if r.family in VEHICLE_FAMILIES]
        fam = [
            r for r in rules if not isinstance(r, RuleConfig) and r.family not in VEHICLE_FAMILIES
        ]
        self.thresholds = ThresholdEngine(self.rules, devices, out_capacity)
        self.families = FamilyEngine(fam, devices, tz, out_capacity)  # type: ignore[arg-type]
        self.vehicles = VehicleEngine(veh, geofences, devices, tz, out_capacity)  # type: ignore[arg-type]
        self.transitions = 0
        self._lock = threading.Lock()

    def process(self, frame: pl.DataFrame, hashes: np.ndarray | None = None) -> list[Transition]:
        """Evaluate every rule on a batch, in arrival order; return the transitions it causes.

        ``hashes`` are the rows' key hashes when the caller already has them
        (:func:`rules.idmap.key_hashes`).
        """
        if frame.height == 0:
            return []
        with self._lock:
            out: list[Transition] = []
            if self.families.rules or self.vehicles.rules:
                if hashes is None:
                    hashes = key_hashes(frame)
                out = self.families.process(frame, hashes) + self.vehicles.process(frame, hashes)
            if self.rules:
                out = self.thresholds.process(frame, hashes) + out
            self.transitions += len(out)
            return out

    def tick(self, now_ns: int) -> list[Transition]:
        """Advance the clock to ``now_ns``, the event time up to which rows have arrived
        (the service calls this every second): staleness and collection rules, and pending
        conditions whose rows stopped (devices reporting by exception) confirmed at their
        due times (:mod:`rules.kernels`)."""
        with self._lock:
            out = (
                self.thresholds.tick(now_ns)
                + self.families.tick(now_ns)
                + self.vehicles.tick(now_ns)
            )
            self.transitions += len(out)
            return out

    def stats(self) -> dict[str, int]:
        """Counters: rows evaluated, NaN / late / unused rows ignored, transitions, sizes;
        ``unrated_subjects``: subjects a relative rule skips for want of device attrs."""
        return {
            **self.thresholds.stats(),
            "transitions": self.transitions,
            "family_subjects": self.families.index.n_slots,
            "family_active": int(self.families.active.sum()),
            **{f"vehicle_{k}": v for k, v in self.vehicles.stats().items()},
        }

    def snapshot(self) -> bytes:
        """The engine state (series mapping, latest values, latches) as bytes."""
        with self._lock:
            buf = io.BytesIO()
            np.savez(
                buf,
                version=np.array([_SNAPSHOT_VERSION]),
                **self.thresholds.state(),
                **self.families.state(),
                **self.vehicles.state(),
            )
            return buf.getvalue()

    def restore(self, data: bytes) -> None:
        """Load a snapshot; series and subjects are matched by key, so changed rules are fine."""
        try:
            z = np.load(io.BytesIO(data), allow_pickle=False)
            if int(z["version"][0]) != _SNAPSHOT_VERSION:
                raise SnapshotError(
                    f"snapshot version {int(z['version'][0])}, expected {_SNAPSHOT_VERSION}"
                )
            arrays = {k: z[k] for k in z.files}  # read it all: never half-restore
            thr = {k: arrays[k] for k in _THRESHOLD_KEYS}
        except SnapshotError:
            raise
        except Exception as exc:  # a truncated or foreign file: say so, never half-restore
            raise SnapshotError(f"cannot read snapshot: {exc}") from None
        with self._lock:
            self.thresholds.load_state(thr)
            self.families.load_state({k: v for k, v in arrays.items() if k.startswith("f_")})
            self.vehicles.load_state({k: v for k, v in arrays.items() if k.startswith("v_")})
