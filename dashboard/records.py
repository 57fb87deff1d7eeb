"""What the live store holds: devices, command progress, and change sets (plain records)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from contracts.commands import Command, CommandState
from contracts.config import DeploymentConfig

__all__ = ["DeviceInfo", "CommandProgress", "Changes", "devices_from_config"]


@dataclass(slots=True)
class DeviceInfo:
    """What the dashboard knows about a device: metadata from the config, live state from MQTT."""

    device_id: str
    kind: str
    name: str = ""
    agent: str | None = None
    lat: float | None = None
    lon: float | None = None
    attrs: dict[str, str] = field(default_factory=dict)
    configured: bool = True
    values: dict[str, float | None] = field(default_factory=dict)
    ts: dict[str, int] = field(default_factory=dict)
    last_ns: int = 0  # newest telemetry timestamp
    availability: str | None = None  # online / degraded / offline, from the agent

    def snapshot(self) -> DeviceInfo:
        """A copy a session may read without the store's lock."""
        return DeviceInfo(
            self.device_id, self.kind, self.name, self.agent, self.lat, self.lon,
            dict(self.attrs), self.configured, dict(self.values), dict(self.ts),
            self.last_ns, self.availability,
        )  # fmt: skip

    def position(self) -> tuple[float, float] | None:
        """Live GPS position when reported, else the configured location (lat, lon)."""
        lat, lon = self.values.get("lat"), self.values.get("lon")
        if lat is not None and lon is not None:
            return lat, lon
        if self.lat is not None and self.lon is not None:
            return self.lat, self.lon
        return None


@dataclass(slots=True)
class CommandProgress:
    """A command issued from this dashboard and the newest step the agent reported."""

    command: Command
    agent: str
    state: str = "issued"  # issued (published) until the first ack arrives
    detail: str = ""
    readback: dict[str, Any] = field(default_factory=dict)
    steps: list[tuple[str, int]] = field(default_factory=list)

    @property
    def terminal(self) -> bool:
        """True once the command confirmed, failed, was rejected or expired."""
        return self.state in {
            s.value
            for s in (
                CommandState.CONFIRMED,
                CommandState.FAILED,
                CommandState.REJECTED,
                CommandState.EXPIRED,
            )
        }


@dataclass(frozen=True, slots=True)
class Changes:
    """Keys changed between two versions of the store."""

    version: int
    devices: frozenset[str]
    alarms: frozenset[str]
    commands: frozenset[str]

    def __bool__(self) -> bool:
        return bool(self.devices or self.alarms or self.commands)


def devices_from_config(cfg: DeploymentConfig) -> dict[str, DeviceInfo]:
    """Device metadata (names, kinds, places, owning agent) from a deployment config."""
    out: dict[str, DeviceInfo] = {}
    for dev_id, (agent, dev) in cfg.devices().items():
        loc = dev.location
        out[dev_id] = DeviceInfo(
            dev_id, dev.kind.value, dev.name or dev_id, agent.id,
            loc.lat if loc else None, loc.lon if loc else None, dict(dev.attrs),
        )  # fmt: skip
    return out
