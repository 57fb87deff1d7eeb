"""The fleet console: vehicles by fleet, company and state (table + live map with heading),
a day's track played back from history with a time slider, and the vehicle violations."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
import panel as pn
from bokeh.models import ColumnDataSource

from contracts import clock  # data time: the deployment's clock
from contracts.geofence import GeofenceConfig
from dashboard.auth import Identity
from dashboard.history import History, day_bounds
from dashboard.i18n import tr, tr_opt
from dashboard.kpi import is_online
from dashboard.livestore import Changes, DeviceInfo, LiveStore
from dashboard.views._live import LiveView, TableSync, display_tz, fmt_time
from dashboard.views.alarms import alarm_row
from dashboard.views.citymap import CityMap
from dashboard.views.geofences import GeofenceLayer, geofence_legend_html, geofence_of
from dashboard.views.style import TABLE_CSS
from dashboard.views.style import html as html_pane
from dashboard.views.wall import sort_alarms

__all__ = ["FleetView", "vehicle_row", "vehicle_state", "default_day_of"]

COLUMNS = ["id", "plate", "fleet", "company", "state", "speed", "heading", "updated"]
V_COLUMNS = ["alarm_id", "severity", "device", "geofence", "message", "state", "raised", "case_no"]
MOVING_KMH = 3.0  # slower than this counts as standing (GPS jitter)


def vehicle_state(dev: DeviceInfo, now_ns: int) -> str:
    """moving / idle / offline."""
    if not is_online(dev, now_ns):
        return "offline"
    return "moving" if (dev.values.get("speed") or 0.0) >= MOVING_KMH else "idle"


def vehicle_row(dev: DeviceInfo, lang: str, now_ns: int) -> dict[str, Any]:
    """One table row for a vehicle."""
    speed, heading = dev.values.get("speed"), dev.values.get("heading")
    return {
        "id": dev.device_id, "plate": dev.attrs.get("plate") or dev.name,
        "fleet": tr_opt("fleet_", dev.attrs.get("fleet", ""), lang), "company": dev.attrs.get("company", ""),
        "state": tr(vehicle_state(dev, now_ns), lang),
        "speed": math.nan if speed is None else round(speed, 1),
        "heading": math.nan if heading is None else round(heading),
        "updated": fmt_time(dev.last_ns),
    }  # fmt: skip


class FleetView(LiveView):
    """One fleet-console session."""

    def __init__(
        self,
        store: LiveStore,
        who: Identity,
        lang: str,
        basemap: str | None,
        history: History | None,
        day_of: Any,
        geofences: Sequence[GeofenceConfig] = (),
    ) -> None:
        super().__init__(store)
        self.who = who
        self.lang = lang
        self.history = history
        self._day_of = day_of  # date -> (start_ns, end_ns) in the city's zone
        all_ = tr("all", lang)
        self.f_fleet = pn.widgets.Select(label=tr("fleet_col", lang), options={all_: ""}, width=160)
        self.f_company = pn.widgets.Select(label=tr("company", lang), options={all_: ""}, width=200)
        self.f_state = pn.widgets.Select(
            label=tr("state", lang), width=120,
            options={all_: "", **{tr(s, lang): s for s in ("moving", "idle", "offline")}},
        )  # fmt: skip
        for w in (self.f_fleet, self.f_company, self.f_state):
            w.param.watch(lambda _e: self.full(), "value")
        self.table = pn.widgets.Tabulator(
            None, titles={c: tr({"fleet": "fleet_col", "updated": "updated_at"}.get(c, c), lang) for c in COLUMNS},
            hidden_columns=["id"],
            show_index=False, disabled=True, height=420, sizing_mode="stretch_width",
            theme="midnight", layout="fit_data_stretch", stylesheets=[TABLE_CSS],
        )  # fmt: skip
        self.sync = TableSync(self.table, COLUMNS, "id")
        self.map = CityMap(basemap, dark=True, height=420, marker_size=13, lang=lang,
                           legend_kinds=("vehicle",))  # fmt: skip
        self.geofences = GeofenceLayer(self.map.fig, geofences, lang)
        self.track_src = ColumnDataSource({"x": [], "y": []}, name="rg-track")
        self.cursor_src = ColumnDataSource({"x": [], "y": [], "angle": []}, name="rg-cursor")
        self.map.fig.line("x", "y", source=self.track_src, line_color="#ffd43b", line_width=3)
        self.map.fig.scatter("x", "y", source=self.cursor_src, marker="triangle", size=22,
                             angle="angle", color="#ff4d4f", line_color="white")  # fmt: skip
        today = clock.current().local_time(display_tz()).date()
        self.vehicle = pn.widgets.Select(label=tr("vehicle", lang), options=[], width=200)
        self.day = pn.widgets.DatePicker(label=tr("day", lang), value=today, width=160)
        self.load = pn.widgets.Button(
            label=tr("load_track", lang), color="primary", align="end",
            css_classes=["rg-load-track"],
        )  # fmt: skip
        self.slider = pn.widgets.IntSlider(
            label=tr("time", lang), start=0, end=1, value=0, disabled=True, show_value=False,
            sizing_mode="stretch_width", css_classes=["rg-track-slider"],
        )  # fmt: skip
        self.track_info = html_pane("", css_classes=["rg-track-info"])
        self.load.on_click(lambda _e: self.load_track())
        self.slider.param.watch(lambda e: self.seek(e.new), "value")
        self._track: pd.DataFrame | None = None
        self.violations = pn.widgets.Tabulator(
            None, titles={c: tr(c, lang) for c in V_COLUMNS}, hidden_columns=["alarm_id"],
            show_index=False, disabled=True, height=220, sizing_mode="stretch_width",
            theme="midnight", layout="fit_data_stretch", stylesheets=[TABLE_CSS],
        )  # fmt: skip
        self.layout = pn.Column(
            pn.Row(self.f_fleet, self.f_company, self.f_state,
                   pn.Column(self.geofences.toggle, html_pane(geofence_legend_html(geofences, lang)),
                             margin=(18, 10, 0, 30)),
                   css_classes=["rg-filters"]),
            pn.Row(self.table, pn.pane.Bokeh(self.map.fig, sizing_mode="stretch_width",
                                             height=420), sizing_mode="stretch_width"),
            html_pane(f'<div class="rg-h2">{tr("track", lang)}</div>'),
            pn.Row(self.vehicle, self.day, self.load), self.slider, self.track_info,
            html_pane(f'<div class="rg-h2">{tr("violations", lang)}</div>'), self.violations,
            sizing_mode="stretch_width",
        )  # fmt: skip

    # ---- track playback -------------------------------------------------------------

    def load_track(self) -> None:
        """Read the chosen vehicle's day from history and put the slider at its start."""
        if not self.vehicle.value or self.history is None or self.day.value is None:
            return
        start, end = self._day_of(self.day.value)
        df = self.history.track(self.vehicle.value, start, end)
        if df is None:
            self.track_info.object = (
                f'<span class="rg-bad">{tr("store_unavailable", self.lang)}</span>'
            )
            return
        df = df.drop_nulls(["lat", "lon"])
        if df.height == 0:
            self._track = None
            self.track_src.data = {"x": [], "y": []}
            self.cursor_src.data = {"x": [], "y": [], "angle": []}
            self.slider.disabled = True
            self.track_info.object = f'<span class="rg-hint">{tr("no_track", self.lang)}</span>'
            return
        self._track = df.to_pandas()
        self.track_src.data = {"x": self._track["lon"].tolist(), "y": self._track["lat"].tolist()}
        self.slider.param.update(start=0, end=max(1, len(self._track) - 1), value=0, disabled=False)
        self.seek(0)

    def seek(self, i: int) -> None:
        """Move the playback marker to fix ``i`` of the loaded track."""
        if self._track is None or not len(self._track):
            return
        r = self._track.iloc[min(max(i, 0), len(self._track) - 1)]
        heading = 0.0 if pd.isna(r["heading"]) else float(r["heading"])
        self.cursor_src.data = {"x": [r["lon"]], "y": [r["lat"]], "angle": [-math.radians(heading)]}
        speed = "" if pd.isna(r["speed"]) else f" · {r['speed']:.0f} km/h"
        self.track_info.object = (
            f'<span class="rg-track-time" data-n="{len(self._track)}">'
            f"{fmt_time(int(r['ts']), '%Y-%m-%d %H:%M:%S')}{speed} · "
            f"{tr('track_points', self.lang, n=len(self._track))}</span>"
        )

    # ---- live -----------------------------------------------------------------------

    def _vehicles(self, ids: frozenset[str] | None = None) -> list[DeviceInfo]:
        return sorted(self.store.devices(ids, kind="vehicle"), key=lambda d: d.device_id)

    def _match(self, d: DeviceInfo, now: int) -> bool:
        return (
            (not self.f_fleet.value or d.attrs.get("fleet") == self.f_fleet.value)
            and (not self.f_company.value or d.attrs.get("company") == self.f_company.value)
            and (not self.f_state.value or vehicle_state(d, now) == self.f_state.value)
        )

    def _options(self, vehicles: list[DeviceInfo]) -> None:
        all_ = tr("all", self.lang)
        for w, attr in ((self.f_fleet, "fleet"), (self.f_company, "company")):
            names = sorted({d.attrs.get(attr, "") for d in vehicles} - {""})
            opts = {all_: "", **{tr_opt(f"{attr}_", n, self.lang): n for n in names}}
            if list(opts) != list(w.options):
                w.options = opts
        ids = [d.device_id for d in vehicles]
        if ids != list(self.vehicle.options):
            self.vehicle.options = ids
            if ids and self.vehicle.value not in ids:
                self.vehicle.value = ids[0]

    def _violations(self) -> None:
        alarms = [a for a in self.store.alarms() if a.domain == "vehicle"]
        rows = [alarm_row(a, self.lang) | {"geofence": geofence_of(a, self.geofences.names)}
                for a in sort_alarms(alarms)]  # fmt: skip
        self.violations.value = pd.DataFrame(rows).reindex(columns=V_COLUMNS)

    def full(self) -> None:
        now = clock.now_ns()
        vehicles = self._vehicles()
        self._options(vehicles)
        shown = [d for d in vehicles if self._match(d, now)]
        self.sync.reset([vehicle_row(d, self.lang, now) for d in shown])
        self.map.reset(shown, set(), now)
        self._violations()

    def apply(self, changes: Changes) -> None:
        now = clock.now_ns()
        if changes.devices:
            vehicles = self._vehicles(changes.devices)
            if vehicles:
                known = set(self.sync.keys())
                if any(
                    (d.device_id in known) != self._match(d, now) for d in vehicles
                ):  # a vehicle entered or left the filter: rows shift, re-read
                    self.full()
                    return
                shown = [d for d in vehicles if d.device_id in known]
                self.sync.update([vehicle_row(d, self.lang, now) for d in shown])
                self.map.update(shown, set(), now)
        if changes.alarms:
            self._violations()


def default_day_of(cfg: Any) -> Any:
    """A ``date -> (start_ns, end_ns)`` function for the deployment's zone."""
    return lambda day: day_bounds(day, cfg)
