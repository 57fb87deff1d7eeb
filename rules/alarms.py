"""The alarm book: one alarm per (rule, subject) at a time, its lifecycle, persisted in SQLite.

Every change is committed first (:mod:`rules.alarmdb`), then handed to ``publish`` (MQTT for
the dashboard) and ``store_hook`` (history). Operator actions (:mod:`rules.alarmactions`)
and case receipts go through the same path; :mod:`rules.alarmpolicy` tames noisy conditions.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from contracts import clock  # alarm times are data time: the deployment's clock
from contracts.alarms import ACTIVE_STATES, AlarmEvent, AlarmState, CaseReceipt
from contracts.config import DeviceConfig, RuleConfig
from contracts.geofence import GeofenceConfig
from rules.alarmactions import ACTIONS, Action, AlarmActionError, action_update
from rules.alarmdb import AlarmDB
from rules.alarmpolicy import AlarmPolicy, FlapTracker, group_keys
from rules.transition import Transition

__all__ = ["AlarmBook", "AlarmActionError", "AlarmPolicy", "Action", "ACTIONS"]

log = logging.getLogger(__name__)


class AlarmBook:
    """All alarms, persisted; thread-safe (ingest hook, MQTT callbacks and the case worker)."""

    def __init__(
        self,
        path: Path,
        publish: Callable[[AlarmEvent], None],
        store_hook: Callable[[AlarmEvent], None] | None = None,
        devices: Mapping[str, DeviceConfig] | None = None,
        policy: AlarmPolicy | None = None,
        geofences: Iterable[GeofenceConfig] = (),
    ):
        """``geofences`` name the places vehicle alarms are about (``extra.geofence_name``)."""
        self.path = Path(path)
        self._publish = publish
        self._store_hook = store_hook
        self._devices = dict(devices or {})
        self._geofences = {g.id: g for g in geofences}
        self._lock = threading.RLock()
        self._db = AlarmDB(self.path)
        self.policy = policy or AlarmPolicy()
        self._flaps = FlapTracker(self.policy)
        self._open: dict[tuple[str, str], AlarmEvent] = {
            (ev.rule_id, ev.subject): ev for ev in self._db.active()
        }
        # (rule, subject) -> (alarm id, event time) of its last automatic resolution
        self._resolved: dict[tuple[str, str], tuple[str, int]] = {}
        self.counters = {
            "raised": 0, "updated": 0, "cleared": 0, "actions": 0, "publish_errors": 0,
            "reopened": 0, "flapping": 0, "unflapped": 0, "grouped": 0,
        }  # fmt: skip

    def on_transition(self, tr: Transition, rule: RuleConfig) -> tuple[AlarmEvent, bool] | None:
        """Apply a raise or clear; return (the alarm, whether it was newly opened), or None.

        A newly opened alarm needs a case unless it is a storm child (``extra.parent``).
        """
        with self._lock:
            key = (tr.rule_id, tr.subject)
            ev = self._open.get(key)
            now = clock.now_ns()
            flapping = self._flaps.note(key, tr.ts)
            if ev is None and tr.kind == "clear":
                return None  # already resolved or closed by an operator
            if ev is None:
                ev = self._reopen(key, tr, now)
                if ev is None:
                    ev = self._new(tr, rule, now)
                    self.counters["raised"] += 1
                    self._save(ev, None, "raise", None, notify=False)
                    grouped = False
                    try:  # a storm child goes out once, naming its parent
                        grouped = self._group(ev)
                    finally:  # anything else goes out even if grouping failed
                        if not grouped:
                            self._notify(ev)
                    return self.get(ev.alarm_id) or ev, True
            extra = dict(ev.extra)
            extra["last_transition_ns"] = tr.ts
            if flapping and not extra.get("flapping"):
                extra["flapping"] = True
                extra["flapped"] = extra.get("flapped", 0) + 1
                self.counters["flapping"] += 1
            update: dict = {"extra": extra, "value": tr.value, "updated_ns": now}
            if tr.kind == "raise":
                update.update(condition_active=True, cleared_ns=None, threshold=tr.threshold)
                self.counters["updated"] += 1
                action = "reraise"
            else:
                update.update(condition_active=False, cleared_ns=tr.ts)
                # a flapping alarm is held raised until it has been quiet for a while
                if ev.state == AlarmState.OPEN and not extra.get("flapping"):
                    update["state"] = AlarmState.RESOLVED
                    self._resolved[key] = (ev.alarm_id, tr.ts)
                self.counters["cleared"] += 1
                action = "clear"
            ev = ev.model_copy(update=update)
            self._save(ev, None, action, "flapping" if extra.get("flapping") else None)
            return ev, False

    def tick(self, now_ns: int) -> list[AlarmEvent]:
        """Release flapping alarms quiet since ``flap_quiet_s`` (event time); return them."""
        quiet = int(self.policy.flap_quiet_s * 1e9)
        out = []
        with self._lock:
            horizon = now_ns - int(self.policy.reopen_s * 1e9)
            for key in [k for k, (_, ts) in self._resolved.items() if ts < horizon]:
                del self._resolved[key]  # too old to reopen: keeps the table small
            for key, ev in list(self._open.items()):
                last = ev.extra.get("last_transition_ns", ev.raised_ns)
                if not ev.extra.get("flapping") or now_ns - last < quiet:
                    continue
                update: dict = {"extra": {**ev.extra, "flapping": False}, "updated_ns": now_ns}
                if not ev.condition_active and ev.state == AlarmState.OPEN:
                    update["state"] = AlarmState.RESOLVED
                    self._resolved[key] = (ev.alarm_id, last)
                ev = ev.model_copy(update=update)
                self.counters["unflapped"] += 1
                self._save(ev, None, "unflap", None)
                out.append(ev)
        return out

    def apply_action(self, alarm_id: str, action: str, user: str, text: str = "") -> AlarmEvent:
        """An operator action; raises :class:`AlarmActionError` when it does not apply."""
        if action not in ACTIONS:
            raise AlarmActionError(
                f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}"
            )
        with self._lock:
            ev = self.get(alarm_id)
            if ev is None:
                raise AlarmActionError(f"no alarm {alarm_id!r}")
            update = action_update(ev, action, user, text, clock.now_ns())
            if update.get("state") == AlarmState.RESOLVED:
                self._resolved.pop((ev.rule_id, ev.subject), None)  # an operator's word stands
            ev = ev.model_copy(update=update)
            self.counters["actions"] += 1
            self._save(ev, user, action, text)
            return ev

    def set_case(self, alarm_id: str, receipt: CaseReceipt) -> AlarmEvent | None:
        """Record the case number and status the case system gave this alarm."""
        with self._lock:
            ev = self.get(alarm_id)
            if ev is None:
                return None
            if ev.case_no == receipt.case_no and ev.case_status == receipt.status:
                return ev
            ev = ev.model_copy(
                update={
                    "case_no": receipt.case_no,
                    "case_status": receipt.status,
                    "updated_ns": clock.now_ns(),
                }
            )
            self._save(ev, None, "case", receipt.case_no)
            # the group shares the parent's case
            for child_id in ev.extra.get("children", []):
                child = self.get(child_id)
                if child is not None and child.case_no != receipt.case_no:
                    child = child.model_copy(
                        update={"case_no": receipt.case_no, "case_status": receipt.status}
                    )
                    self._save(child, None, "case", receipt.case_no)
            return ev

    def get(self, alarm_id: str) -> AlarmEvent | None:
        """One alarm by id."""
        with self._lock:
            return self._db.get(alarm_id)

    def active(self) -> list[AlarmEvent]:
        """Alarms that are open, acknowledged, in progress or shelved, newest first."""
        with self._lock:
            return sorted(self._open.values(), key=lambda e: e.raised_ns, reverse=True)

    def recent(self, limit: int = 200) -> list[AlarmEvent]:
        """The most recently changed alarms in any state."""
        with self._lock:
            return self._db.recent(limit)

    def without_case(self) -> list[AlarmEvent]:
        """Alarms that have no case number yet (to re-enqueue after a crash)."""
        with self._lock:
            return self._db.without_case()

    def history(self, alarm_id: str) -> list[tuple[int, str | None, str, str | None]]:
        """(ts_ns, user, action, text) of everything that happened to an alarm."""
        with self._lock:
            return self._db.history(alarm_id)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def _reopen(self, key: tuple[str, str], tr: Transition, now: int) -> AlarmEvent | None:
        """The subject's alarm resolved automatically a moment ago, opened again."""
        last = self._resolved.pop(key, None)
        if last is None or tr.ts - last[1] > self.policy.reopen_s * 1e9:
            return None
        ev = self.get(last[0])
        if ev is None or ev.state != AlarmState.RESOLVED:
            return None
        extra = {**ev.extra, "reopened": ev.extra.get("reopened", 0) + 1,
                 "reraised_ns": [*ev.extra.get("reraised_ns", [])[-49:], tr.ts]}  # fmt: skip
        ev = ev.model_copy(update={"state": AlarmState.OPEN, "extra": extra, "updated_ns": now})
        self.counters["reopened"] += 1
        self._save(ev, None, "reopen", None)
        return ev

    def _group(self, ev: AlarmEvent) -> bool:
        """Make a new alarm the child of a recent alarm of its device or site, if any."""
        window = int(self.policy.storm_window_s * 1e9)
        if window <= 0:
            return False
        keys = set(group_keys(ev))
        for parent in sorted(self._open.values(), key=lambda e: e.raised_ns):
            if parent.alarm_id == ev.alarm_id or parent.extra.get("parent"):
                continue
            recent = parent.extra.get("group_last_ns", parent.raised_ns)
            if abs(ev.raised_ns - recent) > window or not keys & set(group_keys(parent)):
                continue
            children = [*parent.extra.get("children", []), ev.alarm_id]
            pextra = {**parent.extra, "children": children,
                      "group_last_ns": max(recent, ev.raised_ns)}  # fmt: skip
            self._save(parent.model_copy(update={"extra": pextra}), None, "group", ev.alarm_id)
            child = ev.model_copy(
                update={"extra": {**ev.extra, "parent": parent.alarm_id},
                        "case_no": parent.case_no, "case_status": parent.case_status}
            )  # fmt: skip
            self._save(child, None, "child", parent.alarm_id)
            self.counters["grouped"] += 1
            return True
        return False

    def _new(self, tr: Transition, rule: RuleConfig, now: int) -> AlarmEvent:
        dev = self._devices.get(tr.device_id)
        extra: dict = {}
        if dev is not None:
            extra = {"device_name": dev.name, **dev.attrs}
        if tr.geofence:  # the place a vehicle alarm is about, for the map and the case
            extra["geofence"] = tr.geofence
            g = self._geofences.get(tr.geofence)
            if g is not None:
                extra.update(geofence_name=g.name or g.id, geofence_kind=g.kind)
        # a vehicle is where the transition saw it, not where its device config says
        lat = tr.lat if tr.lat is not None else dev.location.lat if dev and dev.location else None
        lon = tr.lon if tr.lon is not None else dev.location.lon if dev and dev.location else None
        return AlarmEvent(
            alarm_id=uuid.uuid4().hex[:12],
            rule_id=rule.id,
            domain=rule.domain,
            device_id=tr.device_id,
            subject=tr.subject,
            field=tr.field,
            severity=rule.severity,
            raised_ns=tr.ts,
            updated_ns=now,
            value=tr.value,
            threshold=tr.threshold,
            message=rule.message or rule.id,
            lat=lat,
            lon=lon,
            extra=extra,
        )

    def _save(
        self, ev: AlarmEvent, user: str | None, action: str, text: str | None, notify: bool = True
    ) -> None:
        self._db.save(ev, user, action, text)
        key = (ev.rule_id, ev.subject)
        if ev.state in ACTIVE_STATES:
            self._open[key] = ev
        elif key in self._open and self._open[key].alarm_id == ev.alarm_id:
            del self._open[key]
        if notify:
            self._notify(ev)

    def _notify(self, ev: AlarmEvent) -> None:
        """Hand a persisted change to MQTT and to the history store."""
        for hook in (self._publish, self._store_hook):
            if hook is None:
                continue
            try:
                hook(ev)
            except Exception:  # a broken subscriber must not lose the alarm (it is persisted)
                self.counters["publish_errors"] += 1
                log.exception("alarm hook failed for %s", ev.alarm_id)
