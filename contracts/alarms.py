"""Alarm events: what the rules engine raises and the dashboard and case system see."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from contracts import clock  # data time: the deployment's clock

__all__ = ["AlarmState", "Severity", "AlarmEvent", "CaseRecord", "CaseReceipt", "ACTIVE_STATES"]


class AlarmState(StrEnum):
    """Lifecycle of an alarm."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    SHELVED = "shelved"
    RESOLVED = "resolved"
    CLOSED = "closed"


ACTIVE_STATES = frozenset(
    {AlarmState.OPEN, AlarmState.ACKNOWLEDGED, AlarmState.IN_PROGRESS, AlarmState.SHELVED}
)


class Severity(StrEnum):
    """How urgent an alarm is, most urgent first."""

    CRITICAL = "critical"
    MAJOR = "major"
    MINOR = "minor"
    WARNING = "warning"


class AlarmEvent(BaseModel):
    """The current state of one alarm; republished on every transition."""

    alarm_id: str
    rule_id: str
    domain: str  # lighting | dust | vehicle
    device_id: str
    subject: str  # device_id, or device_id/field for per-circuit alarms
    field: str
    severity: Severity
    state: AlarmState = AlarmState.OPEN
    condition_active: bool = True  # the rule's condition still holds
    raised_ns: int
    updated_ns: int = Field(default_factory=clock.now_ns)
    cleared_ns: int | None = None
    value: float | None = None
    threshold: float | None = None
    message: str = ""
    lat: float | None = None
    lon: float | None = None
    case_no: str | None = None
    case_status: str | None = None
    assignee: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    def encode(self) -> bytes:
        """Serialise for MQTT."""
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, payload: bytes) -> AlarmEvent:
        """Parse from MQTT."""
        return cls.model_validate(json.loads(payload))


class CaseRecord(BaseModel):
    """An alarm as a case for the city's case system (数字城管)."""

    idempotency_key: str  # the alarm id: sending it twice yields the same case
    category_major: str  # 大类
    category_minor: str  # 小类
    title: str
    description: str
    source: str = "rongguan"
    device_id: str
    lat: float | None = None
    lon: float | None = None
    grid: str | None = None
    reported_ns: int = Field(default_factory=clock.now_ns)
    evidence: dict[str, Any] = Field(default_factory=dict)


class CaseReceipt(BaseModel):
    """What the case system answered: the case number and its status."""

    case_no: str
    status: str = "filed"
