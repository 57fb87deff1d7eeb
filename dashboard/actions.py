"""The handlers that act: switch a circuit, acknowledge an alarm.

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
from dashboard.auth import Identity, allowed
from dashboard.livestore import LiveStore

__all__ = ["ActionResult", "Actions", "Publish"]

audit = logging.getLogger("rongguan.audit")

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
        if not allowed(who.role, "acknowledge_alarm"):
            audit.warning(
                "REFUSED acknowledge %s by %s (%s): role may not acknowledge",
                alarm_id,
                who.user,
                who.role,
            )
            return ActionResult(False, "refused_role")
        if not self.store.has_alarm(alarm_id):
            audit.warning(
                "REFUSED acknowledge %s by %s (%s): unknown alarm", alarm_id, who.user, who.role
            )
            return ActionResult(False, "unknown_alarm")
        doc = {
            "alarm_id": alarm_id,
            "action": "acknowledge",
            "user": who.user,
            "role": who.role,
            "text": text,
        }
        try:
            self.publish(topics.alarm_action(), json.dumps(doc, ensure_ascii=False).encode(), qos=1)
        except Exception as exc:  # noqa: BLE001 - reported to the user and audited
            audit.error("FAILED acknowledge %s by %s (%s): %s", alarm_id, who.user, who.role, exc)
            return ActionResult(False, "publish_failed")
        audit.info("SENT acknowledge %s by %s (%s) text %r", alarm_id, who.user, who.role, text)
        return ActionResult(True, "ack_sent")
