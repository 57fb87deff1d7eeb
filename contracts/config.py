"""Typed deployment config: one YAML file describes broker, store, agents, rules, cases
and dashboard. Validated once at start-up; every error names file, field and bad value.

Relative file paths are resolved against ``var_dir``; a relative ``var_dir`` is
resolved against the directory of the config file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from contracts._model import ID_PATTERN as _ID
from contracts._model import Model as _Model
from contracts.clock import HHMM, MAX_SPEED, Clock, ClockError, check_speed, parse_start
from contracts.geofence import GeofenceConfig
from contracts.rule_config import (
    RULE_FAMILIES,
    AnyRuleConfig,
    AstroRuleConfig,
    CategoryConfig,
    CrossRuleConfig,
    FlatlineRuleConfig,
    GuardConfig,
    NoiseRuleConfig,
    RateRuleConfig,
    RuleConfig,
    StaleRuleConfig,
    WindowRuleConfig,
)
from contracts.telemetry import DeviceKind

__all__ = [
    "ConfigError",
    "BrokerConfig",
    "InfluxConfig",
    "StoreConfig",
    "Location",
    "DeviceConfig",
    "BatchConfig",
    "BufferConfig",
    "AgentConfig",
    "IngestConfig",
    "GeofenceConfig",
    "GuardConfig",
    "CategoryConfig",
    "RuleConfig",
    "WindowRuleConfig",
    "StaleRuleConfig",
    "FlatlineRuleConfig",
    "RateRuleConfig",
    "CrossRuleConfig",
    "AstroRuleConfig",
    "NoiseRuleConfig",
    "AnyRuleConfig",
    "RULE_FAMILIES",
    "AlarmsConfig",
    "CaseConfig",
    "UserConfig",
    "DashboardConfig",
    "ClockConfig",
    "DeploymentConfig",
    "ROLES",
    "load_config",
    "parse_config",
]

_YEAR_2000 = 946_684_800.0  # epoch s: smaller numbers in a clock section are not dates
ROLES = ("viewer", "lighting_engineer", "sanitation_supervisor", "operator", "admin")
Role = Literal["viewer", "lighting_engineer", "sanitation_supervisor", "operator", "admin"]


class ConfigError(ValueError):
    """A config that failed validation; ``errors`` holds one line per problem."""

    def __init__(self, source: str, errors: list[str]):
        self.source = source
        self.errors = errors
        super().__init__(f"{source}: {len(errors)} error(s)\n" + "\n".join(errors))


class BrokerConfig(_Model):
    """The MQTT broker every service talks to."""

    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: str | None = None
    keepalive_s: int = Field(30, ge=5, le=3600)
    max_inflight: int = Field(1000, ge=1, le=60000)  # paho wraps its packet ids at 65,535

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("mqtt", "tcp") or not parts.hostname:
            raise ValueError("expected mqtt://HOST[:PORT]")
        return v

    @property
    def host(self) -> str:
        return urlsplit(self.url).hostname or "127.0.0.1"

    @property
    def port(self) -> int:
        return urlsplit(self.url).port or 1883


class InfluxConfig(_Model):
    """An InfluxDB server written through the v2 write API and read with InfluxQL."""

    url: str
    token: str = ""
    org: str = "rongguan"
    bucket: str = "rongguan"
    timeout_s: float = Field(10.0, gt=0)
    # Compress write bodies: pays on links slower than ~the break-even that
    # `rongguan bench ingest` prints (gzip costs CPU that loopback/LAN writes do not need).
    gzip: bool = False
    # Bodies of one write posted side by side: influxd parses one while the next arrives
    # (`rongguan bench ingest`: 0.64 -> 0.75 of the raw /write ceiling going from 1 to 2).
    write_connections: int = Field(2, ge=1, le=8)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if urlsplit(v).scheme not in ("http", "https"):
            raise ValueError("expected http(s)://HOST:PORT")
        return v.rstrip("/")


class StoreConfig(_Model):
    """Where telemetry history goes: the embedded store, and InfluxDB when configured."""

    path: str = "store.db"
    influx: InfluxConfig | None = None


class Location(_Model):
    """WGS-84 position."""

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class DeviceConfig(_Model):
    """One field device an agent owns."""

    id: str = Field(pattern=_ID)
    kind: DeviceKind
    protocol: Literal["opcua", "modbus", "mqtt_tracker", "hj212", "jt808"]
    profile: str  # name of a profile in hardware/profiles
    # opc.tcp://h:p, modbus://h:p, an MQTT topic for trackers, or for pushing devices
    # (HJ 212, JT/T 808) the agent's listener tcp://bind:port, shared by many devices
    endpoint: str
    unit_id: int | None = Field(None, ge=0, le=247)
    address: dict[str, Any] = Field(
        default_factory=dict
    )  # protocol-specific, e.g. OPC-UA node prefix
    interval_s: float = Field(5.0, gt=0, le=86400)
    timeout_s: float = Field(3.0, gt=0, le=600)
    # On a shared line (a Modbus gateway's one connection) a higher priority's request goes
    # before queued lower ones, so an overloaded line slows the low ones first.
    priority: Literal["high", "normal", "low"] = "normal"
    # Modbus: extra tries of a read that timed out or found the device busy (05/06/0B).
    retries: int = Field(0, ge=0, le=5)
    name: str = ""
    location: Location | None = None
    attrs: dict[str, str] = Field(default_factory=dict)  # road_class, fleet, company, plate, ...

    @field_validator("kind")
    @classmethod
    def _field_kind(cls, v: DeviceKind) -> DeviceKind:
        if v == DeviceKind.AGENT:
            raise ValueError("'agent' is the kind of an agent's own telemetry, not of a device")
        return v


class BatchConfig(_Model):
    """How an agent groups rows into MQTT messages."""

    max_rows: int = Field(5000, ge=1, le=1_000_000)
    max_delay_s: float = Field(1.0, gt=0, le=60)


class BufferConfig(_Model):
    """Store-and-forward: bounded, with a policy for when it is full."""

    path: str = "agent-buffer.db"
    max_batches: int = Field(100_000, ge=1)
    max_bytes: int = Field(0, ge=0)  # summed payload bytes; 0: no byte quota
    policy: Literal["drop_oldest", "drop_newest"] = "drop_oldest"


class AgentConfig(_Model):
    """One edge agent and the devices it owns.

    ``templates`` describe a fleet of identical devices once: a device that names a
    ``template`` takes every key from it that it does not set itself.
    """

    id: str = Field(pattern=_ID)
    templates: dict[str, dict[str, Any]] = Field(default_factory=dict)
    batch: BatchConfig = Field(default_factory=BatchConfig)
    buffer: BufferConfig = Field(default_factory=BufferConfig)
    metrics_port: int | None = Field(None, ge=0, le=65535)  # Prometheus /metrics; 0 = any free port
    # The agent's own figures as telemetry of device ``<id>`` (kind agent) every so often; 0: off.
    telemetry_interval_s: float = Field(10.0, ge=0, le=3600)
    devices: list[DeviceConfig] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _apply_templates(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not data.get("templates"):
            return data
        templates = data["templates"]
        devices = []
        for dev in data.get("devices") or []:
            if isinstance(dev, dict) and "template" in dev:
                name = dev["template"]
                if name not in templates:
                    raise ValueError(f"device {dev.get('id')!r}: unknown template {name!r}")
                merged = {**templates[name], **{k: v for k, v in dev.items() if k != "template"}}
                devices.append(merged)
            else:
                devices.append(dev)
        return {**data, "devices": devices}


class AlarmsConfig(_Model):
    """Where the rules service keeps alarms and the case outbox."""

    path: str = "alarms.db"


class CaseConfig(_Model):
    """The case sink: the embedded case inbox (default) or the city's case system over HTTP."""

    sink: Literal["embedded", "http"] = "embedded"
    path: str = "cases.db"
    url: str | None = None
    timeout_s: float = Field(5.0, gt=0)
    retry_max_s: float = Field(60.0, gt=0)

    @model_validator(mode="after")
    def _url_for_http(self) -> CaseConfig:
        if self.sink == "http" and not self.url:
            raise ValueError("sink 'http' needs a url")
        return self


