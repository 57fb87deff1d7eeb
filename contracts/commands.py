"""Commands from the center to a device, and their progress reports.

A command travels dashboard → MQTT ``rg/v1/cmd/<agent>`` → agent; the agent reports
each step on ``rg/v1/cmd-ack/<agent>``:

    RECEIVED → SENT → ACKNOWLEDGED (device accepted the write) → CONFIRMED (read back)
                                                              ↘ FAILED / EXPIRED / REJECTED
"""

from __future__ import annotations

import json
import uuid
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from contracts import clock  # data time: the deployment's clock

__all__ = ["CommandAction", "CommandState", "Command", "CommandAck", "TERMINAL_STATES"]


class CommandAction(StrEnum):
    """What a command asks a device to do."""

    SWITCH_CIRCUIT = "switch_circuit"  # params: {"circuit": int (1-based), "on": bool}


class CommandState(StrEnum):
    """Steps of a command's life, as acked by the agent."""

    RECEIVED = "received"
    SENT = "sent"
    ACKNOWLEDGED = "acknowledged"
    CONFIRMED = "confirmed"
    FAILED = "failed"
    REJECTED = "rejected"  # refused before reaching the device (unknown device, bad params)
    EXPIRED = "expired"  # arrived after its time to live


TERMINAL_STATES = frozenset(
    {CommandState.CONFIRMED, CommandState.FAILED, CommandState.REJECTED, CommandState.EXPIRED}
)


class Command(BaseModel):
    """A request to act on one device, with who asked and why (kept for the audit trail)."""

    command_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    device_id: str
    action: CommandAction
    params: dict[str, Any] = Field(default_factory=dict)
    issued_by: str = "unknown"
    role: str = "unknown"
    reason: str = ""
    issued_ns: int = Field(default_factory=clock.now_ns)
    ttl_s: float = 30.0

    def expired(self, now_ns: int | None = None) -> bool:
        """True once the command has outlived its time to live (``ttl_s`` wall seconds: the
        operator waits for it and the network carries it, whatever the clock's speed)."""
        now = clock.now_ns() if now_ns is None else now_ns
        return now - self.issued_ns > clock.scaled(self.ttl_s) * 1e9

    def encode(self) -> bytes:
        """Serialise for MQTT."""
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, payload: bytes) -> Command:
        """Parse from MQTT; raises pydantic.ValidationError or ValueError when malformed."""
        return cls.model_validate(json.loads(payload))


class CommandAck(BaseModel):
    """One step of a command's progress, reported by the agent that owns the device."""

    command_id: str
    device_id: str
    state: CommandState
    detail: str = ""
    readback: dict[str, Any] = Field(default_factory=dict)
    ts_ns: int = Field(default_factory=clock.now_ns)

    def encode(self) -> bytes:
        """Serialise for MQTT."""
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, payload: bytes) -> CommandAck:
        """Parse from MQTT."""
        return cls.model_validate(json.loads(payload))
