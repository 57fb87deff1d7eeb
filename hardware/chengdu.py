"""Chengdu place data for the simulated city: roads, districts and named places.

Coordinates are WGS-84, approximate (good to a few hundred metres): enough to put devices
on the right streets of a map, not for surveying.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Road",
    "Place",
    "ROADS",
    "DISTRICT_CODES",
    "DISPOSAL_SITES",
    "TREATMENT_PLANTS",
    "DEPOTS",
    "COMPANIES",
    "CONTRACTORS",
    "CENTER",
]

CENTER = (30.6598, 104.0657)  # Tianfu Square


@dataclass(frozen=True)
class Road:
    """A road as a straight segment, with its class and the district it lies in."""

    name: str
    road_class: str  # "main" | "secondary"
    district: str
    start: tuple[float, float]
    end: tuple[float, float]


@dataclass(frozen=True)
class Place:
    """A named point (disposal site, treatment plant, depot)."""

    name: str
    district: str
    lat: float
    lon: float


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

# First six digits of construction-permit numbers (administrative division codes).
DISTRICT_CODES = {
    "锦江区": "510104",
    "青羊区": "510105",
    "金牛区": "510106",
    "武侯区": "510107",
    "成华区": "510108",
    "高新区": "510109",
}

DISPOSAL_SITES: tuple[Place, ...] = (
    Place("龙泉驿区建筑垃圾消纳场", "龙泉驿区", 30.5900, 104.2300),
    Place("新都区建筑垃圾消纳场", "新都区", 30.8000, 104.1500),
    Place("双流区建筑垃圾资源化利用厂", "双流区", 30.5300, 103.9500),
)

TREATMENT_PLANTS: tuple[Place, ...] = (
    Place("成都市餐厨垃圾无害化处理厂", "龙泉驿区", 30.6200, 104.2100),
)

DEPOTS: tuple[Place, ...] = (
    Place("金牛环卫停车场", "金牛区", 30.7050, 104.0450),
    Place("武侯环卫作业中心", "武侯区", 30.6200, 104.0400),
    Place("成华车队停车场", "成华区", 30.6850, 104.1150),
    Place("高新区环卫停车场", "高新区", 30.5650, 104.0600),
)

COMPANIES = {
    "construction_waste": ("成都蜀运渣土运输有限公司", "四川锦程建筑垃圾清运有限公司"),
    "sanitation": ("成都市环境卫生管理公司", "成都城投环境服务有限公司"),
    "kitchen_waste": ("成都兴蓉餐厨垃圾收运有限公司",),
}

CONTRACTORS = ("中建三局", "中铁二局", "四川华西集团", "成都建工集团", "中国五冶集团")