class UserConfig(_Model):
    """A dashboard login."""

    name: str = Field(pattern=_ID)
    password: str = Field(min_length=4)
    role: Role


class DashboardConfig(_Model):
    """The Panel dashboard server."""

    host: str = "127.0.0.1"
    port: int = Field(5006, ge=1, le=65535)
    title: str = "蓉管 · 城市管理指挥中心"
    language: Literal["zh", "en"] = "zh"
    users: list[UserConfig] = Field(default_factory=list)
    guest_role: Role | None = "viewer"  # kiosk wall screens need no login
    # GeoJSON base layer (district polygons); the `rongguan` shell fills in the shipped
    # Chengdu districts when this is empty. An intranet tile server can come later.
    basemap: str | None = None
    # Screens get a change at most this long after it reached the dashboard (sooner when
    # idle); a burst within it goes out as one update per screen.
    push_interval_s: float = Field(0.1, gt=0, le=5)


class IngestConfig(_Model):
    """How ingest guards and buffers: spill to disk while the store is down, value limits."""

    spill_max_rows: int = Field(5_000_000, ge=1)
    spill_policy: Literal["block", "drop_oldest", "drop_newest"] = "block"
    tracker_topic: str | None = None  # third-party tracker JSON accepted on this MQTT filter
    limits: dict[str, tuple[float, float]] = Field(default_factory=dict)  # "kind.field": [lo, hi]
    max_future_s: float = Field(300.0, gt=0)
    max_past_s: float = Field(7 * 86400.0, gt=0)
    # Prometheus /metrics; worker of partition p listens on metrics_port + p; 0 = any free port
    metrics_port: int | None = Field(None, ge=0, le=65535)

    @field_validator("limits")
    @classmethod
    def _limit_keys(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for key, (lo, hi) in v.items():
            if "." not in key:
                raise ValueError(f"limit key {key!r} must be 'kind.field'")
            if lo > hi:
                raise ValueError(f"limit {key}: min {lo} > max {hi}")
        return v


class ClockConfig(_Model):
    """The deployment's clock (see :mod:`contracts.clock`): the wall clock unless sped up.

    Simulated time is ``start`` at wall time ``anchor`` and runs ``speed`` times as fast;
    every service of the deployment reads the same section, so they share one time.
    """

    speed: float = 1.0
    start: str | float | None = None  # HH:MM (the anchor's day, China time), ISO, or epoch s
    anchor: str | float | None = None  # wall epoch seconds or ISO date-time of the start

    @field_validator("speed")
    @classmethod
    def _speed(cls, v: float) -> float:
        try:
            return check_speed(v)
        except ClockError:
            raise ValueError(f"speed must be a number in (0, {MAX_SPEED:g}]") from None

    @field_validator("start", "anchor")
    @classmethod
    def _time(cls, v: str | float | None, info: ValidationInfo) -> str | float | None:
        if info.field_name == "anchor" and isinstance(v, str) and HHMM.fullmatch(v.strip()):
            raise ValueError("anchor must be a full date-time or epoch seconds, not HH:MM")
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v < _YEAR_2000:
            raise ValueError(
                "epoch seconds before 2000: YAML reads an unquoted HH:MM as a number "
                "(17:30 -> 1050); quote it"
            )
        try:
            parse_start(v, 0.0)
        except ClockError:
            raise ValueError(
                "expected HH:MM, an ISO date-time like 2026-12-21T17:00 or epoch seconds"
            ) from None
        return v

    @model_validator(mode="after")
    def _shared_anchor(self) -> ClockConfig:
        # without a shared anchor each service would start its own simulated time
        if self.anchor is None and (self.speed != 1.0 or self.start is not None):
            raise ValueError(
                "anchor is needed with a speed or start: the wall time (epoch s or ISO) "
                "at which simulated time is `start`, the same for every service"
            )
        return self

    def build(self) -> Clock:
        """The clock this section describes."""
        return Clock(self.speed, self.start, self.anchor)


class DeploymentConfig(_Model):
    """A whole deployment of Rongguan."""

    site: str = "chengdu"
    timezone: str = "Asia/Shanghai"  # the city's local time: schedules, day/night limits, display
    var_dir: str = "var"
    partitions: int = Field(1, ge=1, le=1024)
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    ingest: IngestConfig = Field(default_factory=IngestConfig)
    agents: list[AgentConfig] = Field(default_factory=list)
    rules: list[AnyRuleConfig] = Field(default_factory=list)
    alarms: AlarmsConfig = Field(default_factory=AlarmsConfig)
    cases: CaseConfig = Field(default_factory=CaseConfig)
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)
    geofences: list[GeofenceConfig] = Field(default_factory=list)
    clock: ClockConfig = Field(default_factory=ClockConfig)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown IANA time zone (e.g. Asia/Shanghai)") from None
        return v

    @property
    def tz(self) -> ZoneInfo:
        """The city's time zone."""
        return ZoneInfo(self.timezone)

    @model_validator(mode="after")
    def _unique(self) -> DeploymentConfig:
        _no_duplicates("agents", [a.id for a in self.agents])
        _no_duplicates("devices", [d.id for a in self.agents for d in a.devices])
        # An agent's own telemetry travels under its id: it must not name a device too.
        _no_duplicates(
            "agent and device",
            [a.id for a in self.agents] + [d.id for a in self.agents for d in a.devices],
        )
        _no_duplicates("rules", [r.id for r in self.rules])
        _no_duplicates("geofences", [g.id for g in self.geofences])
        _no_duplicates("dashboard.users", [u.name for u in self.dashboard.users])
        return self

    def path(self, p: str) -> Path:
        """A configured file path, resolved against ``var_dir``."""
        return Path(self.var_dir) / p

    def check_partition(self, partition: int | None) -> None:
        """ValueError unless ``partition`` is None or one of this deployment's: agents
        never publish elsewhere, so a worker there would store nothing, silently."""
        if partition is not None and not 0 <= partition < self.partitions:
            raise ValueError(
                f"partition {partition} is outside 0..{self.partitions - 1} "
                f"(partitions: {self.partitions})"
            )

    def agent(self, agent_id: str) -> AgentConfig:
        """The agent with this id; KeyError names the known ones."""
        for a in self.agents:
            if a.id == agent_id:
                return a
        raise KeyError(f"no agent {agent_id!r}; known: {[a.id for a in self.agents]}")

    def devices(self) -> dict[str, tuple[AgentConfig, DeviceConfig]]:
        """Every device by id, with the agent that owns it."""
        return {d.id: (a, d) for a in self.agents for d in a.devices}

    def inventory(self) -> dict[str, str]:
        """Kind of every telemetry source by id: the devices, and each agent (kind agent)."""
        out = {d.id: str(d.kind) for a in self.agents for d in a.devices}
        out.update({a.id: str(DeviceKind.AGENT) for a in self.agents})
        return out


