"""Device profiles as data: what each device model exposes and where.

A profile file (``<name>.yaml`` in this folder) lists the device's points. Adding a
device model means adding a profile file, not code. Point keys are the telemetry field
names; ``*`` in a key or address template stands for the circuit number (1-based) and is
expanded ``circuits`` times.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Point", "Profile", "load_profile", "profile_names", "PROFILE_DIR"]

PROFILE_DIR = Path(__file__).parent


class Point(BaseModel):
    """One data point of a device model."""

    model_config = ConfigDict(extra="forbid")

    key: str  # telemetry field name (snake_case; FIWARE/TALQ names where they fit)
    type: Literal["bool", "int16", "uint16", "int32", "uint32", "float32", "float64"] = "float32"
    unit: str = ""
    scale: float = 1.0  # canonical value = raw * scale + offset
    offset: float = 0.0
    writable: bool = False
    # Modbus: table and 0-based address
    table: Literal["coil", "discrete", "input", "holding"] | None = None
    address: int | None = None
    # OPC-UA: browse name of the variable under the device object
    node: str | None = None
    # MQTT JSON: the member of the payload that carries this value
    member: str | None = None
    # HJ 212: pollutant code (e.g. a34002 for PM10); JT/T 808: member of the decoded
    # location report ("lat", "speed", "status.12", "extra.0x01", ...)
    code: str | None = None
    fiware: str | None = None  # the FIWARE / TALQ attribute this corresponds to
    description: str = ""


class Profile(BaseModel):
    """A device model: protocol, kind and points."""

    model_config = ConfigDict(extra="forbid")

    name: str
    protocol: Literal["opcua", "modbus", "mqtt_tracker", "hj212", "jt808"]
    kind: Literal["lighting_cabinet", "dust_monitor", "vehicle"]
    description: str = ""
    vendor: str = ""
    circuits: int = Field(0, ge=0, le=64)  # lighting: number of switchable circuits
    word_order: Literal["big", "little"] = "big"  # big: high word first (ABCD)
    byte_order: Literal["big", "little"] = "big"
    # Modbus: the widest hole between two points of a table the device answers (with 0s)
    # inside one read; the planner merges across such holes. None: the driver's default.
    max_gap: int | None = Field(None, ge=0, le=124)
    namespace: str | None = None  # OPC-UA namespace URI
    methods: dict[str, str] = Field(default_factory=dict)  # action -> OPC-UA method browse name
    time: dict[str, str] = Field(default_factory=dict)  # MQTT JSON: {"member": ..., "unit": "ms"}
    id_member: str | None = None  # MQTT JSON member naming the device
    points: list[Point]

    def expanded(self) -> list[Point]:
        """Points with ``*`` templates expanded per circuit (address steps by the point's width)."""
        out: list[Point] = []
        for p in self.points:
            if "*" not in p.key:
                out.append(p)
                continue
            width = _width(p.type)
            for n in range(1, self.circuits + 1):
                out.append(
                    p.model_copy(
                        update={
                            "key": p.key.replace("*", str(n)),
                            "node": p.node.replace("*", str(n)) if p.node else None,
                            "address": None if p.address is None else p.address + (n - 1) * width,
                        }
                    )
                )
        return out

    def point(self, key: str) -> Point:
        """The expanded point with this key."""
        for p in self.expanded():
            if p.key == key:
                return p
        raise KeyError(f"profile {self.name!r} has no point {key!r}")


def _width(type_: str) -> int:
    """Registers (or coils) one value of this type occupies."""
    return {
        "bool": 1,
        "int16": 1,
        "uint16": 1,
        "int32": 2,
        "uint32": 2,
        "float32": 2,
        "float64": 4,
    }[type_]


def profile_names() -> list[str]:
    """Names of the shipped profiles."""
    return sorted(p.stem for p in PROFILE_DIR.glob("*.yaml"))


@cache
def load_profile(name: str) -> Profile:
    """Load a shipped profile by name; KeyError lists the known ones."""
    path = PROFILE_DIR / f"{name}.yaml"
    if not path.is_file():
        raise KeyError(f"unknown profile {name!r}; known: {', '.join(profile_names())}")
    return Profile.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
