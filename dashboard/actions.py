"""The handlers that act: switch a circuit; acknowledge, comment, assign, shelve, resolve an alarm.

Each checks the session's role itself (a hidden button is no protection against a request
sent by hand), writes one audit line to the ``rongguan.audit`` logger whatever the outcome,
and only then publishes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from contracts import topics
from contracts.commands import Command, CommandAction
from dashboard.auth import ALARM_ACTIONS, Identity, allowed, may_act_on_alarm
from dashboard.livestore import LiveStore

__all__ = ["ActionResult", "Actions", "Publish", "ASSIGN_WIRE_ACTION", "ASSIGN_PREFIX"]

audit = logging.getLogger("rongguan.audit")

#: the rules service's alarm book takes "assign" (it strips ASSIGN_PREFIX from the text and
#: sets the alarm's assignee).
ASSIGN_WIRE_ACTION = "assign"
ASSIGN_PREFIX = "assign:"

#: ``publish(topic, payload)`` at QoS 1; raises on failure (LiveFeed.publish fits).
Publish = Callable[..., None]


@dataclass(frozen=True, slots=True)
class ActionResult:
    """What happened: ok, a message key for the UI, and the command id when one was sent."""

    ok: bool
    message: str
    command_id: str | None = None


class Actions:
    """Acting handlers bound to the process's store and publisher."""

    def __init__(self, store: LiveStore, publish: Publish) -> None:
        self.store = store
        self.publish = publish

    def switch_circuit(
        self, who: Identity, device_id: str, circuit: int, on: bool, reason: str
    ) -> ActionResult:
        """Send a SWITCH_CIRCUIT command to the agent owning the device, if ``who`` may."""
        what = f"switch {device_id} circuit {circuit} {'on' if on else 'off'}"
        if not allowed(who.role, "switch_circuit"):
            audit.warning(
                "REFUSED %s by %s (%s): role may not switch circuits", what, who.user, who.role
            )
            return ActionResult(False, "refused_role")
        reason = reason.strip()
        if not reason:
            audit.warning("REFUSED %s by %s (%s): no reason given", what, who.user, who.role)
            return ActionResult(False, "reason_required")
        dev = self.store.device(device_id)
        if dev is None or dev.kind != "lighting_cabinet" or not dev.agent:
            audit.warning(
                "REFUSED %s by %s (%s): unknown cabinet or owning agent", what, who.user, who.role
            )
            return ActionResult(False, "unknown_device")
        if not isinstance(circuit, int) or circuit < 1:
            audit.warning("REFUSED %s by %s (%s): bad circuit", what, who.user, who.role)
            return ActionResult(False, "bad_circuit")
        cmd = Command(
            device_id=device_id, action=CommandAction.SWITCH_CIRCUIT,
            params={"circuit": circuit, "on": bool(on)},
            issued_by=who.user, role=who.role, reason=reason,
        )  # fmt: skip
        self.store.add_command(cmd, dev.agent)
        try:
            self.publish(topics.command(dev.agent), cmd.encode(), qos=1)
        except Exception as exc:  # noqa: BLE001 - reported to the user and audited
            audit.error(
                "FAILED %s by %s (%s) command %s: %s", what, who.user, who.role, cmd.command_id, exc
            )
            return ActionResult(False, "publish_failed", cmd.command_id)
        audit.info(
            "SENT %s by %s (%s) command %s reason %r",
            what,
            who.user,
            who.role,
            cmd.command_id,
            reason,
        )
        return ActionResult(True, "sent", cmd.command_id)

    def acknowledge_alarm(self, who: Identity, alarm_id: str, text: str = "") -> ActionResult:
        """Ask the rules service to acknowledge an alarm, if ``who`` may."""
        return self.alarm_action(who, alarm_id, "acknowledge", text)

    def alarm_action(
        self, who: Identity, alarm_id: str, action: str, text: str = ""
    ) -> ActionResult:
        """Publish an operator action on an alarm for the rules service, if ``who`` may.

        ``assign`` carries the assignee in ``text``; the rules service's alarm book applies
        it, and checks the role again where the action lands.
        """
        text = (text or "").strip()
        what = f"{action} {alarm_id}"
        alarm = next(iter(self.store.alarms({alarm_id})), None)
        if action not in ALARM_ACTIONS:
            audit.warning("REFUSED %s by %s (%s): unknown action", what, who.user, who.role)
            return ActionResult(False, "refused_role")
        if alarm is None:
            # Role first when the alarm is unknown too: a viewer learns nothing either way.
            refused = not allowed(who.role, f"{action}_alarm")
            audit.warning("REFUSED %s by %s (%s): %s", what, who.user, who.role,
                          "role may not act" if refused else "unknown alarm")  # fmt: skip
            return ActionResult(False, "refused_role" if refused else "unknown_alarm")
        if not may_act_on_alarm(who.role, action, alarm.domain):
            audit.warning(
                "REFUSED %s by %s (%s): role may not act on %s alarms",
                what, who.user, who.role, alarm.domain,
            )  # fmt: skip
            return ActionResult(False, "refused_role")
        if action in ("comment", "assign") and not text:
            audit.warning("REFUSED %s by %s (%s): no text", what, who.user, who.role)
            return ActionResult(False, "text_required")
        wire_action, wire_text = action, text
        if action == "assign":
            wire_action, wire_text = ASSIGN_WIRE_ACTION, f"{ASSIGN_PREFIX}{text}"
        doc = {"alarm_id": alarm_id, "action": wire_action, "user": who.user, "role": who.role,
               "text": wire_text}  # fmt: skip
        try:
            self.publish(topics.alarm_action(), json.dumps(doc, ensure_ascii=False).encode(), qos=1)
        except Exception as exc:  # noqa: BLE001 - reported to the user and audited
            audit.error("FAILED %s by %s (%s): %s", what, who.user, who.role, exc)
            return ActionResult(False, "publish_failed")
        audit.info("SENT %s by %s (%s) text %r", what, who.user, who.role, text)
        return ActionResult(True, "ack_sent" if action == "acknowledge" else "action_sent")
