"""The lighting console: cabinets and circuits live, and switching a circuit with a reason,
an explicit confirmation and the command's progress up to the confirmed state."""

from __future__ import annotations

import html
import math
from typing import Any

import panel as pn

from contracts import clock  # data time: the deployment's clock
from dashboard.actions import Actions
from dashboard.auth import Identity, allowed
from dashboard.i18n import tr
from dashboard.kpi import circuits_of, is_online
from dashboard.livestore import Changes, DeviceInfo, LiveStore
from dashboard.views._live import LiveView, TableSync, fmt_time
from dashboard.views.style import TABLE_CSS, TOGGLE_CSS
from dashboard.views.style import html as html_pane

__all__ = ["LightingView", "circuit_rows"]

COLUMNS = [
    "key",
    "cabinet",
    "name",
    "road",
    "circuit",
    "on",
    "current",
    "voltage",
    "door",
    "online",
    "updated",
]
_DEFAULT_CIRCUITS = 6


def _num(v: float | None) -> float:
    return math.nan if v is None else round(float(v), 2)


def circuit_rows(dev: DeviceInfo, lang: str, now_ns: int) -> list[dict[str, Any]]:
    """One table row per circuit of a cabinet."""
    door = dev.values.get("door_open")
    rows = []
    for n in circuits_of(dev):
        on = dev.values.get(f"circuit{n}_on")
        rows.append({
            "key": f"{dev.device_id}/{n}", "cabinet": dev.device_id, "name": dev.name,
            "road": dev.attrs.get("road", ""), "circuit": n,
            "on": "" if on is None else tr("on" if on else "off", lang),
            "current": _num(dev.values.get(f"circuit{n}_current")),
            "voltage": _num(dev.values.get("voltage_l1")),
            "door": "" if door is None else tr("open" if door else "closed", lang),
            "online": "✔" if is_online(dev, now_ns) else "✖",
            "updated": fmt_time(dev.ts.get(f"circuit{n}_on")),
        })  # fmt: skip
    return rows


