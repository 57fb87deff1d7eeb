"""The alarm console: active alarms (live) and history (the store's alarm records), filters
by domain, severity and district, and the operator actions on the selected alarm."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import panel as pn

from contracts.alarms import AlarmEvent, Severity
from dashboard.actions import Actions
from dashboard.auth import ALARM_ACTIONS, ALARM_DOMAINS, Identity
from dashboard.history import History
from dashboard.i18n import tr, tr_opt
from dashboard.livestore import Changes, LiveStore
from dashboard.views._live import LiveView, TableSync, fmt_time
from dashboard.views.style import TABS_CSS
from dashboard.views.style import html as html_pane
from dashboard.views.wall import sort_alarms

__all__ = ["AlarmsView", "alarm_row", "COLUMNS"]

COLUMNS = ["alarm_id", "severity", "domain", "device", "district", "message", "state", "raised",
           "updated_at", "case_no", "case_status"]  # fmt: skip
DOMAINS = ("lighting", "dust", "vehicle")
_HISTORY_EVERY_TICKS = 30  # history is re-read this often (s); live alarms every tick
_HISTORY_RANGES = {"last_24h": 86_400, "last_7d": 7 * 86_400}


def alarm_row(a: AlarmEvent | dict[str, Any], lang: str, district: str = "") -> dict[str, Any]:
    """One table row for an alarm (an event, or a history record as a dict)."""
    d = a.model_dump(mode="json") if isinstance(a, AlarmEvent) else a
    return {
        "alarm_id": d["alarm_id"], "severity": tr(d["severity"], lang),
        "domain": tr(f"{d['domain']}_d", lang), "device": d["device_id"], "district": district,
        "message": d.get("message") or d["rule_id"], "state": tr("st_" + d["state"], lang),
        "raised": fmt_time(d.get("raised_ns")),
        "updated_at": fmt_time(d.get("updated_ns") or d.get("ts")),
        "case_no": d.get("case_no") or "", "case_status": tr_opt("case_", d.get("case_status"), lang),
    }  # fmt: skip


class AlarmsView(LiveView):
    """One alarm-console session, acting as ``who``."""

    def __init__(
        self,
        store: LiveStore,
        actions: Actions,
        who: Identity,
        lang: str,
        history: History | None = None,
    ) -> None:
        super().__init__(store)
        self.actions = actions
        self.who = who
        self.lang = lang
        self.history = history
        titles = {c: tr(c, lang) for c in COLUMNS}
        opts = dict(titles=titles, hidden_columns=["alarm_id"], show_index=False, disabled=True,
                    sizing_mode="stretch_width", theme="midnight", layout="fit_data_stretch")  # fmt: skip
        self.table = pn.widgets.Tabulator(None, selectable=1, height=460, **opts)
        self.hist_table = pn.widgets.Tabulator(None, height=460, **opts)
        self.sync = TableSync(self.table, COLUMNS, "alarm_id")
        all_ = tr("all", lang)
        self.f_domain = pn.widgets.Select(
            name=tr("domain", lang), width=140,
            options={all_: "", **{tr(f"{d}_d", lang): d for d in DOMAINS}},
        )  # fmt: skip
        self.f_severity = pn.widgets.Select(
            name=tr("severity", lang), width=140,
            options={all_: "", **{tr(s.value, lang): s.value for s in Severity}},
        )  # fmt: skip
        self.f_district = pn.widgets.Select(
            name=tr("district", lang), width=160, options={all_: ""}
        )
        self.f_range = pn.widgets.Select(
            name=tr("hours", lang), width=140,
            options={tr(k, lang): k for k in _HISTORY_RANGES}, value="last_24h",
        )  # fmt: skip
        for w in (self.f_domain, self.f_severity, self.f_district):
            w.param.watch(lambda _e: self._refilter(), "value")
        self.f_range.param.watch(lambda _e: self.load_history(), "value")
        self.text = pn.widgets.TextInput(name=tr("text", lang), placeholder="…", width=300)
        self.assignee = pn.widgets.TextInput(name=tr("assignee", lang), width=160)
        self.buttons: dict[str, pn.widgets.Button] = {}
        for action in ALARM_ACTIONS:
            b = pn.widgets.Button(
                name=tr(action, lang),
                button_type="primary" if action == "acknowledge" else "default",
                css_classes=[f"rg-{action}"],
                align="end",
            )
            b.on_click(lambda _e, a=action: self.act(a))
            self.buttons[action] = b
        self.message = html_pane("", css_classes=["rg-message"])
        may = bool(ALARM_DOMAINS.get(who.role))
        hint = "" if may else f'<div class="rg-hint">{tr("viewer_hint", lang)}</div>'
        self.hist_note = html_pane("")
        self.tabs = pn.Tabs(
            (tr("active", lang), self.table),
            (tr("history", lang), pn.Column(self.f_range, self.hist_note, self.hist_table,
                                            sizing_mode="stretch_width")),
            sizing_mode="stretch_width", stylesheets=[TABS_CSS],
        )  # fmt: skip
        self.layout = pn.Column(
            pn.Row(self.f_domain, self.f_severity, self.f_district, css_classes=["rg-filters"]),
            self.tabs, html_pane(hint),
            pn.Row(self.text, self.assignee, *self.buttons.values()), self.message,
            sizing_mode="stretch_width",
        )  # fmt: skip
        self._districts: dict[str, str] = {}

    # ---- acting ---------------------------------------------------------------------

    def selected(self) -> str | None:
        """The alarm id of the selected active row."""
        sel = self.table.selection
        keys = self.sync.keys()
        return keys[sel[0]] if sel and sel[0] < len(keys) else None

    def act(self, action: str) -> None:
        """Apply ``action`` to the selected alarm through the acting handler (role checked there)."""
        alarm_id = self.selected()
        if alarm_id is None:
            self.message.object = tr("select_alarm", self.lang)
            return
        text = self.assignee.value if action == "assign" else self.text.value
        result = self.actions.alarm_action(self.who, alarm_id, action, text or "")
        cls = "rg-ok" if result.ok else "rg-bad"
        self.message.object = (
            f'<span class="{cls}" data-action="{action}">{tr(result.message, self.lang)}</span>'
        )

    def acknowledge_selected(self) -> None:
        """Acknowledge the selected alarm."""
        self.act("acknowledge")

    # ---- rows and filters -----------------------------------------------------------

    def _district(self, device_id: str) -> str:
        got = self._districts.get(device_id)
        if got is None:
            dev = self.store.device(device_id)
            got = self._districts[device_id] = dev.attrs.get("district", "") if dev else ""
        return got

    def _match(self, domain: str, severity: str, district: str) -> bool:
        return (
            (not self.f_domain.value or domain == self.f_domain.value)
            and (not self.f_severity.value or severity == self.f_severity.value)
            and (not self.f_district.value or district == self.f_district.value)
        )

    def _active(self, ids: frozenset[str] | None = None) -> list[AlarmEvent]:
        return [
            a for a in self.store.alarms(ids, active_only=True)
            if self._match(a.domain, a.severity.value, self._district(a.device_id))
        ]  # fmt: skip

    def _rows(self, alarms: list[AlarmEvent]) -> list[dict[str, Any]]:
        return [alarm_row(a, self.lang, self._district(a.device_id)) for a in alarms]

    def _refresh_districts(self) -> None:
        names = sorted({self._district(a.device_id) for a in self.store.alarms()} - {""})
        names = sorted(set(names) | {d.attrs["district"] for d in self.store.devices()
                                     if d.attrs.get("district")})  # fmt: skip
        opts = {tr("all", self.lang): "", **{n: n for n in names}}
        if list(opts.values()) != list(self.f_district.options.values()):
            self.f_district.options = opts

    def _refilter(self) -> None:
        self.full()
        self.load_history()

    def full(self) -> None:
        self._refresh_districts()
        self.sync.reset(self._rows(sort_alarms(self._active())))
        if self.ticks == 0:
            self.load_history()

    def load_history(self) -> None:
        """Re-read the history tab from the store's alarm records (filtered)."""
        if self.history is None:
            return
        now = time.time_ns()
        span = _HISTORY_RANGES.get(self.f_range.value, 86_400)
        df = self.history.alarm_history(now - span * 1_000_000_000, now + 1)
        if df is None:
            self.hist_note.object = (
                f'<span class="rg-bad">{tr("store_unavailable", self.lang)}</span>'
            )
            return
        rows = []
        for d in df.iter_rows(named=True):
            district = self._district(d["device_id"])
            if self._match(d["domain"], d["severity"], district):
                rows.append(alarm_row({**d, "updated_ns": d["ts"]}, self.lang, district))
        self.hist_note.object = f"<span>{len(rows)}</span>"
        self.hist_table.value = pd.DataFrame(rows, columns=COLUMNS)

    def apply(self, changes: Changes) -> None:
        if changes.alarms:
            active = {a.alarm_id: a for a in self._active(changes.alarms)}
            known = set(self.sync.keys())
            if any(a in known and a not in active for a in changes.alarms):
                self.full()  # a removed row shifts positions: re-read (rare compared to updates)
            else:
                self.sync.update(self._rows(list(active.values())))
        if self.ticks % _HISTORY_EVERY_TICKS == 0:
            self.load_history()
