"""The simulated Chengdu inventory: cabinets, dust monitors and vehicles, built from a seed.

The same ``(size, seed)`` always gives the same inventory, so tests, demos and benchmarks
talk about the same devices.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from hardware.chengdu import COMPANIES, ROADS, Road, all_streets
from hardware.geo.locate import adcode_of, district_at
from hardware.geography import (
    BannedZone,
    CollectionPoint,
    Facility,
    Route,
    Site,
    assign,
    banned_zones,
    facilities,
    located,
    make_site,
)
from hardware.profiles import load_profile

__all__ = ["Cabinet", "DustMonitor", "Vehicle", "Inventory", "SIZES", "build_inventory"]

# (opc-ua cabinets, modbus lighting controllers, dust monitors, {fleet: trucks})
SIZES: dict[str, tuple[int, int, int, dict[str, int]]] = {
    "tiny": (2, 1, 2, {"construction_waste": 1, "sanitation": 1, "kitchen_waste": 1}),
    "district": (10, 2, 6, {"construction_waste": 6, "sanitation": 4, "kitchen_waste": 2}),
    "city": (
        4800,
        200,
        2700,
        {"construction_waste": 12000, "sanitation": 1500, "kitchen_waste": 300},
    ),
}
# Devices that push to the agent's listeners: (HJ 212 monitors, JT/T 808 trucks); every
# third JT/T 808 terminal speaks the 2019 header. ``tiny`` gets them only when asked.
PUSH_SIZES: dict[str, tuple[int, int]] = {"tiny": (2, 3), "district": (4, 6), "city": (600, 3000)}
# (disposal sites, treatment plants, depots, collection points per kitchen-waste truck)
GEO_SIZES: dict[str, tuple[int, int, int, int]] = {
    "tiny": (3, 1, 4, 3),
    "district": (3, 1, 4, 4),
    "city": (8, 2, 8, 8),
}
_DUST_PROFILES = ("modbus_dust_monitor", "modbus_dust_monitor_cdab_mg")
_PLATE_CHARS = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"  # no I or O on Chinese plates


@dataclass(frozen=True)
class Cabinet:
    """A street-lighting cabinet (or a single-cabinet Modbus controller)."""

    id: str
    name: str
    road: str
    road_class: str  # "main" | "secondary"
    district: str
    lat: float
    lon: float
    profile: str
    circuits: int
    lamps_per_circuit: tuple[int, ...]
    lamp_watts: float


@dataclass(frozen=True)
class DustMonitor:
    """A dust and noise monitor at a construction site."""

    id: str
    site_name: str
    permit_no: str
    district: str
    lat: float
    lon: float
    profile: str
    mn: str = ""  # HJ 212 monitoring-point number (24 characters) for pushing monitors
    site_id: str = ""  # the construction site (CS-...) the monitor stands in


@dataclass(frozen=True)
class Vehicle:
    """A GPS-tracked truck of one of the city's fleets."""

    id: str
    plate: str
    fleet: str  # "construction_waste" | "sanitation" | "kitchen_waste"
    company: str
    depot_lat: float
    depot_lon: float
    profile: str
    phone: str = ""  # JT/T 808 terminal phone number (SIM), for JT/T 808 terminals
    jt808_version: int | None = None  # None: 2013 header; 1: 2019 header
    depot: str = ""  # depot id (DP-..)
    route: str = ""  # construction waste: approved route id (RT-..)
    collection: tuple[str, ...] = ()  # kitchen waste: collection point ids (CP-..), in order
    plant: str = ""  # kitchen waste: treatment plant id (TP-..)


@dataclass(frozen=True)
class Inventory:
    """Everything the simulated city contains."""

    size: str
    seed: int
    cabinets: list[Cabinet] = field(default_factory=list)
    dust_monitors: list[DustMonitor] = field(default_factory=list)
    vehicles: list[Vehicle] = field(default_factory=list)
    sites: list[Site] = field(default_factory=list)
    disposal_sites: list[Facility] = field(default_factory=list)
    treatment_plants: list[Facility] = field(default_factory=list)
    depots: list[Facility] = field(default_factory=list)
    collection_points: list[CollectionPoint] = field(default_factory=list)
    banned_zones: list[BannedZone] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)

    def device_ids(self) -> list[str]:
        """Every device id, cabinets first."""
        return (
            [c.id for c in self.cabinets]
            + [d.id for d in self.dust_monitors]
            + [v.id for v in self.vehicles]
        )

    def get(self, device_id: str) -> Cabinet | DustMonitor | Vehicle:
        """The device with this id; KeyError when unknown."""
        for dev in (*self.cabinets, *self.dust_monitors, *self.vehicles):
            if dev.id == device_id:
                return dev
        raise KeyError(f"no device {device_id!r} in the {self.size} inventory")


