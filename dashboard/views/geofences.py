"""Geofences on a map: zones (polygons and circles) as tinted areas and approved routes as
dashed lines, coloured by kind, named on hover, shown or hidden with one switch.

The shapes come from ``DeploymentConfig.geofences`` and never change while the server
runs, so they are computed once per process and each session only gets a static layer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import panel as pn
from bokeh.models import ColumnDataSource, HoverTool

from contracts.alarms import AlarmEvent
from contracts.geofence import GeofenceConfig
from dashboard.i18n import tr

__all__ = [
    "GEOFENCE_COLOURS",
    "GeofenceLayer",
    "circle_ring",
    "geofence_shapes",
    "geofence_of",
    "geofence_legend_html",
]

#: kind -> colour; places a truck should be green/blue, forbidden ones red.
GEOFENCE_COLOURS: dict[str, str] = {
    "construction_site": "#ffa94d",
    "disposal_site": "#74c0fc",
    "treatment_plant": "#63e6be",
    "collection_point": "#da77f2",
    "depot": "#adb5bd",
    "banned_zone": "#ff6b6b",
    "approved_route": "#69db7c",
}
_M_PER_DEG_LAT = 111_320.0
_MARKER_SOURCES = {"rg-cabinets", "rg-dust", "rg-trucks", "rg-track", "rg-cursor"}
_CIRCLE_POINTS = 48  # a ring this fine looks round at any zoom a city map is read at


def circle_ring(
    center: tuple[float, float], radius_m: float, n: int = _CIRCLE_POINTS
) -> tuple[list[float], list[float]]:
    """A circle of ``radius_m`` around ``[lon, lat]`` as a ring of lon/lat points."""
    lon0, lat0 = center
    dlat = radius_m / _M_PER_DEG_LAT
    dlon = radius_m / (_M_PER_DEG_LAT * max(math.cos(math.radians(lat0)), 1e-6))
    angles = [2 * math.pi * i / n for i in range(n)]
    return (
        [lon0 + dlon * math.cos(a) for a in angles],
        [lat0 + dlat * math.sin(a) for a in angles],
    )


def _kind_label(kind: str, lang: str) -> str:
    return tr(f"gf_{kind}", lang)


def geofence_shapes(
    geofences: Sequence[GeofenceConfig], lang: str = "zh"
) -> tuple[dict[str, list[Any]], dict[str, list[Any]]]:
    """(zones, routes) as ColumnDataSource data: one row per geofence with its ring or line."""
    zones: dict[str, list[Any]] = {k: [] for k in ("xs", "ys", "id", "name", "kind", "colour")}
    routes: dict[str, list[Any]] = {k: [] for k in ("xs", "ys", "id", "name", "kind", "colour")}
    for g in geofences:
        if g.kind == "approved_route" and g.line:
            out = routes
            xs, ys = [p[0] for p in g.line], [p[1] for p in g.line]
        elif g.polygon:
            out = zones
            xs, ys = [p[0] for p in g.polygon], [p[1] for p in g.polygon]
        elif g.center is not None and g.radius_m is not None:
            out = zones
            xs, ys = circle_ring(g.center, g.radius_m)
        else:  # the config validator makes this unreachable; skip rather than crash a page
            continue
        out["xs"].append(xs)
        out["ys"].append(ys)
        out["id"].append(g.id)
        out["name"].append(g.name or g.id)
        out["kind"].append(_kind_label(g.kind, lang))
        out["colour"].append(GEOFENCE_COLOURS.get(g.kind, "#adb5bd"))
    return zones, routes


def geofence_legend_html(geofences: Sequence[GeofenceConfig], lang: str) -> str:
    """Colour swatches of the kinds present, for next to the layer switch."""
    kinds = sorted({g.kind for g in geofences}, key=list(GEOFENCE_COLOURS).index)
    return " ".join(
        f'<span class="rg-gf-kind"><span style="display:inline-block;width:12px;height:12px;'
        f'background:{GEOFENCE_COLOURS[k]};border-radius:2px;margin-right:4px"></span>'
        f"{_kind_label(k, lang)}</span>"
        for k in kinds
    )


def geofence_of(alarm: AlarmEvent, names: dict[str, str]) -> str:
    """The geofence a vehicle alarm is about (its name when known), from the alarm's extras."""
    extra = alarm.extra or {}
    gid = extra.get("geofence") or extra.get("geofence_id") or ""
    if not gid:
        return str(extra.get("geofence_name") or "")
    return names.get(str(gid), str(extra.get("geofence_name") or gid))


class GeofenceLayer:
    """The geofence renderers of one map, and the switch that shows or hides them."""

    def __init__(self, fig: Any, geofences: Sequence[GeofenceConfig], lang: str) -> None:
        self.names = {g.id: g.name or g.id for g in geofences}
        zones, routes = geofence_shapes(geofences, lang)
        self.zones = ColumnDataSource(dict(zones), name="rg-geofence-zones")
        self.routes = ColumnDataSource(dict(routes), name="rg-geofence-routes")
        rz = fig.patches("xs", "ys", source=self.zones, fill_color="colour", fill_alpha=0.18,
                         line_color="colour", line_width=2, line_alpha=0.9)  # fmt: skip
        rr = fig.multi_line("xs", "ys", source=self.routes, line_color="colour", line_width=4,
                            line_alpha=0.85, line_dash="dashed")  # fmt: skip
        # Below the device markers: a zone must never hide a truck.
        fig.renderers.remove(rz)
        fig.renderers.remove(rr)
        first_marker = next((i for i, r in enumerate(fig.renderers)
                             if getattr(r.data_source, "name", "") in _MARKER_SOURCES),
                            len(fig.renderers))  # fmt: skip
        fig.renderers[first_marker:first_marker] = [rz, rr]
        tips = [(tr("geofence", lang), "@name"), ("", "@kind")]
        fig.add_tools(HoverTool(renderers=[rz, rr], tooltips=tips))
        self.renderers = [rz, rr]
        self.toggle = pn.widgets.Checkbox(
            label=tr("geofences", lang), value=True, css_classes=["rg-geofence-toggle"]
        )
        self.toggle.param.watch(lambda e: self.show(bool(e.new)), "value")

    def show(self, on: bool) -> None:
        """Show or hide every geofence shape."""
        for r in self.renderers:
            r.visible = on
