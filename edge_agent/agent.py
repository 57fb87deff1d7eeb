"""The edge agent: one supervisor per device, one outbox, one MQTT link, commands.

The device set can change while the agent runs (:meth:`EdgeAgent.reload`, on SIGHUP when
the agent knows its config file; see ``edge_agent.reload``): supervisors start and stop
one by one, while the outbox, its disk buffer and the MQTT link carry on untouched.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

from contracts import topics
from contracts.commands import CommandAck
from contracts.config import ConfigError, DeploymentConfig, DeviceConfig, load_config
from contracts.telemetry import TelemetryRow
from drivers import BadConfig, create_driver
from drivers.listener import ListenerPool
from drivers.shared import totals as shared_totals
from edge_agent.buffer import DiskBuffer
from edge_agent.command_log import CommandLog
from edge_agent.commands import CommandExecutor
from edge_agent.link import MqttLink
from edge_agent.metrics import MetricsServer, agent_figures, render
from edge_agent.outbox import Outbox
from edge_agent.reload import ReloadPlan, plan_reload
from edge_agent.selfmon import self_telemetry
from edge_agent.supervisor import DeviceSupervisor

__all__ = ["EdgeAgent", "REMOVED_REASON"]

log = logging.getLogger(__name__)

REMOVED_REASON = "removed from the agent's config"
_MAX_REMOVED = 10_000  # retained "removed" states re-sent after a reconnect (oldest forgotten)


class EdgeAgent:
    """Polls the devices an agent owns and publishes their telemetry to the broker."""

    def __init__(
        self,
        cfg: DeploymentConfig,
        agent_id: str,
        *,
        seed: int | None = None,
        metrics_port: int | None = None,
        config_path: str | Path | None = None,
    ):
        self.cfg = cfg
        self.agent = cfg.agent(agent_id)
        self.agent_id = agent_id
        #: The file :meth:`reload` re-reads (SIGHUP triggers it); None: no reload from disk.
        self.config_path = None if config_path is None else Path(config_path)
        self._rng = random.Random(seed)
        self.supervisors: dict[str, DeviceSupervisor] = {}
        self._tasks: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}
        self._removed: dict[str, dict[str, Any]] = {}
        self._outbox: Outbox | None = None
        self._link: MqttLink | None = None
        self._commands: CommandExecutor | None = None
        self._reload_lock: asyncio.Lock | None = None
        self._pending: set[asyncio.Task[Any]] = set()
        self.reloads = {"applied": 0, "refused": 0}
        self.listeners = ListenerPool()  # shared TCP listeners of pushing devices
        # Prometheus endpoint (None: off; 0: a free port, read back from metrics_server.port)
        self.metrics_server = (
            None if metrics_port is None else MetricsServer(self.prometheus, metrics_port)
        )

    def prometheus(self) -> str:
        """The agent's figures in Prometheus text exposition format."""
        return render(agent_figures(self))

    def metrics(self) -> dict[str, Any]:
        """Counters of the whole agent: outbox, link, commands, reloads, and per device."""
        out: dict[str, Any] = {"agent": self.agent_id}
        if self._outbox is not None:
            out.update(self._outbox.stats())
        if self._link is not None:
            out.update(
                broker_connected=self._link.connected.is_set(),
                broker_connects=self._link.connects,
                broker_disconnects=self._link.disconnects,
            )
        if self._commands is not None:
            out.update({f"commands_{k}": v for k, v in self._commands.counters.items()})
            if self._commands.log is not None:
                out.update({f"command_{k}": v for k, v in self._commands.log.counters.items()})
        out.update({f"reloads_{k}": v for k, v in self.reloads.items()})
        if self.listeners.listeners:
            out["listeners"] = self.listeners.stats()
            out["replies_withheld"] = sum(
                lst["replies_withheld"] for lst in out["listeners"].values()
            )
        out["connections"] = shared_totals()
        devs = {d: s.stats() for d, s in self.supervisors.items()}
        out["devices"] = devs
        out["devices_online"] = sum(1 for s in devs.values() if s["state"] == "online")
        out["polls_ok"] = sum(s["polls_ok"] for s in devs.values())
        out["polls_failed"] = sum(s["polls_failed"] for s in devs.values())
        return out

    def _publish_availability(self, device_id: str, doc: dict[str, Any]) -> None:
        if self._link is not None:
            self._link.publish(
                topics.device_availability(device_id), json.dumps(doc).encode(), qos=1, retain=True
            )

    def _publish_ack(self, ack: CommandAck) -> None:
        if self._link is not None:
            self._link.publish(topics.command_ack(self.agent_id), ack.encode(), qos=1)

    def _republish_all(self) -> None:
        # Retained states published while the broker was away were never delivered.
        for sup in self.supervisors.values():
            self._publish_availability(sup.device.id, sup.availability())
        for dev_id, doc in self._removed.items():
            self._publish_availability(dev_id, doc)

    # devices --------------------------------------------------------------------------
    def _supervisor(self, dev: DeviceConfig) -> DeviceSupervisor:
        assert self._outbox is not None
        driver, error = None, ""
        try:
            driver = create_driver(dev, broker=self.cfg.broker, listeners=self.listeners)
        except BadConfig as exc:
            error = str(exc)
            log.error("device %s not polled: %s", dev.id, exc)
        use_commit = getattr(driver, "use_commit", None)
        if use_commit is not None:  # MQTT trackers: PUBACK once the rows are on disk
            use_commit(f"{self.agent_id}-{self._outbox.buffer.session_id()}", self._commit_pushed)
        return DeviceSupervisor(
            dev,
            driver,
            self._outbox.add,
            self._publish_availability,
            rng=random.Random(self._rng.random()),
            config_error=error,
        )

    def _start(self, sup: DeviceSupervisor) -> None:
        dev_id = sup.device.id
        self.supervisors[dev_id] = sup
        self._removed.pop(dev_id, None)
        stop = asyncio.Event()
        self._tasks[dev_id] = (asyncio.create_task(sup.run(stop), name=f"poll-{dev_id}"), stop)

    async def _stop(self, dev_id: str) -> DeviceSupervisor | None:
        """Stop one device's supervisor (its poll in progress finishes) and release its driver."""
        sup = self.supervisors.pop(dev_id, None)
        entry = self._tasks.pop(dev_id, None)
        if entry is not None:
            task, stop = entry
            stop.set()
            grace = (sup.device.timeout_s * 2 + 5) if sup is not None else 5
            done, _ = await asyncio.wait([task], timeout=grace)
            if not done:
                task.cancel()
                await asyncio.wait([task])
        if sup is not None and sup.driver is not None:
            await _close_driver(sup)
            self.listeners.forget(sup.driver)
        return sup

    def _build(self) -> None:
        buf = self.agent.buffer
        buffer = DiskBuffer(self.cfg.path(buf.path), buf.max_batches, buf.policy, buf.max_bytes)
        self._link = MqttLink(self.cfg.broker, self.agent_id)
        self._outbox = Outbox(
            self.agent_id, self.agent.batch, buffer, self._link, partitions=self.cfg.partitions
        )
        # Pushing devices are answered only once their rows are on disk (drivers.listener).
        self.listeners.commit = self._commit_pushed
        sups = [self._supervisor(dev) for dev in self.agent.devices]
        self.supervisors.update({s.device.id: s for s in sups})
        self._commands = CommandExecutor(
            self.agent_id,
            self.supervisors,
            self._publish_ack,
            self._outbox.add,
            CommandLog(buffer.db, self.agent_id, io=buffer.io),  # the same file and thread
        )
        self._commands.recover()
        self._link.on_connected.append(self._republish_all)
        self._link.subscribe(topics.command(self.agent_id), self._commands.on_message)

    def _commit_pushed(self, device_id: str, rows: list[TelemetryRow]) -> asyncio.Future[bool]:
        """Rows a pushing device sent: into the outbox now; the future says when on disk."""
        assert self._outbox is not None
        sup = self.supervisors.get(device_id)
        if sup is not None:  # they bypass the supervisor's poll; count them there all the same
            sup.counters["rows"] += len(rows)
        return self._outbox.commit(rows)

    # reload ---------------------------------------------------------------------------
    def request_reload(self) -> None:
        """Schedule :meth:`reload` from the config file (the SIGHUP handler)."""
        task = asyncio.get_running_loop().create_task(self.reload(), name="reload")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def reload(self, cfg: DeploymentConfig | None = None) -> ReloadPlan:
        """Apply a new config (default: re-read ``config_path``) without a restart.

        Refused as a whole, with every error logged, when it does not validate; the
        running config then stays. The outbox and its disk buffer are never touched.
        """
        if self._reload_lock is None:
            self._reload_lock = asyncio.Lock()
        async with self._reload_lock:  # two quick SIGHUPs apply one after the other
            source = str(self.config_path) if self.config_path else "<config>"
            if cfg is None:
                if self.config_path is None:
                    raise RuntimeError("no config file to reload from")
                try:
                    cfg = await asyncio.to_thread(load_config, self.config_path)
                except ConfigError as exc:
                    return self._refuse(ReloadPlan(errors=exc.errors), source)
            plan = plan_reload(self.cfg, cfg, self.agent_id, source)
            if not plan.ok:
                return self._refuse(plan, source)
            await self._apply(cfg, plan)
            return plan

    def _refuse(self, plan: ReloadPlan, source: str) -> ReloadPlan:
        self.reloads["refused"] += 1
        log.error(
            "config reload refused, running config kept (%d error(s) in %s):\n%s",
            len(plan.errors),
            source,
            "\n".join(plan.errors),
        )
        return plan

    async def _apply(self, cfg: DeploymentConfig, plan: ReloadPlan) -> None:
        assert plan.agent is not None and self._outbox is not None
        t0 = time.monotonic()
        # Changed devices release their old driver (listener routes, bus share) before the
        # new one claims it.
        await asyncio.gather(*(self._stop(d.id) for d in plan.changed))
        for dev_id in plan.removed:
            sup = await self._stop(dev_id)
            doc = {
                **(sup.availability() if sup else {"device_id": dev_id}),
                "state": "offline",
                "since_ns": time.time_ns(),
                "reason": REMOVED_REASON,
            }
            self._removed[dev_id] = doc
            while len(self._removed) > _MAX_REMOVED:
                self._removed.pop(next(iter(self._removed)))
            self._publish_availability(dev_id, doc)
        for dev in plan.changed + plan.added:
            self._start(self._supervisor(dev))
        await self.listeners.start()  # new endpoints bind now; idle ones were released
        await self.listeners.prune()
        self._outbox.batch = plan.agent.batch
        self._outbox.partitions = cfg.partitions
        # Sections that need a restart keep running as they are (the buffer above all).
        for name in ("buffer", "metrics_port"):
            setattr(plan.agent, name, getattr(self.agent, name))
        cfg.broker = self.cfg.broker
        self.cfg, self.agent = cfg, plan.agent
        self.reloads["applied"] += 1
        log.info("config reloaded in %.2f s: %s", time.monotonic() - t0, plan.summary())
        for what in plan.restart_only:
            log.warning("config reload: %s changed; takes effect after a restart", what)

    # run ------------------------------------------------------------------------------
    def _on_sighup(self, install: bool) -> None:
        if self.config_path is None or threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        if install:
            loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        else:
            loop.remove_signal_handler(signal.SIGHUP)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then stop cleanly (batches kept on disk)."""
        self._build()
        assert self._link and self._outbox and self._commands
        self._link.start()
        await self.listeners.start()  # before the first poll, so pushing devices can connect
        if self.metrics_server is not None:
            await self.metrics_server.start()
        core = [
            asyncio.create_task(self._outbox.run(stop), name="outbox"),
            asyncio.create_task(
                self_telemetry(
                    self.agent_id,
                    self.metrics,
                    self._outbox.add,
                    lambda: self.agent.telemetry_interval_s,
                    stop,
                ),
                name="self-telemetry",
            ),
        ]
        for sup in list(self.supervisors.values()):
            self._start(sup)
        self._on_sighup(True)
        log.info("agent %s started with %d devices", self.agent_id, len(self.supervisors))
        try:
            await stop.wait()
        finally:
            stop.set()
            self._on_sighup(False)
            if self._pending:
                await asyncio.wait(list(self._pending), timeout=30)
            await self._shutdown(core)

    async def _shutdown(self, core: list[asyncio.Task[None]]) -> None:
        assert self._link and self._outbox and self._commands
        await self._commands.wait_idle(5.0)
        for _task, dev_stop in self._tasks.values():
            dev_stop.set()
        tasks = core + [t for t, _ in self._tasks.values()]
        done, pending = await asyncio.wait(tasks, timeout=10)
        for t in pending:
            t.cancel()
        for t in done:
            if not t.cancelled() and t.exception() is not None:
                log.error("task %s failed: %r", t.get_name(), t.exception())
        # Pushing devices first (listeners, tracker subscriptions): no rows arrive while
        # the outbox drains, and none after the buffer is closed.
        await self.listeners.stop()
        for s in self.supervisors.values():
            if s.driver is not None:
                await _close_driver(s, stopping=True)
        if self.metrics_server is not None:
            await self.metrics_server.stop()
        await self._outbox.drain(2.0)
        await self._link.stop()
        log.info(
            "agent %s stopped: %s",
            self.agent_id,
            {k: v for k, v in self.metrics().items() if k != "devices"},
        )
        self._outbox.buffer.close()


async def _close_driver(sup: DeviceSupervisor, *, stopping: bool = False) -> None:
    """Close a supervisor's driver; a failure here only matters for debugging.

    ``stopping``: the agent stops (not a device removed); a driver with ``suspend`` (a
    durable tracker) keeps its broker subscription for the next run.
    """
    suspend = getattr(sup.driver, "suspend", None) if stopping else None
    try:
        await (suspend() if suspend is not None else sup.driver.close())  # type: ignore[union-attr]
    except Exception:
        log.debug("closing %s failed", sup.device.id, exc_info=True)