def build_inventory(
    size: str = "tiny", seed: int = 1, push_devices: bool | None = None
) -> Inventory:
    """Build the inventory of a given size, deterministically from ``seed``.

    ``push_devices`` adds HJ 212 monitors and JT/T 808 trucks (new ids, from 1001 or the
    next power of ten past the size's own ids); default: yes for district and city.
    """
    if size not in SIZES:
        raise ValueError(f"unknown inventory size {size!r}; known: {', '.join(SIZES)}")
    n_opc, n_mb, n_dust, fleets = SIZES[size]
    n_disposal, n_plants, n_depots, n_cp = GEO_SIZES[size]
    depots = facilities("depot", n_depots)
    rng = random.Random(f"rongguan-{size}-{seed}")
    cabinets = [_cabinet(rng, i + 1, "opcua_lighting_cabinet") for i in range(n_opc)]
    cabinets += [_cabinet(rng, n_opc + i + 1, "modbus_lighting_controller") for i in range(n_mb)]
    sites: list[Site] = []
    dust = [_dust(rng, i + 1, _DUST_PROFILES[i % 2], sites) for i in range(n_dust)]
    vehicles: list[Vehicle] = []
    plates: set[str] = set()
    for fleet, count in fleets.items():
        for _ in range(count):
            vehicles.append(_vehicle(rng, len(vehicles) + 1, fleet, plates, depots))
    if push_devices if push_devices is not None else size != "tiny":
        # Their own random stream, so the other devices stay exactly as they were.
        push_rng = random.Random(f"rongguan-{size}-{seed}-push")
        _add_push(push_rng, size, dust, vehicles, plates, sites, depots)
    disposal = facilities("disposal_site", n_disposal)
    plants = facilities("treatment_plant", n_plants)
    geo_rng = random.Random(f"rongguan-{size}-{seed}-geo")
    vehicles, routes, points = assign(geo_rng, vehicles, sites, disposal, plants, n_cp)
    return Inventory(
        size,
        seed,
        cabinets,
        dust,
        vehicles,
        sites=sites,
        disposal_sites=disposal,
        treatment_plants=plants,
        depots=depots,
        collection_points=points,
        banned_zones=banned_zones(),
        routes=routes,
    )


def _base(n: int) -> int:
    base = 1000
    while base <= n:
        base *= 10
    return base


def _add_push(
    rng: random.Random,
    size: str,
    dust: list[DustMonitor],
    vehicles: list[Vehicle],
    plates: set[str],
    sites: list[Site],
    depots: list[Facility],
) -> None:
    n_hj, n_jt = PUSH_SIZES[size]
    base = _base(len(dust))
    for i in range(1, n_hj + 1):
        d = _dust(rng, base + i, "hj212_dust_monitor", sites)
        code = adcode_of(d.district)
        mn = f"{code}HJ212{base + i:013d}"  # 6 + 5 + 13 = 24 characters
        dust.append(DustMonitor(**{**d.__dict__, "mn": mn}))
    base, fleets = _base(len(vehicles)), ("construction_waste", "kitchen_waste", "sanitation")
    for i in range(1, n_jt + 1):
        v = _vehicle(
            rng, base + i, fleets[(i - 1) % 3] if i <= 3 else "construction_waste", plates, depots
        )
        phone = f"01{rng.choice((39, 58, 86))}{base + i:08d}"  # 12 digits: the 2013 BCD[6]
        version = 1 if i % 3 == 0 else None
        vehicles.append(
            Vehicle(
                **{
                    **v.__dict__,
                    "profile": "jt808_tracker",
                    "phone": phone,
                    "jt808_version": version,
                }
            )
        )


def _on_road(rng: random.Random, road: Road) -> tuple[float, float]:
    t = rng.random()
    lat = road.start[0] + t * (road.end[0] - road.start[0])
    lon = road.start[1] + t * (road.end[1] - road.start[1])
    # Cabinets stand beside the road, not on its centre line (~10-30 m off).
    return round(lat + rng.uniform(-2e-4, 2e-4), 6), round(lon + rng.uniform(-2e-4, 2e-4), 6)


def _cabinet(rng: random.Random, n: int, profile_name: str) -> Cabinet:
    # Walk the named roads first so small inventories cover main and secondary roads; then
    # the ring-road sections and the street grid inside 三环.
    road = ROADS[(n - 1) % len(ROADS)] if n <= len(ROADS) else rng.choice(all_streets())
    lat, lon = _on_road(rng, road)
    while district_at(lat, lon) is None:  # a sliver between simplified boundaries
        lat, lon = _on_road(rng, road)
    circuits = load_profile(profile_name).circuits
    main = road.road_class == "main"
    lamps = tuple(rng.randint(18, 32) if main else rng.randint(10, 22) for _ in range(circuits))
    watts = rng.choice((150.0, 200.0, 250.0) if main else (60.0, 80.0, 100.0))
    name = f"{road.name}{n}号路灯控制箱"
    district = located(lat, lon)
    return Cabinet(
        f"LC-{n:04d}",
        name,
        road.name,
        road.road_class,
        district,
        lat,
        lon,
        profile_name,
        circuits,
        lamps,
        watts,
    )


def _dust(rng: random.Random, n: int, profile_name: str, sites: list[Site]) -> DustMonitor:
    site, lat, lon = make_site(rng, n)
    sites.append(site)
    district = located(lat, lon)
    return DustMonitor(
        f"DM-{n:04d}", site.name, site.permit_no, district, lat, lon, profile_name, site_id=site.id
    )


def _vehicle(
    rng: random.Random, n: int, fleet: str, plates: set[str], depots: list[Facility]
) -> Vehicle:
    while True:
        tail = "".join(rng.choice(_PLATE_CHARS[:10] if i < 2 else _PLATE_CHARS) for i in range(5))
        plate = f"川A·{tail}"
        if plate not in plates:
            plates.add(plate)
            break
    depot = depots[(n - 1) % len(depots)]
    company = rng.choice(COMPANIES[fleet])
    return Vehicle(
        f"TRK-{n:04d}",
        plate,
        fleet,
        company,
        depot.lat,
        depot.lon,
        "mqtt_json_tracker",
        depot=depot.id,
    )
