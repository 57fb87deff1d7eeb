"""Hot reload: what a new config changes for one running agent, checked before it is used.

The agent re-reads its config file on SIGHUP (``kill -HUP``; systemd ``ExecReload``). A
signal rather than a file watcher: editors and config management write files in several
steps, and the operator decides when an edit is complete. The new file goes through the
same validation as at start-up, then :func:`plan_reload` compares this agent's section:

    added    devices     start polling
    removed  devices     stop; availability "offline", reason "removed from config"
    changed  devices     their supervisor (and driver) restart with the new settings
    batch, partitions    applied to the next batches
    broker, buffer,      kept as they run: they take effect after a restart (logged),
    metrics_port         so the disk buffer and its unsent batches are never touched

A config that fails validation, no longer names this agent, or gives an added or changed
device settings its driver refuses is not applied at all: every error is logged (file,
line, field, value) and the running config stays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from contracts.config import AgentConfig, DeploymentConfig, DeviceConfig
from drivers import BadConfig, create_driver
from drivers.listener import ListenerPool

__all__ = ["ReloadPlan", "plan_reload"]

# Sections a running agent keeps until it restarts (attribute of AgentConfig or of the
# deployment, and why).
_RESTART_ONLY = (
    ("buffer", "the disk buffer holds unsent batches"),
    ("metrics_port", "the metrics endpoint is bound"),
)


@dataclass
class ReloadPlan:
    """The difference between the running agent config and a new one."""

    agent: AgentConfig | None = None
    added: list[DeviceConfig] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[DeviceConfig] = field(default_factory=list)
    kept: int = 0
    restart_only: list[str] = field(default_factory=list)  # sections that differ, not applied
    errors: list[str] = field(default_factory=list)  # any error: the plan must not be applied

    @property
    def ok(self) -> bool:
        """True when the plan can be applied."""
        return self.agent is not None and not self.errors

    def summary(self) -> str:
        """One line for the log."""
        return (
            f"{len(self.added)} added, {len(self.removed)} removed, "
            f"{len(self.changed)} changed, {self.kept} unchanged"
        )


def plan_reload(
    running: DeploymentConfig, new: DeploymentConfig, agent_id: str, source: str = "<config>"
) -> ReloadPlan:
    """Compare this agent's section of two validated configs; errors leave it unapplicable."""
    plan = ReloadPlan()
    try:
        agent = new.agent(agent_id)
    except KeyError as exc:
        plan.errors.append(f"{source}: agents: {exc.args[0]}")
        return plan
    plan.agent = agent
    old = {d.id: d for d in running.agent(agent_id).devices}
    fresh = {d.id: d for d in agent.devices}
    plan.removed = [i for i in old if i not in fresh]
    for dev_id, dev in fresh.items():
        if dev_id not in old:
            plan.added.append(dev)
        elif old[dev_id] != dev:
            plan.changed.append(dev)
        else:
            plan.kept += 1
    running_agent = running.agent(agent_id)
    for name, why in _RESTART_ONLY:
        if getattr(running_agent, name) != getattr(agent, name):
            plan.restart_only.append(f"agents[{agent_id}].{name} ({why})")
    if running.broker != new.broker:
        plan.restart_only.append("broker (the MQTT session carries the agent's last will)")
    plan.errors.extend(_driver_errors(new, agent, {d.id for d in plan.added + plan.changed}))
    return plan


def _driver_errors(cfg: DeploymentConfig, agent: AgentConfig, fresh: set[str]) -> list[str]:
    """Settings the drivers refuse, for added and changed devices.

    Every device goes through a scratch listener pool, so two pushing devices that claim
    the same identity on one endpoint are caught before anything running is touched.
    At start-up such a device is merely left offline; on reload the running config is
    the better fallback than a device that cannot work.
    """
    scratch = ListenerPool()
    errors = []
    for dev in agent.devices:
        try:
            create_driver(dev, broker=cfg.broker, listeners=scratch)
        except BadConfig as exc:
            if dev.id in fresh:
                errors.append(f"device {dev.id}: {exc}")
    return errors
