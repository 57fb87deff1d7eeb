"""The alarm console: active alarms with their case numbers and statuses; acknowledge."""

from __future__ import annotations

from typing import Any

import panel as pn

from contracts.alarms import AlarmEvent
from dashboard.actions import Actions
from dashboard.auth import Identity, allowed
from dashboard.i18n import tr
from dashboard.livestore import Changes, LiveStore
from dashboard.views._live import LiveView, TableSync, fmt_time
from dashboard.views.style import html as html_pane
from dashboard.views.wall import sort_alarms

__all__ = ["AlarmsView", "alarm_row"]

COLUMNS = ["alarm_id", "severity", "device", "message", "state", "raised", "case_no", "case_status"]


def alarm_row(a: AlarmEvent, lang: str) -> dict[str, Any]:
    """One table row for an alarm."""
    return {
        "alarm_id": a.alarm_id, "severity": tr(a.severity.value, lang), "device": a.device_id,
        "message": a.message or a.rule_id, "state": tr("st_" + a.state.value, lang),
        "raised": fmt_time(a.raised_ns), "case_no": a.case_no or "", "case_status": a.case_status or "",
    }  # fmt: skip


class AlarmsView(LiveView):
    """One alarm-console session, acting as ``who``."""

    def __init__(self, store: LiveStore, actions: Actions, who: Identity, lang: str) -> None:
        super().__init__(store)
        self.actions = actions
        self.who = who
        self.lang = lang
        titles = {c: tr(c, lang) for c in COLUMNS}
        self.table = pn.widgets.Tabulator(
            None, titles=titles, hidden_columns=["alarm_id"], show_index=False, disabled=True,
            selectable=1, sizing_mode="stretch_width", height=520, theme="midnight",
            layout="fit_data_stretch",
        )  # fmt: skip
        self.sync = TableSync(self.table, COLUMNS, "alarm_id")
        self.comment = pn.widgets.TextInput(placeholder="…", width=320)
        self.ack = pn.widgets.Button(
            name=tr("acknowledge", lang), button_type="primary", css_classes=["rg-ack"]
        )
        self.message = html_pane("", css_classes=["rg-message"])
        self.ack.on_click(lambda _e: self.acknowledge_selected())
        hint = (
            ""
            if allowed(who.role, "acknowledge_alarm")
            else f'<div class="rg-hint">{tr("viewer_hint", lang)}</div>'
        )
        self.layout = pn.Column(
            self.table, html_pane(hint), pn.Row(self.comment, self.ack), self.message,
            sizing_mode="stretch_width",
        )  # fmt: skip

    def acknowledge_selected(self) -> None:
        """Acknowledge the selected alarm through the acting handler (which checks the role)."""
        sel = self.table.selection
        keys = self.sync.keys()
        if not sel or sel[0] >= len(keys):
            self.message.object = tr("select_alarm", self.lang)
            return
        result = self.actions.acknowledge_alarm(self.who, keys[sel[0]], self.comment.value or "")
        cls = "rg-ok" if result.ok else "rg-bad"
        self.message.object = f'<span class="{cls}">{tr(result.message, self.lang)}</span>'

    def _rows(self) -> list[dict[str, Any]]:
        return [alarm_row(a, self.lang) for a in sort_alarms(self.store.alarms(active_only=True))]

    def full(self) -> None:
        self.sync.reset(self._rows())

    def apply(self, changes: Changes) -> None:
        if not changes.alarms:
            return
        active = {a.alarm_id: a for a in self.store.alarms(changes.alarms, active_only=True)}
        known = set(self.sync.keys())
        if any(a in known and a not in active for a in changes.alarms):
            self.full()  # a removed row shifts positions: re-read (rare compared to updates)
            return
        self.sync.update([alarm_row(a, self.lang) for a in active.values()])
