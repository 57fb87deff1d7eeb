"""The edge agent: one supervisor per device, one outbox, one MQTT link, commands."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from typing import Any

from contracts import topics
from contracts.commands import CommandAck
from contracts.config import DeploymentConfig
from drivers import BadConfig, create_driver
from drivers.listener import ListenerPool
from edge_agent.buffer import DiskBuffer
from edge_agent.commands import CommandExecutor
from edge_agent.link import MqttLink
from edge_agent.metrics import MetricsServer, agent_figures, render
from edge_agent.outbox import Outbox
from edge_agent.supervisor import DeviceSupervisor

__all__ = ["EdgeAgent"]

log = logging.getLogger(__name__)


class EdgeAgent:
    """Polls the devices an agent owns and publishes their telemetry to the broker."""

    def __init__(
        self,
        cfg: DeploymentConfig,
        agent_id: str,
        *,
        seed: int | None = None,
        metrics_port: int | None = None,
    ):
        self.cfg = cfg
        self.agent = cfg.agent(agent_id)
        self.agent_id = agent_id
        self._rng = random.Random(seed)
        self.supervisors: dict[str, DeviceSupervisor] = {}
        self._outbox: Outbox | None = None
        self._link: MqttLink | None = None
        self._commands: CommandExecutor | None = None
        self.listeners = ListenerPool()  # shared TCP listeners of pushing devices
        # Prometheus endpoint (None: off; 0: a free port, read back from metrics_server.port)
        self.metrics_server = (
            None if metrics_port is None else MetricsServer(self.prometheus, metrics_port)
        )

    def prometheus(self) -> str:
        """The agent's figures in Prometheus text exposition format."""
        return render(agent_figures(self))

    def metrics(self) -> dict[str, Any]:
        """Counters of the whole agent: outbox, link, commands, and per device."""
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
        if self.listeners.listeners:
            out["listeners"] = self.listeners.stats()
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

    def _build(self) -> None:
        buf = self.agent.buffer
        buffer = DiskBuffer(self.cfg.path(buf.path), buf.max_batches, buf.policy)
        self._link = MqttLink(self.cfg.broker, self.agent_id)
        self._outbox = Outbox(
            self.agent_id, self.agent.batch, buffer, self._link, partitions=self.cfg.partitions
        )
        for dev in self.agent.devices:
            driver, error = None, ""
            try:
                driver = create_driver(dev, broker=self.cfg.broker, listeners=self.listeners)
            except BadConfig as exc:
                error = str(exc)
                log.error("device %s not polled: %s", dev.id, exc)
            self.supervisors[dev.id] = DeviceSupervisor(
                dev,
                driver,
                self._outbox.add,
                self._publish_availability,
                rng=random.Random(self._rng.random()),
                config_error=error,
            )
        self._commands = CommandExecutor(
            self.agent_id, self.supervisors, self._publish_ack, self._outbox.add
        )
        self._link.on_connected.append(self._republish_all)
        self._link.subscribe(topics.command(self.agent_id), self._commands.on_message)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then stop cleanly (batches kept on disk)."""
        self._build()
        assert self._link and self._outbox and self._commands
        self._link.start()
        await self.listeners.start()  # before the first poll, so pushing devices can connect
        if self.metrics_server is not None:
            await self.metrics_server.start()
        tasks = [asyncio.create_task(self._outbox.run(stop), name="outbox")]
        tasks += [
            asyncio.create_task(s.run(stop), name=f"poll-{d}") for d, s in self.supervisors.items()
        ]
        log.info("agent %s started with %d devices", self.agent_id, len(self.supervisors))
        try:
            await stop.wait()
        finally:
            stop.set()
            await self._commands.wait_idle(5.0)
            done, pending = await asyncio.wait(tasks, timeout=10)
            for t in pending:
                t.cancel()
            for t in done:
                if not t.cancelled() and t.exception() is not None:
                    log.error("task %s failed: %r", t.get_name(), t.exception())
            await self.listeners.stop()
            if self.metrics_server is not None:
                await self.metrics_server.stop()
            await self._outbox.drain(2.0)
            await self._link.stop()
            for s in self.supervisors.values():
                if s.driver is not None:
                    try:
                        await s.driver.close()
                    except Exception:
                        log.debug("closing %s failed", s.device.id, exc_info=True)
            log.info(
                "agent %s stopped: %s",
                self.agent_id,
                {k: v for k, v in self.metrics().items() if k != "devices"},
            )
            self._outbox.buffer.close()
