"""The rules service: the ingest hook that runs the engine, the alarm book, MQTT and cases."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
import polars as pl

from contracts import clock, topics
from contracts.alarms import AlarmEvent, AlarmState
from contracts.config import DeploymentConfig
from contracts.mqtt import make_client
from rules.alarmpolicy import AlarmPolicy
from rules.alarms import AlarmActionError, AlarmBook
from rules.cases import CaseOutbox, EmbeddedCaseInbox, HttpCaseSink, OutboxWorker, case_record
from rules.engine import RulesEngine, SnapshotError, rules_at_speed

__all__ = ["RulesService", "STATE_FILE", "TICK_LAG_S", "ACTION_ROLES", "policy_of"]

log = logging.getLogger(__name__)

STATE_FILE = "rules-state.bin"
#: Rows reach the engine a few seconds after their event time (the agent's batching,
#: MQTT, ingest): the engine's clock runs this far behind the wall, so that it neither
#: confirms a condition whose releasing row is still on its way nor calls a device silent.
#: Wall seconds: on a sped-up deployment clock it spans ``TICK_LAG_S × speed``.
TICK_LAG_S = 5.0
#: who may act on alarms of which domain (permission is checked here, where the action lands)
ACTION_ROLES: dict[str, frozenset[str]] = {
    "admin": frozenset({"lighting", "dust", "vehicle"}),
    "operator": frozenset({"lighting", "dust", "vehicle"}),
    "lighting_engineer": frozenset({"lighting"}),
    "sanitation_supervisor": frozenset({"vehicle", "dust"}),
}


def policy_of(cfg: DeploymentConfig) -> AlarmPolicy:
    """The alarm policy: defaults, overridden by same-named fields of ``cfg.alarms``."""
    names = ("reopen_s", "flap_count", "flap_window_s", "flap_quiet_s", "storm_window_s")
    return AlarmPolicy(
        **{n: getattr(cfg.alarms, n) for n in names if getattr(cfg.alarms, n, None) is not None}
    )


def _open_store(cfg: DeploymentConfig) -> Any:
    try:
        from ingest.store import open_store

        return open_store(cfg, influx_retries=1)
    except Exception as exc:
        log.error("alarm history disabled: cannot open the store: %s", exc)
        return None


class RulesService:
    """Rules for one deployment: ``on_batch`` is the ingest hook, ``run`` the MQTT side."""

    def __init__(self, cfg: DeploymentConfig, snapshot_every_s: float = 30.0, store: Any = None):
        """``store`` (an ingest TelemetryStore) receives alarm history; built with
        ``ingest.store.open_store(cfg)`` when None, and skipped (logged) when that fails."""
        self.cfg = cfg
        self.snapshot_every_s = snapshot_every_s
        self._rules = {r.id: r for r in cfg.rules}
        devices = {d.id: d for _, d in cfg.devices().values()}
        self.engine = RulesEngine(
            rules_at_speed(cfg.rules, clock.speed()),
            devices=devices,
            tz=cfg.tz,
            geofences=cfg.geofences,
        )
        self.store = store if store is not None else _open_store(cfg)
        self.state_path = cfg.path(STATE_FILE)
        self._restore()
        self._client: mqtt.Client | None = None
        self._connected = threading.Event()
        self._unsent: set[str] = set()
        self._lock = threading.Lock()
        self.counters: dict[str, int] = {
            "batches": 0, "batch_errors": 0, "published": 0, "publish_deferred": 0,
            "actions": 0, "actions_rejected": 0, "cases_enqueued": 0, "snapshots": 0,
            "ticks": 0, "history_written": 0, "history_errors": 0,
        }  # fmt: skip
        self.last_batch_ms = 0.0
        self.book = AlarmBook(
            cfg.path(cfg.alarms.path), self._publish, store_hook=self._history,
            devices=devices, policy=policy_of(cfg), geofences=cfg.geofences,
        )  # fmt: skip
        self.outbox = CaseOutbox(cfg.path("case-outbox.db"))
        if cfg.cases.sink == "http":
            assert cfg.cases.url is not None
            sink: Any = HttpCaseSink(cfg.cases.url, cfg.cases.timeout_s)
        else:
            sink = EmbeddedCaseInbox(cfg.path(cfg.cases.path))
        self.sink = sink
        self.worker = OutboxWorker(self.outbox, sink, self._on_receipt, max_s=cfg.cases.retry_max_s)
        # an alarm may have been stored just before a crash, without its case: enqueue again
        for ev in self.book.without_case():
            rule = self._rules.get(ev.rule_id)
            if rule is not None and not ev.extra.get("parent"):  # a group files one case
                self.outbox.enqueue(case_record(ev, rule))

    def on_batch(self, frame: pl.DataFrame) -> None:
        """The ingest hook: evaluate the rules on a validated telemetry frame; never raises."""
        t0 = time.perf_counter()
        try:
            self._apply(self.engine.process(frame))
            self.counters["batches"] += 1
        except Exception:
            self.counters["batch_errors"] += 1
            log.exception("rules failed on a batch of %d rows", frame.height)
        self.last_batch_ms = (time.perf_counter() - t0) * 1e3

    def tick(self, now_ns: int | None = None) -> None:
        """Run the engine's clock at ``now_ns`` (by default the deployment clock less
        :data:`TICK_LAG_S`): staleness, and pending conditions whose rows stopped; never
        raises."""
        now = clock.now_ns() if now_ns is None else now_ns
        event_now = now - round(clock.scaled(TICK_LAG_S) * 1e9) if now_ns is None else now
        try:
            self._apply(self.engine.tick(event_now))
            self.book.tick(now)
            self.counters["ticks"] += 1
        except Exception:
            self.counters["batch_errors"] += 1
            log.exception("rules tick failed")

    def _apply(self, transitions: list) -> None:
        for tr in transitions:
            rule = self._rules[tr.rule_id]
            res = self.book.on_transition(tr, rule)  # type: ignore[arg-type]
            if res is not None and res[1] and not res[0].extra.get("parent"):
                self.outbox.enqueue(case_record(res[0], rule))  # type: ignore[arg-type]
                self.counters["cases_enqueued"] += 1

    def _history(self, ev: AlarmEvent) -> None:
        if self.store is None:
            return
        try:
            self.store.write_alarm(ev)
            self.counters["history_written"] += 1
        except Exception as exc:  # the store being down must not stop alarms
            self.counters["history_errors"] += 1
            log.warning("cannot write alarm %s to the store: %s", ev.alarm_id, exc)

    async def _ticker(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.to_thread(self.tick)
            try:
                await asyncio.wait_for(stop.wait(), timeout=1.0)
            except TimeoutError:
                pass

    async def run(self, stop: asyncio.Event) -> None:
        """Publish alarms, take operator actions, deliver cases and snapshot until ``stop``."""
        client = make_client(self.cfg.broker, "rongguan-rules")
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client
        client.connect_async(
            self.cfg.broker.host, self.cfg.broker.port, self.cfg.broker.keepalive_s
        )
        client.loop_start()
        self.worker.start()
        ticker = asyncio.create_task(self._ticker(stop), name="rules-tick")
        try:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), timeout=self.snapshot_every_s)
                except TimeoutError:
                    await asyncio.to_thread(self.save_snapshot)
        finally:
            ticker.cancel()
            await asyncio.to_thread(self.save_snapshot)
            await asyncio.to_thread(self.worker.stop)
            client.disconnect()
            client.loop_stop()
            self._client = None

    def save_snapshot(self) -> None:
        """Write the engine state atomically to ``rules-state.bin``."""
        try:
            data = self.engine.snapshot()
            self.state_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(self.state_path)
            self.counters["snapshots"] += 1
        except OSError:
            log.exception("cannot write rules state to %s", self.state_path)

    def metrics(self) -> dict[str, Any]:
        """Engine, alarm, outbox and MQTT counters."""
        return {
            **self.counters,
            "last_batch_ms": round(self.last_batch_ms, 3),
            "connected": self._connected.is_set(),
            "engine": self.engine.stats(),
            "alarms": {**self.book.counters, "active": len(self.book.active())},
            "cases": {**self.outbox.stats(), "delivery_errors": self.worker.errors},
        }

    def _restore(self) -> None:
        if not self.state_path.exists():
            return
        try:
            self.engine.restore(self.state_path.read_bytes())
            log.info("rules state restored from %s", self.state_path)
        except (OSError, SnapshotError) as exc:
            # keep the bad file for inspection; start clean rather than not at all
            log.error("ignoring rules state %s: %s", self.state_path, exc)
            self.state_path.replace(self.state_path.with_suffix(".bad"))

    def _publish(self, ev: AlarmEvent) -> None:
        client = self._client
        if client is None or not self._connected.is_set():
            with self._lock:
                self._unsent.add(ev.alarm_id)
            self.counters["publish_deferred"] += 1
            return
        payload = b"" if ev.state == AlarmState.CLOSED else ev.encode()
        info = client.publish(topics.alarm(ev.alarm_id), payload, qos=1, retain=True)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            with self._lock:
                self._unsent.add(ev.alarm_id)
            self.counters["publish_deferred"] += 1
        else:
            self.counters["published"] += 1

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None
    ) -> None:
        if rc.is_failure:
            log.warning("rules: broker refused connection: %s", rc)
            return
        client.subscribe(topics.alarm_action(), qos=1)
        self._connected.set()
        with self._lock:
            unsent, self._unsent = self._unsent, set()
        for alarm_id in unsent:
            ev = self.book.get(alarm_id)
            if ev is not None:
                self._publish(ev)

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None
    ) -> None:
        self._connected.clear()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            doc = json.loads(msg.payload)
            alarm_id, action = str(doc["alarm_id"]), str(doc["action"])
            user, role, text = (
                str(doc.get("user", "")),
                str(doc.get("role", "")),
                str(doc.get("text", "")),
            )
            ev = self.book.get(alarm_id)
            if ev is None:
                raise AlarmActionError(f"no alarm {alarm_id!r}")
            if ev.domain not in ACTION_ROLES.get(role, frozenset()):
                raise AlarmActionError(f"role {role!r} may not act on {ev.domain} alarms")
            self.book.apply_action(alarm_id, action, user, text)
            self.counters["actions"] += 1
        except (ValueError, KeyError, TypeError) as exc:  # AlarmActionError is a ValueError
            self.counters["actions_rejected"] += 1
            log.warning("rejected alarm action %r: %s", msg.payload[:200], exc)

    def _on_receipt(self, alarm_id: str, receipt: Any) -> None:
        self.book.set_case(alarm_id, receipt)
