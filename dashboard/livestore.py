"""The one live data store of a dashboard process.

One background MQTT thread (:mod:`dashboard.feed`) writes into it and sets
:attr:`LiveStore.changed`; the pusher (:mod:`dashboard.push`) then wakes every browser
session, which asks only for what changed since the version it last saw
(:meth:`LiveStore.changes_since`). The change log is bounded: a session that fell further
behind than the log reaches gets ``None`` and re-reads everything.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict, deque

from contracts import clock  # data time: the deployment's clock
from contracts.alarms import ACTIVE_STATES, AlarmEvent
from contracts.commands import Command, CommandAck
from contracts.telemetry import TelemetryBatch
from contracts.telemetry_arrow import decode_batch
from dashboard.records import Changes, CommandProgress, DeviceInfo, devices_from_config

__all__ = ["DeviceInfo", "CommandProgress", "Changes", "LiveStore", "devices_from_config"]

log = logging.getLogger("rongguan.dashboard.store")

#: Categories of change a session can ask about.
DEVICE, ALARM, COMMAND = "device", "alarm", "command"


class LiveStore:
    """Latest values, positions, availability, alarms and command progress; thread-safe."""

    def __init__(
        self,
        devices: dict[str, DeviceInfo] | None = None,
        *,
        max_changes: int = 50_000,
        max_devices: int = 200_000,
        max_alarms: int = 20_000,
        max_commands: int = 1_000,
    ) -> None:
        self._lock = threading.Lock()
        self._devices: dict[str, DeviceInfo] = dict(devices or {})
        self._alarms: OrderedDict[str, AlarmEvent] = OrderedDict()
        self._commands: OrderedDict[str, CommandProgress] = OrderedDict()
        self._log: deque[tuple[int, str, str]] = deque(maxlen=max_changes)
        self._version = 0
        #: Set on every change (cleared by whoever waits on it: the pusher).
        self.changed = threading.Event()
        #: Set on changes people wait for (alarms, command progress): pushed without pacing.
        self.urgent = threading.Event()
        self._max_devices = max_devices
        self._max_alarms = max_alarms
        self._max_commands = max_commands
        #: Counters for the health of the feed: bad input is counted, never raised.
        self.counters: dict[str, int] = {
            "batches": 0, "rows": 0, "bad_batches": 0, "bad_alarms": 0, "bad_acks": 0,
            "bad_availability": 0, "unknown_devices": 0, "devices_refused": 0,
            "alarms_evicted": 0, "commands_evicted": 0, "unknown_acks": 0,
        }  # fmt: skip

    # ---- writers (the feed thread) -------------------------------------------------

    @property
    def version(self) -> int:
        """Grows by one for every change recorded."""
        return self._version

    def _changed(self, category: str, key: str) -> None:
        self._version += 1
        self._log.append((self._version, category, key))
        if not self.changed.is_set():  # a plain read; set() takes a lock, once is enough
            self.changed.set()
        if category != DEVICE and not self.urgent.is_set():
            self.urgent.set()

    def _device(self, device_id: str, kind: str, agent: str | None) -> DeviceInfo | None:
        dev = self._devices.get(device_id)
        if dev is None:
            if len(self._devices) >= self._max_devices:
                self.counters["devices_refused"] += 1
                return None
            # Not in this dashboard's config: shown with what the telemetry tells.
            self.counters["unknown_devices"] += 1
            dev = DeviceInfo(device_id, kind, device_id, agent, configured=False)
            self._devices[device_id] = dev
        elif dev.agent is None and agent:
            dev.agent = agent
        return dev

    def apply_batch(self, batch: TelemetryBatch) -> int:
        """Take a decoded telemetry batch; returns the number of devices changed."""
        touched: set[str] = set()
        with self._lock:
            self.counters["batches"] += 1
            self.counters["rows"] += len(batch)
            for dev_id, kind, ts, name, value in zip(
                batch.device_id, batch.kind, batch.ts, batch.field_name, batch.value
            ):
                dev = self._device(dev_id, kind, batch.agent)
                if dev is None:
                    continue
                # Late rows (store-and-forward replay) must not overwrite newer values.
                if ts < dev.ts.get(name, 0):
                    continue
                dev.values[name] = value
                dev.ts[name] = ts
                dev.last_ns = max(dev.last_ns, ts)
                touched.add(dev_id)
            for dev_id in touched:
                self._changed(DEVICE, dev_id)
        return len(touched)

    def apply_batch_payload(self, payload: bytes) -> None:
        """Decode and take a telemetry batch from the wire; bad payloads are counted."""
        try:
            batch = decode_batch(payload)  # wire v1 JSON or v2 Arrow, sniffed
        except ValueError as exc:
            with self._lock:
                self.counters["bad_batches"] += 1
            log.warning("bad telemetry batch: %s", exc)
            return
        self.apply_batch(batch)

    def apply_availability(self, device_id: str, payload: bytes) -> None:
        """Take a retained availability message (JSON with ``state``; empty = unknown)."""
        state: str | None = None
        if payload:
            try:
                doc = json.loads(payload)
                state = str(doc["state"]) if isinstance(doc, dict) else str(doc)
            except (ValueError, KeyError) as exc:
                with self._lock:
                    self.counters["bad_availability"] += 1
                log.warning("bad availability for %s: %s", device_id, exc)
                return
        with self._lock:
            dev = self._devices.get(device_id) or self._device(device_id, "unknown", None)
            if dev is not None and dev.availability != state:
                dev.availability = state
                self._changed(DEVICE, device_id)

    def apply_alarm(self, alarm_id: str, payload: bytes) -> None:
        """Take a retained alarm (an empty payload removes it)."""
        if not payload:
            with self._lock:
                if self._alarms.pop(alarm_id, None) is not None:
                    self._changed(ALARM, alarm_id)
            return
        try:
            event = AlarmEvent.decode(payload)
        except ValueError as exc:
            with self._lock:
                self.counters["bad_alarms"] += 1
            log.warning("bad alarm %s: %s", alarm_id, exc)
            return
        with self._lock:
            self._alarms[event.alarm_id] = event
            self._alarms.move_to_end(event.alarm_id)
            self._changed(ALARM, event.alarm_id)
            while len(self._alarms) > self._max_alarms:
                # Evict the oldest inactive alarm first; active ones only when nothing else is left.
                victim = next(
                    (k for k, a in self._alarms.items() if a.state not in ACTIVE_STATES),
                    next(iter(self._alarms)),
                )
                del self._alarms[victim]
                self.counters["alarms_evicted"] += 1
                self._changed(ALARM, victim)

    def add_command(self, command: Command, agent: str) -> None:
        """Record a command this process published, so its acks have somewhere to land."""
        with self._lock:
            self._commands[command.command_id] = CommandProgress(
                command, agent, steps=[("issued", clock.now_ns())]
            )
            self._changed(COMMAND, command.command_id)
            while len(self._commands) > self._max_commands:
                old, _ = self._commands.popitem(last=False)
                self.counters["commands_evicted"] += 1
                self._changed(COMMAND, old)

    def apply_ack(self, payload: bytes) -> None:
        """Take a command progress report; acks for commands of other processes are counted."""
        try:
            ack = CommandAck.decode(payload)
        except ValueError as exc:
            with self._lock:
                self.counters["bad_acks"] += 1
            log.warning("bad command ack: %s", exc)
            return
        with self._lock:
            prog = self._commands.get(ack.command_id)
            if prog is None:
                self.counters["unknown_acks"] += 1
                return
            if prog.terminal:
                return  # a late duplicate after the final state must not move it back
            prog.state = ack.state.value
            prog.detail = ack.detail
            prog.readback = dict(ack.readback)
            prog.steps.append((ack.state.value, ack.ts_ns))
            self._changed(COMMAND, ack.command_id)

    # ---- readers (sessions) --------------------------------------------------------

    def changes_since(self, version: int) -> Changes | None:
        """What changed after ``version``; None when the log no longer reaches back that far."""
        with self._lock:
            if version >= self._version:
                return Changes(self._version, frozenset(), frozenset(), frozenset())
            if not self._log or self._log[0][0] > version + 1:
                return None
            found: dict[str, set[str]] = {DEVICE: set(), ALARM: set(), COMMAND: set()}
            for ver, category, key in reversed(self._log):
                if ver <= version:
                    break
                found[category].add(key)
            return Changes(self._version, frozenset(found[DEVICE]), frozenset(found[ALARM]),
                           frozenset(found[COMMAND]))  # fmt: skip

    def devices(
        self, ids: frozenset[str] | set[str] | None = None, kind: str | None = None
    ) -> list[DeviceInfo]:
        """Copies of the devices (all, or those with the given ids), optionally of one kind."""
        with self._lock:
            pool = (
                self._devices.values()
                if ids is None
                else (self._devices[i] for i in ids if i in self._devices)
            )
            return [d.snapshot() for d in pool if kind is None or d.kind == kind]

    def device(self, device_id: str) -> DeviceInfo | None:
        """A copy of one device, or None."""
        with self._lock:
            dev = self._devices.get(device_id)
            return dev.snapshot() if dev else None

    def alarms(
        self, ids: frozenset[str] | set[str] | None = None, *, active_only: bool = False
    ) -> list[AlarmEvent]:
        """Alarms (all, or those with the given ids that still exist), newest update last."""
        with self._lock:
            pool = (
                list(self._alarms.values())
                if ids is None
                else [self._alarms[i] for i in ids if i in self._alarms]
            )
        return [a for a in pool if not active_only or a.state in ACTIVE_STATES]

    def has_alarm(self, alarm_id: str) -> bool:
        """True while the alarm is known."""
        with self._lock:
            return alarm_id in self._alarms

    def command(self, command_id: str) -> CommandProgress | None:
        """A copy of one command's progress."""
        with self._lock:
            p = self._commands.get(command_id)
            if p is None:
                return None
            return CommandProgress(
                p.command, p.agent, p.state, p.detail, dict(p.readback), list(p.steps)
            )

    def stats(self) -> dict[str, int]:
        """Counters and sizes, for health pages and tests."""
        with self._lock:
            return {**self.counters, "devices": len(self._devices), "alarms": len(self._alarms),
                    "commands": len(self._commands), "version": self._version,
                    "log": len(self._log)}  # fmt: skip
