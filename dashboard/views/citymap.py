"""The offline city map: district outlines from a shipped GeoJSON file, and live layers
for cabinets, dust monitors and trucks on plain lon/lat axes (no tiles, nothing online)."""

from __future__ import annotations

import json
import logging
import math
from functools import cache
from pathlib import Path
from typing import Any

from bokeh.models import HoverTool, Range1d
from bokeh.plotting import figure

from contracts.alarms import AlarmEvent
from contracts.topics import partition_of
from dashboard.i18n import tr
from dashboard.kpi import circuits_of, is_online
from dashboard.livestore import DeviceInfo
from dashboard.views._live import CdsSync

__all__ = [
    "CityMap",
    "marker_rows",
    "CHENGDU_EXTENT",
    "load_outlines",
    "find_basemap",
    "devices_extent",
]

log = logging.getLogger("rongguan.dashboard.map")

CHENGDU_EXTENT = (102.95, 30.05, 104.95, 31.45)  # lon0, lat0, lon1, lat1 of the municipality
FLEET_PALETTE = [
    "#4dabf7",
    "#69db7c",
    "#f783ac",
    "#ffa94d",
    "#b197fc",
    "#63e6be",
    "#ffd8a8",
    "#a5d8ff",
]
CAB_COLOURS = {"alarm": "#ff4d4f", "lit": "#ffd43b", "dark": "#5c7cfa", "offline": "#6c757d"}


def find_basemap(configured: str | None) -> Path | None:
    """The configured GeoJSON base layer (the shell supplies the shipped districts), or None."""
    if configured:
        p = Path(configured)
        return p if p.is_file() else None
    return None


@cache
def load_outlines(path: Path | None) -> tuple[list[list[float]], list[list[float]]]:
    """Outer rings of every (multi)polygon as (xs, ys) lists; empty when unreadable."""
    if path is None:
        return [], []
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        xs: list[list[float]] = []
        ys: list[list[float]] = []
        for feat in doc.get("features", []):
            geom = feat.get("geometry") or {}
            polys = geom.get("coordinates", [])
            if geom.get("type") == "Polygon":
                polys = [polys]
            for poly in polys:
                ring = poly[0]
                xs.append([p[0] for p in ring])
                ys.append([p[1] for p in ring])
        return xs, ys
    except (OSError, ValueError, TypeError, IndexError, KeyError) as exc:
        log.warning("basemap %s unusable (%s); showing devices only", path, exc)
        return [], []


def _pm10_colour(v: float | None) -> str:
    if v is None:
        return "#868e96"
    return "#51cf66" if v < 75 else "#fcc419" if v < 150 else "#ff922b" if v < 200 else "#fa5252"


def cabinet_state(dev: DeviceInfo, alarmed: bool, now_ns: int) -> str:
    """alarm / lit / dark / offline, the colour class of a cabinet marker."""
    if alarmed:
        return "alarm"
    if not is_online(dev, now_ns):
        return "offline"
    return "lit" if any(dev.values.get(f"circuit{n}_on") for n in circuits_of(dev)) else "dark"


def devices_extent(
    devs: list[DeviceInfo], pad: float = 0.08, min_span: float = 0.03
) -> tuple[float, float, float, float] | None:
    """(lon0, lat0, lon1, lat1) around the devices' positions, padded; None when none has one."""
    pts = [p for d in devs if (p := d.position()) is not None]
    if not pts:
        return None
    lats, lons = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1, y0, y1 = min(lons), max(lons), min(lats), max(lats)
    # Pad by a share of the span, and never zoom closer than min_span (one device).
    px = max((x1 - x0) * pad, (min_span - (x1 - x0)) / 2, 0.0)
    py = max((y1 - y0) * pad, (min_span - (y1 - y0)) / 2, 0.0)
    return x0 - px, y0 - py, x1 + px, y1 + py


def marker_rows(
    devs: list[DeviceInfo], alarmed: set[str], now_ns: int
) -> dict[str, list[dict[str, Any]]]:
    """Marker rows per layer for the given devices (those without a position are skipped)."""
    out: dict[str, list[dict[str, Any]]] = {
        "lighting_cabinet": [],
        "dust_monitor": [],
        "vehicle": [],
    }
    for d in devs:
        pos = d.position()
        if pos is None or d.kind not in out:
            continue
        lat, lon = pos
        row: dict[str, Any] = {
            "id": d.device_id,
            "name": d.name or d.device_id,
            "x": lon,
            "y": lat,
        }
        if d.kind == "lighting_cabinet":
            st = cabinet_state(d, d.device_id in alarmed, now_ns)
            row |= {"colour": CAB_COLOURS[st], "road": d.attrs.get("road", ""), "state": st}
        elif d.kind == "dust_monitor":
            pm10 = d.values.get("pm10")
            row |= {"colour": _pm10_colour(pm10), "pm10": math.nan if pm10 is None else pm10}
        else:
            fleet = d.attrs.get("fleet", "")
            heading = d.values.get("heading") or 0.0
            row |= {
                "name": d.attrs.get("plate") or d.name or d.device_id,
                "colour": FLEET_PALETTE[partition_of(fleet, len(FLEET_PALETTE))],
                # Bokeh angles are counter-clockwise from east; headings clockwise from north.
                "angle": -math.radians(heading), "fleet": fleet,
                "speed": d.values.get("speed") if d.values.get("speed") is not None else math.nan,
            }  # fmt: skip
        out[d.kind].append(row)
    return out


