"""The latency benchmark's witness on the broker: when a watched device's telemetry and its
alarms passed, so the end-to-end latency can be split into stages."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt

from contracts import topics
from contracts.alarms import AlarmEvent
from contracts.config import BrokerConfig
from contracts.mqtt import make_client
from contracts.telemetry_arrow import decode_batch

__all__ = ["Probe", "Sighting", "stages", "STAGES"]

#: Stage names in path order (ms each); "rules" only exists on the alarm path.
STAGES = ("sim_apply", "device_to_agent", "agent_batch", "broker_hop", "ingest_rules", "dashboard")


@dataclass(slots=True)
class Sighting:
    """A watched row seen on the broker: its read time, its batch's send time, arrival here."""

    device: str
    field: str
    value: float | None
    row_ts: float
    sent: float
    arrival: float


@dataclass
class Probe:
    """A plain MQTT subscriber on the demo's broker; notes rows and alarms of watched devices."""

    broker: BrokerConfig
    devices: set[str]
    fields: set[str] = field(default_factory=lambda: {"door_open", "pm10"})
    rows: list[Sighting] = field(default_factory=list)
    alarms: list[tuple[float, AlarmEvent]] = field(default_factory=list)
    bad: int = 0  # payloads the probe could not read (counted, never silently skipped)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ready: threading.Event = field(default_factory=threading.Event)
    _client: Any = None

    def start(self, timeout_s: float = 30.0) -> Probe:
        """Connect and subscribe; raises when the broker does not confirm in time."""
        c = make_client(self.broker, "rg-latency-probe")
        c.on_connect = lambda cl, *_a: cl.subscribe(
            [(topics.telemetry_filter(), 0), (topics.alarm_filter(), 0)]
        )
        c.on_subscribe = lambda *_a: self._ready.set()
        c.on_message = self._on_message
        c.connect(self.broker.host, self.broker.port)
        c.loop_start()
        self._client = c
        if not self._ready.wait(timeout_s):
            raise RuntimeError(f"latency probe: no SUBACK from {self.broker.url}")
        return self

    def stop(self) -> None:
        """Disconnect."""
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.time()
        try:
            if msg.topic.startswith(topics.alarm("")):
                if msg.payload:
                    ev = AlarmEvent.decode(msg.payload)
                    if ev.device_id in self.devices:
                        with self._lock:
                            self.alarms.append((now, ev))
                return
            b = decode_batch(msg.payload)
            seen = [
                Sighting(d, f, v, ts / 1e9, b.sent_ns / 1e9, now)
                for d, f, v, ts in zip(b.device_id, b.field_name, b.value, b.ts)
                if d in self.devices and f in self.fields
            ]
            with self._lock:
                self.rows.extend(seen)
        except Exception:  # noqa: BLE001 - counted; the probe must keep listening
            self.bad += 1

    def first_row(self, device: str, fld: str, after: float, hit: Any) -> Sighting | None:
        """The first row of ``device.fld`` read after ``after`` whose value satisfies ``hit``."""
        with self._lock:
            rows = list(self.rows)
        return next(
            (r for r in rows if r.device == device and r.field == fld and r.arrival >= after
             and r.value is not None and hit(r.value)),
            None,
        )  # fmt: skip

    def first_alarm(self, device: str, rule: str, after: float) -> float | None:
        """When the first active alarm of ``rule`` on ``device`` passed after ``after``."""
        with self._lock:
            seen = list(self.alarms)
        return next(
            (t for t, ev in seen if ev.device_id == device and ev.rule_id == rule and t >= after
             and ev.condition_active),
            None,
        )  # fmt: skip


def stages(
    injected: float,
    device: float,
    row: Sighting | None,
    alarm_at: float | None,
    shown: float | None,
) -> dict[str, float] | None:
    """One injection's path split into stages (ms), or None when a step was not seen.

    ``sim_apply`` (injection until the device itself shows the fault) is the simulator's,
    not the system's: the latency the goal is about starts at ``device``.
    """
    if row is None or shown is None:
        return None
    out = {
        "sim_apply": device - injected,
        "device_to_agent": row.row_ts - device,
        "agent_batch": row.sent - row.row_ts,
        "broker_hop": row.arrival - row.sent,
    }
    base = row.arrival
    if alarm_at is not None:
        out["ingest_rules"] = alarm_at - row.arrival
        base = alarm_at
    out["dashboard"] = shown - base
    return {k: v * 1000 for k, v in out.items()}
