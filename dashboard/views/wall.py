"""The wall screen: dark, large type; city map, KPI tiles and the alarm list with case numbers."""

from __future__ import annotations

import html
from collections.abc import Sequence

import panel as pn

from contracts import clock  # data time: the deployment's clock
from contracts.alarms import AlarmEvent
from contracts.geofence import GeofenceConfig
from dashboard.alarmgroups import SEV_ORDER, group_alarms, group_label
from dashboard.i18n import tr, tr_opt
from dashboard.kpi import LAYER_STALE_S, ROAD_TARGETS, KpiCache, Kpis
from dashboard.livestore import Changes, LiveStore
from dashboard.views._live import LiveView, fmt_time
from dashboard.views.citymap import CityMap
from dashboard.views.geofences import GeofenceLayer
from dashboard.views.markers import FrameSync, MarkerCache
from dashboard.views.style import html as html_pane

__all__ = ["WallView", "alarm_list_html", "kpi_html", "layers_html", "SEVERITY_COLOURS"]

SEVERITY_COLOURS = {
    "critical": "#ff4d4f",
    "major": "#ff922b",
    "minor": "#fcc419",
    "warning": "#74c0fc",
}


def sort_alarms(alarms: list[AlarmEvent]) -> list[AlarmEvent]:
    """Most severe first, then newest first."""
    return sorted(alarms, key=lambda a: (SEV_ORDER.get(a.severity.value, 9), -a.raised_ns))


def alarm_list_html(alarms: list[AlarmEvent], lang: str, limit: int = 14) -> str:
    """The wall's alarm ticker: one item per storm group (severity, device, the group's size,
    message, case number and status)."""
    if not alarms:
        return f'<div class="rg-empty">{tr("no_alarms", lang)}</div>'
    items = []
    for g in group_alarms(alarms)[:limit]:
        a = g.head
        colour = SEVERITY_COLOURS.get(g.severity, "#adb5bd")
        case = html.escape(a.case_no or "—")
        status = html.escape(tr_opt("case_", a.case_status, lang))
        label = group_label(g, lang)
        group = f'<div class="rg-group">{html.escape(label)}</div>' if label else ""
        items.append(
            f'<div class="rg-alarm" data-alarm="{html.escape(a.alarm_id)}" data-size="{g.size}" '
            f'style="border-left-color:{colour}">'
            f'<div class="rg-alarm-top"><span class="rg-sev" style="background:{colour}">'
            f'{tr(g.severity, lang)}</span> <b>{html.escape(a.device_id)}</b>'
            f'<span class="rg-time">{fmt_time(g.raised_ns)}</span></div>{group}'
            f'<div class="rg-msg">{html.escape(a.message or a.rule_id)}</div>'
            f'<div class="rg-case">{tr("case_no", lang)} <b class="rg-case-no">{case}</b> {status}'
            f' · {tr("st_" + a.state.value, lang)}</div></div>'
        )  # fmt: skip
    return "".join(items)


def _stale(k: Kpis, kind: str, now_ns: int) -> bool:
    newest = k.newest_ns.get(kind, 0)
    return newest == 0 or (now_ns - newest) > clock.scaled(LAYER_STALE_S) * 1e9


def _badge(lang: str) -> str:
    return f'<span class="rg-stale">{tr("stale", lang)}</span>'


def kpi_html(k: Kpis, lang: str, now_ns: int | None = None) -> str:
    """The KPI tiles as one HTML strip; a tile whose source data is old carries a badge."""
    now = clock.now_ns() if now_ns is None else now_ns
    tiles: list[tuple[str, str, str, str]] = []  # label, value, class, source kind
    for kind, (up, total) in k.online.items():
        tiles.append((f"{tr('online', lang)} · {tr(kind, lang)}", f"{up}/{total}", "", kind))
    for road, target in ROAD_TARGETS.items():
        rate = k.lamp_by_road.get(road)
        value = "—" if rate is None else f"{rate * 100:.1f}%"
        warn = "rg-bad" if rate is not None and rate < target else ""
        label = f"{tr('lamp_on_rate', lang)} · {tr('road_' + road, lang)}"
        value += f"<small> {tr('target', lang)} ≥{target * 100:.0f}%</small>"
        tiles.append((label, value, warn, "lighting_cabinet"))
    tiles.append(
        (tr("dust_exceed", lang), str(k.dust_exceedances),
         "rg-bad" if k.dust_exceedances else "", "dust_monitor")
    )  # fmt: skip
    tiles.append(
        (tr("trucks_on_duty", lang), f"{k.trucks_on_duty}/{k.trucks_total}", "", "vehicle")
    )
    sev = " ".join(
        f'<span style="color:{SEVERITY_COLOURS[s]}">{tr(s, lang)} {n}</span>'
        for s, n in k.alarms.items()
    )
    label = tr("active_alarms", lang)
    groups = sum(k.alarms.values())
    if k.alarms_total > groups:  # storms count once; say how many alarms they fold
        label += f" · {tr('alarms_folded', lang, total=k.alarms_total, groups=groups)}"
    tiles.append((label, sev, "", ""))
    out = []
    for label, value, cls, kind in tiles:
        stale = bool(kind) and kind in k.online and _stale(k, kind, now)
        badge = _badge(lang) if stale else ""
        out.append(
            f'<div class="rg-tile {cls}{" rg-tile-stale" if stale else ""}" data-kind="{kind}">'
            f'<div class="rg-tile-label">{label} {badge}</div>'
            f'<div class="rg-tile-value">{value}</div></div>'
        )
    return '<div class="rg-tiles">' + "".join(out) + "</div>"