class CityMap:
    """A Bokeh figure with a static outline layer and three live device layers.

    ``redraw_all`` is the baseline the benchmark compares against: every update replaces
    the whole marker layers instead of patching the changed markers.
    """

    def __init__(
        self,
        basemap: str | None,
        *,
        dark: bool = True,
        height: int = 640,
        marker_size: int = 11,
        redraw_all: bool = False,
        lang: str = "zh",
        legend_kinds: tuple[str, ...] = ("lighting_cabinet", "dust_monitor", "vehicle"),
    ) -> None:
        self.redraw_all = redraw_all
        self._fitted = False
        bg, fg = ("#0b1220", "#8da2c0") if dark else ("#ffffff", "#444444")
        lon0, lat0, lon1, lat1 = CHENGDU_EXTENT
        self.fig = figure(
            x_range=Range1d(lon0, lon1), y_range=Range1d(lat0, lat1), match_aspect=True,
            sizing_mode="stretch_both", min_height=height, tools="pan,wheel_zoom,reset",
            active_scroll="wheel_zoom", background_fill_color=bg, border_fill_color=bg,
            outline_line_color=None, x_axis_label="lon", y_axis_label="lat",
        )  # fmt: skip
        self.fig.toolbar.logo = None
        for ax in (self.fig.xaxis, self.fig.yaxis):
            ax.axis_label_text_color = fg
            ax.major_label_text_color = fg
            ax.axis_line_color = fg
        self.fig.grid.grid_line_color = "#1c2840" if dark else "#eeeeee"
        xs, ys = load_outlines(find_basemap(basemap))
        if xs:
            self.fig.patches(xs=xs, ys=ys, fill_color="#16233b" if dark else "#f1f3f5",
                             line_color="#3b5b8c", line_width=1, fill_alpha=0.6)  # fmt: skip
        self.cabinets = CdsSync(
            ["id", "name", "x", "y", "colour", "road", "state"], name="rg-cabinets"
        )
        self.dust = CdsSync(["id", "name", "x", "y", "colour", "pm10"], name="rg-dust")
        self.trucks = CdsSync(
            ["id", "name", "x", "y", "colour", "angle", "fleet", "speed"], name="rg-trucks"
        )
        r1 = self.fig.scatter(
            "x",
            "y",
            source=self.cabinets.source,
            marker="square",
            size=marker_size,
            color="colour",
            line_color="#0b1220",
            legend_label=tr("lighting_cabinet", lang),
        )
        r2 = self.fig.scatter(
            "x",
            "y",
            source=self.dust.source,
            marker="circle",
            size=marker_size + 1,
            color="colour",
            line_color="#0b1220",
            legend_label=tr("dust_monitor", lang),
        )
        r3 = self.fig.scatter("x", "y", source=self.trucks.source, marker="triangle", size=marker_size + 3,
                              angle="angle", color="colour", line_color="#0b1220",
                              legend_label=tr("vehicle", lang))  # fmt: skip
        self.fig.add_tools(
            HoverTool(renderers=[r1], tooltips=[("", "@name"), ("", "@road"), ("", "@state")]),
            HoverTool(renderers=[r2], tooltips=[("", "@name"), ("PM10", "@pm10{0}")]),
            HoverTool(renderers=[r3], tooltips=[("", "@name"), ("", "@fleet"), ("km/h", "@speed{0}")]),
        )  # fmt: skip
        # Only the layers this map is about (the fleet map has no cabinets to explain).
        shown = {tr(k, lang) for k in legend_kinds}
        self.fig.legend.items = [
            i for i in self.fig.legend.items if getattr(i.label, "value", None) in shown
        ]
        self.fig.legend.location = "top_left"
        self.fig.legend.background_fill_color = bg
        self.fig.legend.background_fill_alpha = 0.85
        self.fig.legend.border_line_color = "#3b5b8c" if dark else "#cccccc"
        self.fig.legend.label_text_color = "#dbe4f0" if dark else fg
        self.fig.legend.label_text_font_size = "14px"

    def rows(
        self, devs: list[DeviceInfo], alarmed: set[str], now_ns: int
    ) -> dict[str, list[dict[str, Any]]]:
        """Marker rows per layer for the given devices (see :func:`marker_rows`)."""
        return marker_rows(devs, alarmed, now_ns)

    def fit(self, devs: list[DeviceInfo]) -> bool:
        """Zoom to the devices' padded extent (once: later the operator's pan/zoom stays)."""
        ext = devices_extent(devs)
        if ext is None or self._fitted:
            return False
        self._fitted = True
        (
            self.fig.x_range.start,
            self.fig.y_range.start,
            self.fig.x_range.end,
            self.fig.y_range.end,
        ) = ext
        return True

    def reset(self, devs: list[DeviceInfo], alarmed: set[str], now_ns: int) -> None:
        """Repaint every layer (and zoom to the devices the first time)."""
        self.fit(devs)
        rows = self.rows(devs, alarmed, now_ns)
        self.cabinets.reset(rows["lighting_cabinet"])
        self.dust.reset(rows["dust_monitor"])
        self.trucks.reset(rows["vehicle"])

    def redraw(self, devs: list[DeviceInfo], alarmed: set[str], now_ns: int) -> None:
        """Replace every layer's data wholesale (the benchmark's baseline)."""
        rows = self.rows(devs, alarmed, now_ns)
        self.cabinets.reset(rows["lighting_cabinet"])
        self.dust.reset(rows["dust_monitor"])
        self.trucks.reset(rows["vehicle"])

    def update(self, devs: list[DeviceInfo], alarmed: set[str], now_ns: int) -> None:
        """Patch/stream the given devices' markers."""
        if self.redraw_all:
            return
        rows = self.rows(devs, alarmed, now_ns)
        self.cabinets.update(rows["lighting_cabinet"])
        self.dust.update(rows["dust_monitor"])
        self.trucks.update(rows["vehicle"])


def alarmed_devices(alarms: list[AlarmEvent]) -> set[str]:
    """Devices with at least one active alarm."""
    return {a.device_id for a in alarms}
