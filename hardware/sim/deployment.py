"""Device entries for an edge agent's config, from an inventory and the city's endpoints."""

from __future__ import annotations

from typing import Any

from hardware.inventory import Inventory
from hardware.sim.truck_faults import COLLECTION_HOURS

__all__ = ["agent_devices", "geofences"]

_DUST_INTERVAL_S = 5.0
_LIGHTING_INTERVAL_S = 2.0


def agent_devices(inventory: Inventory, endpoints: dict[str, Any]) -> list[dict[str, Any]]:
    """Dicts valid as ``contracts.config.DeviceConfig``, one per served device."""
    cabinets = {c.id: c for c in inventory.cabinets}
    monitors = {d.id: d for d in inventory.dust_monitors}
    vehicles = {v.id: v for v in inventory.vehicles}

    def identity(dev_id: str) -> dict[str, Any]:
        """Kind, profile, name, location and attributes an operator knows the device by."""
        if dev_id in cabinets:
            cab = cabinets[dev_id]
            # the asset register: what relative rules (lighting.lamp_failure) expect of a circuit
            attrs = {"road": cab.road, "road_class": cab.road_class, "district": cab.district,
                     "lamps_per_circuit": ",".join(str(n) for n in cab.lamps_per_circuit),
                     "lamp_watts": f"{cab.lamp_watts:g}"}  # fmt: skip
            return {"kind": "lighting_cabinet", "profile": cab.profile, "name": cab.name,
                    "interval_s": _LIGHTING_INTERVAL_S,
                    "location": {"lat": cab.lat, "lon": cab.lon}, "attrs": attrs}  # fmt: skip
        if dev_id in monitors:
            mon = monitors[dev_id]
            attrs = {
                "site_name": mon.site_name,
                "permit_no": mon.permit_no,
                "district": mon.district,
            }
            return {"kind": "dust_monitor", "profile": mon.profile, "name": mon.site_name,
                    "interval_s": _DUST_INTERVAL_S,
                    "location": {"lat": mon.lat, "lon": mon.lon}, "attrs": attrs}  # fmt: skip
        veh = vehicles[dev_id]
        attrs = {"plate": veh.plate, "fleet": veh.fleet, "company": veh.company}
        return {"kind": "vehicle", "profile": veh.profile, "name": veh.plate,
                "location": {"lat": veh.depot_lat, "lon": veh.depot_lon}, "attrs": attrs}  # fmt: skip

    out: list[dict[str, Any]] = []
    for server in endpoints.get("opcua", []):
        for dev_id in server["devices"]:
            out.append({"id": dev_id, **identity(dev_id), "protocol": "opcua",
                        "endpoint": server["endpoint"],
                        "address": {"namespace": server["namespace"]}})  # fmt: skip
    for e in endpoints.get("modbus", []):
        out.append({"id": e["device_id"], **identity(e["device_id"]), "protocol": "modbus",
                    "profile": e["profile"], "endpoint": e["endpoint"], "unit_id": e["unit_id"]})  # fmt: skip
    for e in endpoints.get("mqtt_trackers", []):
        out.append({"id": e["device_id"], **identity(e["device_id"]), "protocol": "mqtt_tracker",
                    "endpoint": e["topic"], "interval_s": float(e.get("interval_s", 2.0))})  # fmt: skip
    for e in endpoints.get("hj212", []):
        mon = monitors[e["device_id"]]
        out.append({"id": mon.id, **identity(mon.id), "protocol": "hj212",
                    "endpoint": e["endpoint"], "address": {"mn": mon.mn},
                    "interval_s": float(e.get("interval_s", 20.0))})  # fmt: skip
    for e in endpoints.get("jt808", []):
        veh = vehicles[e["device_id"]]
        entry = {"id": veh.id, **identity(veh.id), "protocol": "jt808",
                 "endpoint": e["endpoint"], "address": {"phone": veh.phone},
                 "interval_s": float(e.get("interval_s", 20.0))}  # fmt: skip
        entry["attrs"] = {**entry["attrs"], "header": str(e.get("header", 2013))}
        out.append(entry)
    return out


def _ll(p: tuple[float, float]) -> list[float]:
    return [p[1], p[0]]  # (lat, lon) -> GeoJSON [lon, lat]


def geofences(inventory: Inventory) -> list[dict[str, Any]]:
    """Dicts valid as ``contracts.geofence.GeofenceConfig``: every place trucks are judged by."""
    out: list[dict[str, Any]] = []
    cw, kw = ["construction_waste"], ["kitchen_waste"]
    by_site: dict[str, list[str]] = {}
    for r in inventory.routes:
        by_site.setdefault(r.site, []).extend(r.vehicles)
    for s in inventory.sites:
        poly = [list(p) for p in s.polygon]
        out.append(
            {"id": s.id, "kind": "construction_site", "name": s.name, "polygon": poly, "fleets": cw}
        )
    for f, fleets in (
        *((f, cw) for f in inventory.disposal_sites),
        *((f, kw) for f in inventory.treatment_plants),
        *((f, []) for f in inventory.depots),
    ):
        out.append(
            {
                "id": f.id,
                "kind": f.kind,
                "name": f.name,
                "center": [f.lon, f.lat],
                "radius_m": f.radius_m,
                "fleets": fleets,
            }
        )
    for p in inventory.collection_points:
        out.append(
            {
                "id": p.id,
                "kind": "collection_point",
                "name": p.name,
                "center": [p.lon, p.lat],
                "radius_m": 30.0,
                "fleets": kw,
                "vehicles": [p.vehicle],
                "hours": list(COLLECTION_HOURS),
            }
        )
    for z in inventory.banned_zones:
        shape = (
            {"polygon": [list(p) for p in z.polygon]}
            if z.polygon
            else {"center": _ll(z.center), "radius_m": z.radius_m}  # type: ignore[arg-type]
        )
        out.append(
            {
                "id": z.id,
                "kind": "banned_zone",
                "name": z.name,
                **shape,
                "fleets": list(z.fleets),
                "hours": list(z.hours) if z.hours else None,
            }
        )
    for r in inventory.routes:
        out.append(
            {
                "id": r.id,
                "kind": "approved_route",
                "name": f"{r.site} → {r.disposal}",
                "line": [_ll(p) for p in r.line],
                "corridor_m": 150.0,
                "fleets": cw,
                "vehicles": list(r.vehicles),
            }
        )
    return out