class LightingView(LiveView):
    """One lighting-console session, acting as ``who``."""

    def __init__(self, store: LiveStore, actions: Actions, who: Identity, lang: str) -> None:
        super().__init__(store)
        self.actions = actions
        self.who = who
        self.lang = lang
        titles = {c: tr(c, lang) for c in COLUMNS if c not in ("key",)}
        titles |= {"cabinet": tr("cabinet", lang), "on": tr("state", lang), "online": tr("availability", lang),
                   "updated": tr("updated_at", lang)}  # fmt: skip
        self.table = pn.widgets.Tabulator(
            None, titles=titles, hidden_columns=["key"], show_index=False, disabled=True,
            sizing_mode="stretch_width", height=460, theme="midnight", layout="fit_data_stretch",
            stylesheets=[TABLE_CSS],
        )  # fmt: skip
        self.sync = TableSync(self.table, COLUMNS, "key")
        self.cabinet = pn.widgets.Select(label=tr("cabinet", lang), options=[], width=220)
        self.circuit = pn.widgets.Select(
            label=tr("circuit", lang), options=list(range(1, _DEFAULT_CIRCUITS + 1)), width=100
        )
        self.on = pn.widgets.RadioButtonGroup(options=[tr("on", lang), tr("off", lang)], value=tr("on", lang),
                                              color="primary", stylesheets=[TOGGLE_CSS], css_classes=["rg-on-off"])  # fmt: skip
        self.reason = pn.widgets.TextInput(
            label=tr("reason", lang), placeholder=tr("reason", lang), width=320
        )
        self.switch = pn.widgets.Button(
            label=tr("switch", lang), color="warning", css_classes=["rg-switch"]
        )
        self.confirm = pn.widgets.Button(
            label=tr("confirm", lang), color="danger", css_classes=["rg-confirm"]
        )
        self.cancel = pn.widgets.Button(label=tr("cancel", lang), css_classes=["rg-cancel"])
        self.question = html_pane("", css_classes=["rg-question"])
        self.confirm_box = pn.Row(self.question, self.confirm, self.cancel, visible=False)
        self.message = html_pane("", css_classes=["rg-message"])
        self.progress = html_pane("", css_classes=["rg-progress"])
        self.command_id: str | None = None
        self._pending: tuple[str, int, bool, str] | None = None
        self.switch.on_click(lambda _e: self.ask())
        self.confirm.on_click(lambda _e: self.do_switch())
        self.cancel.on_click(lambda _e: self._hide())
        self.cabinet.param.watch(lambda _e: self._circuits(), "value")
        hint = (
            ""
            if allowed(who.role, "switch_circuit")
            else f'<div class="rg-hint">{tr("viewer_hint", lang)}</div>'
        )
        controls = pn.Column(
            html_pane(f'<div class="rg-h2">{tr("switch", lang)}</div>{hint}'),
            pn.Row(self.cabinet, self.circuit, self.on), self.reason, self.switch,
            self.confirm_box, self.message, html_pane(f'<div class="rg-h3">{tr("progress", lang)}</div>'),
            self.progress, width=520,
        )  # fmt: skip
        self.layout = pn.Row(self.table, controls, sizing_mode="stretch_width")

    # ---- the switch flow: ask → confirm → act → follow the acks --------------------

    def ask(self) -> None:
        """First step: show what will be done and wait for an explicit confirmation."""
        if not self.cabinet.value:
            return
        reason = (self.reason.value_input or self.reason.value or "").strip()
        if not reason:
            self.message.object = f'<span class="rg-bad">{tr("reason_required", self.lang)}</span>'
            return
        on = self.on.value == tr("on", self.lang)
        self._pending = (self.cabinet.value, int(self.circuit.value), on, reason)
        self.question.object = html.escape(tr(
            "confirm_q", self.lang, cab=self.cabinet.value, n=self.circuit.value,
            state=tr("on" if on else "off", self.lang), reason=reason))  # fmt: skip
        self.confirm_box.visible = True

    def do_switch(self) -> None:
        """Second step: the acting handler checks the role and publishes."""
        if self._pending is None:
            return
        cab, n, on, reason = self._pending
        self._hide()
        result = self.actions.switch_circuit(self.who, cab, n, on, reason)
        cls = "rg-ok" if result.ok else "rg-bad"
        self.message.object = f'<span class="{cls}">{tr(result.message, self.lang)}</span>'
        if result.command_id:
            self.command_id = result.command_id
            self._show_progress()

    def _hide(self) -> None:
        self._pending = None
        self.confirm_box.visible = False

    def _circuits(self) -> None:
        dev = self.store.device(self.cabinet.value) if self.cabinet.value else None
        circuits = circuits_of(dev) if dev else []
        self.circuit.options = circuits or list(range(1, _DEFAULT_CIRCUITS + 1))

    def _show_progress(self) -> None:
        prog = self.store.command(self.command_id) if self.command_id else None
        if prog is None:
            return
        steps = " → ".join(tr(s, self.lang) for s, _ in prog.steps)
        cmd = prog.command
        final = ""
        if prog.state == "confirmed":
            n = cmd.params.get("circuit")
            state = prog.readback.get(f"circuit{n}_on", cmd.params.get("on"))
            final = (
                f'<div class="rg-ok rg-confirmed">{tr("confirmed", self.lang)} · {html.escape(cmd.device_id)} '
                f"{tr('circuit', self.lang)} {n} = {tr('on' if state else 'off', self.lang)}</div>"
            )
        elif prog.terminal:
            final = f'<div class="rg-bad">{tr(prog.state, self.lang)} · {html.escape(prog.detail)}</div>'
        self.progress.object = (
            f'<div data-state="{prog.state}">{html.escape(cmd.device_id)} #{cmd.params.get("circuit")} '
            f"{tr('on' if cmd.params.get('on') else 'off', self.lang)}: {steps}</div>{final}"
        )

    # ---- live table ---------------------------------------------------------------

    def _cabinets(self, ids: frozenset[str] | None = None) -> list[DeviceInfo]:
        return sorted(self.store.devices(ids, kind="lighting_cabinet"), key=lambda d: d.device_id)

    def full(self) -> None:

        now = clock.now_ns()
        cabs = self._cabinets()
        self.sync.reset([r for d in cabs for r in circuit_rows(d, self.lang, now)])
        self.cabinet.options = [d.device_id for d in cabs]
        if cabs and self.cabinet.value not in self.cabinet.options:
            self.cabinet.value = cabs[0].device_id
        self._circuits()

    def apply(self, changes: Changes) -> None:

        if changes.devices:
            cabs = self._cabinets(changes.devices)
            if cabs:
                now = clock.now_ns()
                self.sync.update([r for d in cabs for r in circuit_rows(d, self.lang, now)])
                known = set(self.cabinet.options)
                if any(d.device_id not in known for d in cabs):
                    self.cabinet.options = sorted(known | {d.device_id for d in cabs})
        if self.command_id and (self.command_id in changes.commands or changes.devices):
            self._show_progress()
