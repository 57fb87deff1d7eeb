"""Chengdu place data for the simulated city: roads, districts and named places.

Coordinates are WGS-84, approximate (good to a few hundred metres): enough to put devices
on the right streets of a map, not for surveying.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

__all__ = [
    "Road",
    "ROADS",
    "RINGS",
    "OUTER_RING_M",
    "DISPOSAL_SPOTS",
    "TREATMENT_SPOTS",
    "DEPOT_SPOTS",
    "PEDESTRIAN_ZONE",
    "RESTAURANTS",
    "COMPANIES",
    "CONTRACTORS",
    "CENTER",
    "all_streets",
    "offset_point",
]

CENTER = (30.6598, 104.0657)  # Tianfu Square


@dataclass(frozen=True)
class Road:
    """A road as a straight segment, with its class (district: informal, may be empty)."""

    name: str
    road_class: str  # "main" | "secondary"
    district: str
    start: tuple[float, float]
    end: tuple[float, float]


ROADS: tuple[Road, ...] = (
    Road("人民南路", "main", "武侯区", (30.6560, 104.0660), (30.6050, 104.0670)),
    Road("蜀都大道", "main", "青羊区", (30.6600, 104.0300), (30.6575, 104.1100)),
    Road("天府大道", "main", "高新区", (30.6040, 104.0680), (30.5200, 104.0700)),
    Road("人民北路", "main", "金牛区", (30.6720, 104.0720), (30.7000, 104.0750)),
    Road("光华大道", "main", "青羊区", (30.6730, 103.9800), (30.6700, 104.0300)),
    Road("建设路", "main", "成华区", (30.6740, 104.1000), (30.6820, 104.1250)),
    Road("东大街", "main", "锦江区", (30.6550, 104.0750), (30.6500, 104.0900)),
    Road("益州大道", "main", "高新区", (30.6000, 104.0500), (30.5500, 104.0520)),
    Road("红星路", "secondary", "锦江区", (30.6400, 104.0820), (30.6700, 104.0830)),
    Road("金府路", "secondary", "金牛区", (30.7100, 104.0200), (30.7120, 104.0500)),
    Road("科华北路", "secondary", "武侯区", (30.6300, 104.0760), (30.6050, 104.0770)),
    Road("府青路", "secondary", "成华区", (30.6750, 104.0850), (30.6920, 104.1000)),
    Road("沙湾路", "secondary", "金牛区", (30.6700, 104.0420), (30.6900, 104.0430)),
    Road("天府二街", "secondary", "高新区", (30.5590, 104.0450), (30.5600, 104.0800)),
    Road("玉林路", "secondary", "武侯区", (30.6380, 104.0580), (30.6300, 104.0600)),
    Road("青羊大道", "secondary", "青羊区", (30.6650, 104.0100), (30.6900, 104.0150)),
)

# Ring roads around 天府广场 as circles (radius in metres): good enough for a street map
# at city scale, and the boundaries of the central banned zones.
RINGS: dict[str, float] = {"一环路": 2600.0, "二环路": 4600.0, "三环路": 8000.0}
OUTER_RING_M = 12_500.0  # 绕城高速: construction-waste trucks go round the city on it

# Outskirt spots: (lat, lon, locality). Names are completed with the district they fall in.
DISPOSAL_SPOTS: tuple[tuple[float, float, str], ...] = (
    (30.5900, 104.2300, "洪河"),
    (30.8000, 104.1500, "大丰"),
    (30.5300, 103.9500, "黄水"),
    (30.8300, 103.8800, "犀浦"),
    (30.6800, 103.8000, "寿安"),
    (30.8500, 104.2700, "大弯"),
    (30.4300, 104.0800, "正兴"),
    (30.4200, 103.8300, "花源"),
)
TREATMENT_SPOTS: tuple[tuple[float, float, str], ...] = (
    (30.6200, 104.2100, "长安"),
    (30.4600, 104.0000, "永安"),
)
DEPOT_SPOTS: tuple[tuple[float, float, str], ...] = (
    (30.7050, 104.0450, "金府"),
    (30.6200, 104.0400, "红牌楼"),
    (30.6850, 104.1150, "建设"),
    (30.5650, 104.0600, "桂溪"),
    (30.6400, 104.1000, "牛市口"),
    (30.6700, 104.0200, "苏坡"),
    (30.7200, 104.0900, "驷马桥"),
    (30.6000, 104.0000, "簇桥"),
)
# 春熙路—太古里 pedestrian quarter, [lon, lat] ring: no construction-waste trucks at any hour.
PEDESTRIAN_ZONE: tuple[tuple[float, float], ...] = (
    (104.0770, 30.6520),
    (104.0890, 30.6520),
    (104.0890, 30.6600),
    (104.0770, 30.6600),
)

COMPANIES = {
    "construction_waste": ("成都蜀运渣土运输有限公司", "四川锦程建筑垃圾清运有限公司"),
    "sanitation": ("成都市环境卫生管理公司", "成都城投环境服务有限公司"),
    "kitchen_waste": ("成都兴蓉餐厨垃圾收运有限公司",),
}

CONTRACTORS = ("中建三局", "中铁二局", "四川华西集团", "成都建工集团", "中国五冶集团")
RESTAURANTS = ("火锅", "串串香", "川菜馆", "冒菜", "小面馆", "烧烤", "钵钵鸡", "中餐厅")
_STREET_HEAD = "锦蓉府青金华玉桂芳龙双城少宽窄草红新光清文武望江东西南北八宝磨盘"
_STREET_TAIL = ("兴路", "华街", "安路", "林街", "江路", "泉街", "阳路", "康街", "宁路", "福街")


def _ring_sections() -> list[Road]:
    # Each ring in 12 arcs of 30°, named as Chengdu names them: 东一段, 南二段, ...
    out = []
    for ring, radius in RINGS.items():
        for k in range(12):
            a0, a1 = math.radians(k * 30 + 45), math.radians(k * 30 + 75)  # from east, ccw
            side = "东北西南"[int(((k * 30 + 60 + 45) % 360) // 90)]
            name = f"{ring}{side}{'一二三'[k % 3]}段"
            out.append(Road(name, "main", "", _offset(radius, a0), _offset(radius, a1)))
    return out


def _offset(radius_m: float, angle: float) -> tuple[float, float]:
    lat = CENTER[0] + radius_m * math.sin(angle) / 111_320.0
    lon = CENTER[1] + radius_m * math.cos(angle) / (111_320.0 * math.cos(math.radians(CENTER[0])))
    return round(lat, 6), round(lon, 6)


def _grid_streets() -> list[Road]:
    # A plausible street grid inside 三环: a street every ~600 m each way, clipped to the ring.
    out, r, step = [], RINGS["三环路"] - 300.0, 600.0
    k, n = 0, int(r // step)
    for axis in ("ew", "ns"):
        for i in range(-n, n + 1):
            off = i * step
            half = math.sqrt(r * r - off * off)
            name = (
                _STREET_HEAD[k % len(_STREET_HEAD)]
                + _STREET_TAIL[(k + k // len(_STREET_HEAD)) % len(_STREET_TAIL)]
            )
            k += 1
            if axis == "ew":
                a = _offset(math.hypot(half, off), math.atan2(off, -half))
                b = _offset(math.hypot(half, off), math.atan2(off, half))
            else:
                a = _offset(math.hypot(half, off), math.atan2(-half, off))
                b = _offset(math.hypot(half, off), math.atan2(half, off))
            out.append(Road(name, "secondary", "", a, b))
    return out


@cache
def all_streets() -> tuple[Road, ...]:
    """Named roads, ring-road sections and the street grid (the same for every seed)."""
    return (*ROADS, *_ring_sections(), *_grid_streets())


def offset_point(radius_m: float, angle: float) -> tuple[float, float]:
    """``(lat, lon)`` at ``radius_m`` from 天府广场, ``angle`` radians counter-clockwise from east."""
    return _offset(radius_m, angle)