def layers_html(k: Kpis, lang: str, now_ns: int | None = None) -> str:
    """One line per map layer: when its newest data arrived, with a badge when that is old."""
    now = clock.now_ns() if now_ns is None else now_ns
    parts = []
    for kind in ("lighting_cabinet", "dust_monitor", "vehicle"):
        if kind not in k.online:
            continue
        newest = k.newest_ns.get(kind, 0)
        when = fmt_time(newest, "%H:%M:%S") if newest else tr("no_data", lang)
        badge = _badge(lang) if _stale(k, kind, now) else ""
        parts.append(
            f'<span class="rg-layer" data-kind="{kind}">{tr(kind, lang)} '
            f"{tr('updated', lang)} {when} {badge}</span>"
        )
    return f'<div class="rg-layers">{"".join(parts)}</div>'


class WallView(LiveView):
    """One wall-screen session: woken by the pusher when the store changed (markers and
    alarms go out then), and a 1 s heartbeat for the clock, KPI tiles and staleness."""

    def __init__(
        self,
        store: LiveStore,
        kpis: KpiCache,
        basemap: str | None,
        lang: str,
        title: str,
        *,
        redraw_all: bool = False,
        markers: MarkerCache | None = None,
        geofences: Sequence[GeofenceConfig] = (),
    ) -> None:
        super().__init__(store)
        self.kpi_cache = kpis
        self.lang = lang
        # Markers are computed once per process and patched per session (see views.markers).
        self.markers = markers if markers is not None else MarkerCache(store)
        self.map = CityMap(basemap, dark=True, marker_size=16, redraw_all=redraw_all, lang=lang)
        # Geofences are static: drawn once under the markers (none configured: nothing drawn).
        self.geofences = GeofenceLayer(self.map.fig, geofences, lang) if geofences else None
        self.syncs = [
            FrameSync(kind, sync.source, redraw_all=redraw_all)
            for kind, sync in (("lighting_cabinet", self.map.cabinets),
                               ("dust_monitor", self.map.dust), ("vehicle", self.map.trucks))
        ]  # fmt: skip
        self.kpis = html_pane("", sizing_mode="stretch_width", css_classes=["rg-kpis"])
        self.layers = html_pane("", sizing_mode="stretch_width", css_classes=["rg-layers"])
        self.alarm_list = html_pane("", sizing_mode="stretch_both", css_classes=["rg-alarm-list"],
                                    styles={"overflow-y": "auto"})  # fmt: skip
        self.clock = html_pane("", css_classes=["rg-clock"])
        header = pn.Row(
            html_pane(f'<div class="rg-title">{html.escape(title)} · {tr("wall", lang)}</div>'),
            pn.Spacer(), self.clock, sizing_mode="stretch_width",
        )  # fmt: skip
        side = pn.Column(
            html_pane(f'<div class="rg-h2">{tr("active_alarms", lang)}</div>'),
            self.alarm_list, width=460, sizing_mode="stretch_height",
        )  # fmt: skip
        body = pn.Row(
            pn.pane.Bokeh(self.map.fig, sizing_mode="stretch_both"),
            side,
            sizing_mode="stretch_both",
        )
        self.layout = pn.Column(
            header,
            self.kpis,
            self.layers,
            body,
            sizing_mode="stretch_both",
            css_classes=["rg-wall"],
        )

    def _alarms(self) -> list[AlarmEvent]:
        return self.store.alarms(active_only=True)

    def full(self) -> None:
        alarms = self._alarms()
        self.map.fit(self.store.devices())
        generation, tick, layers = self.markers.get()
        for sync in self.syncs:
            sync.reset(layers[sync.kind], generation, tick)
        self.alarm_list.object = alarm_list_html(alarms, self.lang)
        k = self.kpi_cache.get()
        self.kpis.object = kpi_html(k, self.lang)
        self.layers.object = layers_html(k, self.lang)

    def apply(self, changes: Changes) -> None:
        if changes.alarms:
            self.alarm_list.object = alarm_list_html(self._alarms(), self.lang)
        # Markers (and alarm colours) come from the shared cache, changed rows only.
        generation, tick, layers = self.markers.get()
        for sync in self.syncs:
            sync.sync(layers[sync.kind], generation, tick)

    def every_tick(self) -> None:
        now = clock.now_ns()
        speed = clock.speed()  # a sped-up (simulated) clock says so: "×120"
        fast = (
            f' <span class="rg-speed" style="color:#ffd43b">×{speed:g}</span>'
            if speed != 1.0
            else ""
        )
        self.clock.object = (
            f'<div class="rg-clock">{fmt_time(now, "%Y-%m-%d %H:%M:%S")}{fast}</div>'
        )
        # Computed once per process per second (KpiCache); sent only when the text changed.
        k = self.kpi_cache.get()
        for pane, text in ((self.kpis, kpi_html(k, self.lang, now)),
                           (self.layers, layers_html(k, self.lang, now))):  # fmt: skip
            if text != pane.object:
                pane.object = text
