"""The alarm console: filters on top; active alarms (live) and history (from the store),
storms shown once with their children count in both, on the left; the selected alarm's
detail — facts, case, its group, what happened to it — and the operator actions on the
right."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import panel as pn

from contracts import clock  # data time: the deployment's clock
from contracts.alarms import AlarmEvent, Severity
from dashboard.actions import Actions
from dashboard.alarmgroups import AlarmGroup, group_alarms, history_events
from dashboard.auth import ALARM_ACTIONS, ALARM_DOMAINS, Identity
from dashboard.history import History
from dashboard.i18n import tr
from dashboard.livestore import Changes, LiveStore
from dashboard.views._live import LiveView, TableSync
from dashboard.views.alarm_detail import detail_html, empty_detail_html, timeline
from dashboard.views.alarm_table import COLUMNS, WIDTHS, alarm_row, severity_formatter
from dashboard.views.style import TABLE_CSS, TABS_CSS
from dashboard.views.style import html as html_pane

__all__ = ["AlarmsView", "alarm_row", "COLUMNS"]

DOMAINS = ("lighting", "dust", "vehicle")
_HISTORY_EVERY_S = 30.0  # the history tab is re-read this often; live alarms on every change
_HISTORY_RANGES = {"last_24h": 86_400, "last_7d": 7 * 86_400}
#: actions that, on a group's parent, go to every alarm of the group (a comment stays put)
_GROUP_ACTIONS = frozenset({"acknowledge", "assign", "shelve", "resolve"})


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
        self.actions, self.who, self.lang, self.history = actions, who, lang, history
        titles = {c: tr(c, lang) for c in COLUMNS}
        opts = dict(titles=titles, show_index=False, disabled=True, theme="midnight",
                    layout="fit_columns", widths=WIDTHS[lang], stylesheets=[TABLE_CSS],
                    # the server orders rows (severity, then newest): no header sorters
                    configuration={"columnDefaults": {"headerSort": False}},
                    formatters={"severity": severity_formatter(lang)},
                    sizing_mode="stretch_both", min_height=300)  # fmt: skip
        # The active table leaves the domain (a filter) and the update time to the detail
        # pane: room for the message on a 1366 screen, in English too.
        self.table = pn.widgets.Tabulator(None, selectable=1, css_classes=["rg-active"],
                                          hidden_columns=["alarm_id", "domain", "updated_at"],
                                          **opts)  # fmt: skip
        self.hist_table = pn.widgets.Tabulator(None, selectable=1, css_classes=["rg-history"],
                                               hidden_columns=["alarm_id"], **opts)  # fmt: skip
        self.sync = TableSync(self.table, COLUMNS, "alarm_id")
        self.f_domain = self._filter("domain", 130, {tr(f"{d}_d", lang): d for d in DOMAINS})
        self.f_severity = self._filter(
            "severity", 130, {tr(s.value, lang): s.value for s in Severity}
        )
        self.f_district = self._filter("district", 150, {})
        self.f_children = pn.widgets.Checkbox(
            label=tr("show_children", lang), value=False, align="end",
            css_classes=["rg-show-children"], margin=(10, 10, 16, 16),
        )  # fmt: skip
        self.f_range = pn.widgets.Select(
            label=tr("hours", lang), width=140,
            options={tr(k, lang): k for k in _HISTORY_RANGES}, value="last_24h",
        )  # fmt: skip
        for w in (self.f_domain, self.f_severity, self.f_district, self.f_children):
            w.param.watch(lambda _e: self._refilter(), "value")
        self.f_range.param.watch(lambda _e: self.load_history(), "value")
        self.table.param.watch(lambda _e: self._pick(history=False), "selection")
        self.hist_table.param.watch(lambda _e: self._pick(history=True), "selection")
        self.summary = html_pane("", css_classes=["rg-summary"], align="end")
        self.text = pn.widgets.TextInput(label=tr("text", lang), placeholder="…",
                                         sizing_mode="stretch_width")  # fmt: skip
        self.assignee = pn.widgets.TextInput(label=tr("assignee", lang), width=150)
        self.whole_group = pn.widgets.Checkbox(label=tr("whole_group", lang), value=True,
                                               css_classes=["rg-whole-group"])  # fmt: skip
        self.buttons: dict[str, pn.widgets.Button] = {}
        for action in ALARM_ACTIONS:
            b = pn.widgets.Button(label=tr(action, lang), css_classes=[f"rg-{action}"],
                                  color="primary" if action == "acknowledge" else "default")  # fmt: skip
            b.on_click(lambda _e, a=action: self.act(a))
            self.buttons[action] = b
        self.message = html_pane("", css_classes=["rg-message"])
        hint = "" if ALARM_DOMAINS.get(who.role) else f'<div class="rg-hint">{tr("viewer_hint", lang)}</div>'  # fmt: skip
        self.hist_note = html_pane("")
        self.detail = html_pane(empty_detail_html(lang), sizing_mode="stretch_width",
                                css_classes=["rg-detail-pane"])  # fmt: skip
        self.tabs = pn.Tabs(
            (tr("active", lang), self.table),
            (tr("history", lang), pn.Column(pn.Row(self.f_range, self.hist_note),
                                            self.hist_table, sizing_mode="stretch_both")),
            sizing_mode="stretch_both", stylesheets=[TABS_CSS],
        )  # fmt: skip
        side = pn.Column(
            html_pane(f'<div class="rg-h2">{tr("detail", lang)}</div>'),
            pn.Column(self.detail, scroll=True, sizing_mode="stretch_both"),
            html_pane(hint), pn.Row(self.text, self.assignee, sizing_mode="stretch_width"),
            self.whole_group, pn.FlexBox(*self.buttons.values()), self.message,
            # A third of a 1366 screen, ~560 px on a 1920 one.
            sizing_mode="stretch_height", styles={"flex": "0 0 clamp(420px, 29vw, 560px)"},
            css_classes=["rg-alarm-side"],
        )  # fmt: skip
        self.layout = pn.Column(
            pn.Row(self.f_domain, self.f_severity, self.f_district, self.f_children, self.summary,
                   css_classes=["rg-filters"], sizing_mode="stretch_width"),
            pn.Row(self.tabs, side, sizing_mode="stretch_both"),
            sizing_mode="stretch_both",
        )  # fmt: skip
        self._districts: dict[str, str] = {}
        self._groups: dict[str, AlarmGroup] = {}  # alarm id -> its group (every member)
        self._hist_groups: dict[str, AlarmGroup] = {}  # the same for the history tab
        self._hist_keys: list[str] = []  # alarm id of each history row
        self._hist_pick: str | None = None  # the history row the detail shows, if any
        self._history_at = 0.0

    def _filter(self, key: str, width: int, options: dict[str, str]) -> pn.widgets.Select:
        return pn.widgets.Select(label=tr(key, self.lang), width=width,
                                 options={tr("all", self.lang): "", **options})  # fmt: skip

    # ---- acting ---------------------------------------------------------------------

    def selected(self) -> str | None:
        """The alarm id of the selected active row."""
        sel = self.table.selection
        keys = self.sync.keys()
        return keys[sel[0]] if sel and sel[0] < len(keys) else None

    def act(self, action: str) -> None:
        """Apply ``action`` to the alarm the detail shows — the active row, else the history
        row — (and, on a group's parent, to its children when asked) through the acting
        handler, which checks the role and that the alarm is live, for each."""
        alarm_id, groups = self.selected(), self._groups
        if alarm_id is None and self._hist_pick is not None:  # the history row the pane shows
            alarm_id, groups = self._hist_pick, self._hist_groups
        if alarm_id is None:
            self.message.object = tr("select_alarm", self.lang)
            return
        text = self.assignee.value if action == "assign" else self.text.value
        targets = [alarm_id]
        group = groups.get(alarm_id)
        if (group is not None and group.head.alarm_id == alarm_id and action in _GROUP_ACTIONS
                and self.whole_group.value):  # fmt: skip
            targets += [c.alarm_id for c in group.children]
        results = [self.actions.alarm_action(self.who, t, action, text or "") for t in targets]
        result = next((r for r in results if not r.ok), results[0])
        cls = "rg-ok" if result.ok else "rg-bad"
        n = f" ({sum(r.ok for r in results)}/{len(results)})" if len(results) > 1 else ""
        self.message.object = (
            f'<span class="{cls}" data-action="{action}">{tr(result.message, self.lang)}{n}</span>'
        )

    def acknowledge_selected(self) -> None:
        """Acknowledge the selected alarm."""
        self.act("acknowledge")

    # ---- rows, filters and the detail -----------------------------------------------

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

    def _active(self) -> list[AlarmEvent]:
        return [
            a for a in self.store.alarms(active_only=True)
            if self._match(a.domain, a.severity.value, self._district(a.device_id))
        ]  # fmt: skip

    def _rows(self) -> list[dict[str, Any]]:
        """One row per group (its parent), children right under it when they are shown."""
        groups = group_alarms(self._active())
        self._groups = {m.alarm_id: g for g in groups for m in g.members}
        rows = self._group_rows(groups)
        n_alarms = sum(g.size for g in groups)
        self.summary.object = f'<span class="rg-count">{tr("summary", self.lang, n=n_alarms, groups=len(groups))}</span>'
        return rows

    def _group_rows(self, groups: list[AlarmGroup]) -> list[dict[str, Any]]:
        """A row per group (its head, with the group's size), its children's rows when shown."""
        rows = []
        for g in groups:
            size = f"{g.size} ▸" if g.size > 1 and not self.f_children.value else ""
            size = f"{g.size} ▾" if g.size > 1 and self.f_children.value else size
            rows.append(alarm_row(g.head, self.lang, self._district(g.head.device_id), size))
            if self.f_children.value:
                rows += [alarm_row(c, self.lang, self._district(c.device_id), "↳")
                         for c in g.children]  # fmt: skip
        return rows

    def _refresh_districts(self) -> None:
        names = {self._district(a.device_id) for a in self.store.alarms()}
        names |= {d.attrs["district"] for d in self.store.devices() if d.attrs.get("district")}
        opts = {tr("all", self.lang): "", **{n: n for n in sorted(names - {""})}}
        if list(opts.values()) != list(self.f_district.options.values()):
            self.f_district.options = opts

    def _refilter(self) -> None:
        self.full()
        self.load_history()

    def full(self, rows: list[dict[str, Any]] | None = None) -> None:
        chosen = self.selected()
        self._refresh_districts()
        self.sync.reset(self._rows() if rows is None else rows)
        keys = self.sync.keys()
        self.table.selection = [keys.index(chosen)] if chosen in keys else []
        self.show_detail()
        if self._history_at == 0.0:
            self.load_history()

    def show_detail(self) -> None:
        """Fill the detail pane with the selected alarm (or say how to pick one): an active
        one, or else the history row picked last."""
        alarm_id = self.selected()
        alarm = next(iter(self.store.alarms({alarm_id})), None) if alarm_id else None
        groups = self._groups
        if alarm is None and self._hist_pick in self._hist_groups:
            groups = self._hist_groups
            alarm = next(m for m in groups[self._hist_pick].members
                         if m.alarm_id == self._hist_pick)  # fmt: skip
        if alarm is None:
            self.detail.object = empty_detail_html(self.lang)
            return
        records: list[dict[str, Any]] = []
        if self.history is not None:
            df = self.history.alarm_transitions(alarm.alarm_id)
            records = [] if df is None else df.to_dicts()
        self.detail.object = detail_html(alarm, groups.get(alarm.alarm_id),
                                         timeline(alarm, records), self.lang,
                                         self._district(alarm.device_id))  # fmt: skip

    def _pick(self, history: bool) -> None:
        """A row was selected in one table: the detail follows it, the other table lets go."""
        if history:
            sel = self.hist_table.selection
            pick = self._hist_keys[sel[0]] if sel and sel[0] < len(self._hist_keys) else None
            if pick is None and self._hist_pick is None:
                return
            self._hist_pick = pick
            if pick is not None and self.table.selection:
                self.table.selection = []  # its watcher shows the detail
                return
        elif self.table.selection:
            self._hist_pick = None
            if self.hist_table.selection:
                self.hist_table.selection = []
        self.show_detail()

    def load_history(self) -> None:
        """Re-read the history tab from the store's alarm records (filtered)."""
        self._history_at = time.monotonic()
        if self.history is None:
            return
        now = clock.now_ns()
        span = _HISTORY_RANGES.get(self.f_range.value, 86_400)
        df = self.history.alarm_history(now - span * 1_000_000_000, now + 1)
        if df is None:
            self.hist_note.object = (
                f'<span class="rg-bad">{tr("store_unavailable", self.lang)}</span>'
            )
            return
        events = [
            e for e in history_events(df.iter_rows(named=True))
            if self._match(e.domain, e.severity.value, self._district(e.device_id))
        ]  # fmt: skip
        # a storm once, like the live list: newest change first, its children under it
        groups = group_alarms(events, by_update=True)
        self._hist_groups = {m.alarm_id: g for g in groups for m in g.members}
        rows = self._group_rows(groups)
        self._hist_keys = [r["alarm_id"] for r in rows]
        folded = tr("alarms_folded", self.lang, total=len(events), groups=len(groups))
        self.hist_note.object = f'<span class="rg-count rg-hist-count">{folded}</span>'
        self.hist_table.value = pd.DataFrame(rows, columns=COLUMNS)
        pick = self._hist_pick
        keep = [self._hist_keys.index(pick)] if pick in self._hist_keys else []
        if self.hist_table.selection != keep:
            self.hist_table.selection = keep  # rows moved: the pick (and the pane) follows
        elif keep and self.selected() is None:
            self.show_detail()  # the picked alarm may have new records

    def apply(self, changes: Changes) -> None:
        if changes.alarms:
            rows = self._rows()
            if [r["alarm_id"] for r in rows] != self.sync.keys():
                self.full(rows)  # a row came, went or moved (rare next to updates)
            else:
                self.sync.update(rows)
                group = self._groups.get(self.selected() or "")
                if group is not None and {m.alarm_id for m in group.members} & changes.alarms:
                    self.show_detail()  # the selected alarm or one of its group changed

    def every_tick(self) -> None:
        if time.monotonic() - self._history_at >= _HISTORY_EVERY_S:
            self.load_history()