def _no_duplicates(what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    dup = sorted({i for i in ids if i in seen or seen.add(i)})  # type: ignore[func-returns-value]
    if dup:
        raise ValueError(f"duplicate {what} ids: {', '.join(dup)}")


def parse_config(
    data: Any, source: str = "<config>", base_dir: Path | None = None, node: Any = None
) -> DeploymentConfig:
    """Validate already-parsed YAML/JSON data; raise :class:`ConfigError` on any problem.

    ``node`` is the composed YAML tree, used to point each error at its line.
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            source, [f"{source}: top level must be a mapping, got {type(data).__name__}"]
        )
    try:
        cfg = DeploymentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, [_describe(source, e, node) for e in exc.errors()]) from None
    if base_dir is not None and not Path(cfg.var_dir).is_absolute():
        cfg.var_dir = str((base_dir / cfg.var_dir).resolve())
    return cfg


def load_config(path: str | Path) -> DeploymentConfig:
    """Load and validate a deployment YAML file."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"{source}: cannot read: {exc.strerror}"]) from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(source, [f"{source}: not valid YAML: {exc}"]) from None
    return parse_config(data, source, path.parent, node)


def _describe(source: str, err: Any, node: Any) -> str:
    loc = [
        p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "tagged-")))
    ]
    # a rule's family tag is not a key of the YAML: rules[0].threshold.set -> rules[0].set
    loc = [
        p
        for i, p in enumerate(loc)
        if not (p in RULE_FAMILIES and i > 0 and isinstance(loc[i - 1], int))
    ]
    dotted = ""
    for p in loc:
        dotted += f"[{p}]" if isinstance(p, int) else (f".{p}" if dotted else str(p))
    where = source
    line = _line_of(node, loc) if node is not None else None
    if line is not None:
        where = f"{source}:{line}"
    value = err.get("input")
    shown = "" if err["type"] == "missing" else f" (got {_short(value)})"
    msg = re.sub(r"^Value error, ", "", err["msg"])
    return f"{where}: {dotted or '<top>'}: {msg}{shown}"


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _line_of(node: Any, loc: list[Any]) -> int | None:
    """1-based line of the deepest YAML node on the error's path."""
    line = node.start_mark.line + 1
    for part in loc:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            for k, v in node.value:
                if k.value == part:
                    node = v
                    line = k.start_mark.line + 1
                    break
            else:
                return line
        elif (
            isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value)
        ):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
