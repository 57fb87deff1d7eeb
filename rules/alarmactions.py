"""Operator actions on an alarm: which lifecycle states each may start from, where it leads,
and what it records (assignee, comments, who acknowledged). Pure: no I/O, no clock."""

from __future__ import annotations

from typing import Any, Literal

from contracts.alarms import ACTIVE_STATES, AlarmEvent, AlarmState

__all__ = ["Action", "ACTIONS", "AlarmActionError", "action_update"]

Action = Literal["acknowledge", "start", "assign", "comment", "shelve", "resolve", "close"]
ACTIONS: tuple[str, ...] = (
    "acknowledge", "start", "assign", "comment", "shelve", "resolve", "close",
)  # fmt: skip
_ASSIGN_PREFIX = "assign:"  # the dashboard's older wire form of an assignment

# action -> (states it may start from, state it leads to; None keeps the state)
_MOVES: dict[str, tuple[frozenset[AlarmState], AlarmState | None]] = {
    "acknowledge": (frozenset({AlarmState.OPEN, AlarmState.SHELVED}), AlarmState.ACKNOWLEDGED),
    "start": (frozenset({AlarmState.OPEN, AlarmState.ACKNOWLEDGED}), AlarmState.IN_PROGRESS),
    "assign": (frozenset(ACTIVE_STATES), None),
    "comment": (frozenset(AlarmState) - {AlarmState.CLOSED}, None),
    "shelve": (
        frozenset({AlarmState.OPEN, AlarmState.ACKNOWLEDGED, AlarmState.IN_PROGRESS}),
        AlarmState.SHELVED,
    ),
    "resolve": (frozenset(ACTIVE_STATES), AlarmState.RESOLVED),
    "close": (frozenset(AlarmState) - {AlarmState.CLOSED}, AlarmState.CLOSED),
}


class AlarmActionError(ValueError):
    """An operator action that cannot apply (unknown alarm or action, wrong state)."""


def action_update(ev: AlarmEvent, action: str, user: str, text: str, now: int) -> dict[str, Any]:
    """The fields an action changes on an alarm; :class:`AlarmActionError` when it cannot."""
    if action not in _MOVES:
        raise AlarmActionError(f"unknown action {action!r}; expected one of {', '.join(ACTIONS)}")
    allowed, target = _MOVES[action]
    if ev.state not in allowed:
        raise AlarmActionError(f"cannot {action} alarm {ev.alarm_id} in state {ev.state.value}")
    extra = dict(ev.extra)
    update: dict[str, Any] = {"extra": extra, "updated_ns": now}
    if action == "assign":
        assignee = text.removeprefix(_ASSIGN_PREFIX).strip()
        if not assignee:
            raise AlarmActionError(f"assign alarm {ev.alarm_id}: no assignee given")
        update["assignee"] = assignee
        extra["assigned_by"] = user
    if action == "comment" or text:
        extra["comments"] = [
            *extra.get("comments", []),
            {"user": user, "text": text, "ts_ns": now, "action": action},
        ]
    if target is not None:
        update["state"] = target
    if action == "acknowledge":
        extra["acknowledged_by"] = user
    return update
