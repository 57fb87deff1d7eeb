"""A cable-theft storm recorded by the real alarm book into a real history store, as the
rules service records it (``store_hook``), for the store, console and browser tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from contracts.alarms import AlarmEvent
from contracts.config import DeviceConfig, RuleConfig
from rules.alarmpolicy import AlarmPolicy
from rules.alarms import AlarmBook
from rules.transition import Transition

__all__ = ["Storm", "record_storm", "THEFT", "DOOR"]

S = 1_000_000_000
THEFT = RuleConfig(id="cable_theft", domain="lighting", kind="lighting_cabinet",
                   field="circuit*_current", op="below", set=0.3, clear=0.5,
                   severity="critical", message="疑似电缆被盗 cable theft")  # fmt: skip
DOOR = RuleConfig(id="door_open", domain="lighting", kind="lighting_cabinet",
                  field="door_open", op="above", set=0.5, message="箱门打开 door open")  # fmt: skip


@dataclass
class Storm:
    """The ids the book gave: the storm's parent and children, and a lone alarm elsewhere."""

    parent: str
    children: list[str]
    lone: str
    events: list[AlarmEvent]  # every event handed to the store, in order


def record_storm(
    db_dir: Path,
    store: Any,
    t0_ns: int,
    circuits: int = 6,
    devices: dict[str, DeviceConfig] | None = None,
) -> Storm:
    """Raise ``circuits`` circuits of LC-0001 within seconds (one storm) and a door alarm
    on LC-0002; an operator acknowledges the whole storm, comments on and resolves the
    parent; the conditions clear. Everything goes to ``store.write_alarm``."""
    events: list[AlarmEvent] = []

    def hook(ev: AlarmEvent) -> None:
        events.append(ev)
        store.write_alarm(ev)

    book = AlarmBook(db_dir / "alarms.db", lambda _ev: None, store_hook=hook,
                     devices=devices, policy=AlarmPolicy(storm_window_s=60))  # fmt: skip
    try:
        ids = []
        for c in range(1, circuits + 1):
            f = f"circuit{c}_current"
            tr = Transition("cable_theft", "LC-0001", f"LC-0001/{f}", f, "raise",
                            t0_ns + c * S, 0.0, 0.3)  # fmt: skip
            ev, _new = book.on_transition(tr, THEFT)
            ids.append(ev.alarm_id)
        door = Transition("door_open", "LC-0002", "LC-0002", "door_open", "raise",
                          t0_ns + 2 * S, 1.0, 0.5)  # fmt: skip
        lone, _new = book.on_transition(door, DOOR)
        for alarm_id in ids:
            book.apply_action(alarm_id, "acknowledge", "operator")
        book.apply_action(ids[0], "comment", "operator", "已派人 dispatched")
        for c in range(1, circuits + 1):
            f = f"circuit{c}_current"
            tr = Transition("cable_theft", "LC-0001", f"LC-0001/{f}", f, "clear",
                            t0_ns + (60 + c) * S, 3.0, 0.5)  # fmt: skip
            book.on_transition(tr, THEFT)
        book.apply_action(ids[0], "resolve", "operator", "cable replaced")
        assert book.counters["publish_errors"] == 0, "the store refused an alarm event"
        assert book.counters["grouped"] == circuits - 1
        return Storm(ids[0], ids[1:], lone.alarm_id, events)
    finally:
        book.close()
