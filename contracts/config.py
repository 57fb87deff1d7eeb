"""Typed deployment config: one YAML file describes broker, store, agents, rules, cases
and dashboard. Validated once at start-up; every error names file, field and bad value.

Relative file paths are resolved against ``var_dir``; a relative ``var_dir`` is
resolved against the directory of the config file.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

from contracts.alarms import Severity
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
    "DeploymentConfig",
    "ROLES",
    "load_config",
    "parse_config",
]

ROLES = ("viewer", "lighting_engineer", "sanitation_supervisor", "operator", "admin")
Role = Literal["viewer", "lighting_engineer", "sanitation_supervisor", "operator", "admin"]
_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    name: str = ""
    location: Location | None = None
    attrs: dict[str, str] = Field(default_factory=dict)  # road_class, fleet, company, plate, ...


class BatchConfig(_Model):
    """How an agent groups rows into MQTT messages."""

    max_rows: int = Field(5000, ge=1, le=1_000_000)
    max_delay_s: float = Field(1.0, gt=0, le=60)


class BufferConfig(_Model):
    """Store-and-forward: bounded, with a policy for when it is full."""

    path: str = "agent-buffer.db"
    max_batches: int = Field(100_000, ge=1)
    policy: Literal["drop_oldest", "drop_newest"] = "drop_oldest"


class AgentConfig(_Model):
    """One edge agent and the devices it owns."""

    id: str = Field(pattern=_ID)
    batch: BatchConfig = Field(default_factory=BatchConfig)
    buffer: BufferConfig = Field(default_factory=BufferConfig)
    metrics_port: int | None = Field(None, ge=0, le=65535)  # Prometheus /metrics; 0 = any free port
    devices: list[DeviceConfig] = Field(default_factory=list)


class GuardConfig(_Model):
    """A rule is only evaluated while another field of the same subject has this value."""

    field: str
    equals: float


class CategoryConfig(_Model):
    """Case-system category codes (大类 / 小类)."""

    major: str = "00"
    minor: str = "0000"


class _RuleBase(_Model):
    """What every rule family shares: identity, the subject's device kind, the case."""

    id: str = Field(pattern=_ID)
    domain: Literal["lighting", "dust", "vehicle"]
    kind: DeviceKind
    field: str
    for_s: float = Field(0.0, ge=0)
    guard: GuardConfig | None = None
    severity: Severity = Severity.MAJOR
    category: CategoryConfig = Field(default_factory=CategoryConfig)
    message: str = ""

    @field_validator("field")
    @classmethod
    def _one_star(cls, v: str) -> str:
        if v.count("*") > 1:
            raise ValueError("at most one '*' in a field pattern")
        return v

    @model_validator(mode="after")
    def _guard_star(self) -> _RuleBase:
        if self.guard is not None and ("*" in self.guard.field) != ("*" in self.field):
            raise ValueError("guard field must use '*' exactly when the rule field does")
        return self


class _Hysteresis(_RuleBase):
    op: Literal["above", "below"] = "above"
    set: float
    clear: float | None = None  # defaults to ``set`` (no hysteresis)

    @model_validator(mode="after")
    def _hysteresis(self) -> _Hysteresis:
        if self.clear is None:
            self.clear = self.set
        if self.op == "above" and self.clear > self.set:
            raise ValueError(f"clear ({self.clear}) must be <= set ({self.set}) for 'above'")
        if self.op == "below" and self.clear < self.set:
            raise ValueError(f"clear ({self.clear}) must be >= set ({self.set}) for 'below'")
        return self


class RuleConfig(_Hysteresis):
    """A threshold rule with hysteresis and a minimum duration.

    ``field`` may hold one ``*`` (e.g. ``circuit*_current``); each matching field is its
    own subject, and the guard's ``*`` binds to the same text (``circuit*_on``).
    """

    family: Literal["threshold"] = "threshold"
    op: Literal["above", "below"]


class WindowRuleConfig(_Hysteresis):
    """Mean or max of the rows in the last ``window_s`` (at ``window_s / buckets``
    resolution, so irregular timestamps need no resampling) against set/clear levels."""

    family: Literal["window"]
    agg: Literal["mean", "max"] = "mean"
    window_s: float = Field(gt=0)
    buckets: int = Field(30, ge=1, le=240)


class StaleRuleConfig(_RuleBase):
    """Deadman: the device sent none of ``field`` (default: anything) for more than
    ``silent_s``; checked by ``RulesEngine.tick`` and cleared by its next row."""

    family: Literal["stale"]
    field: str = "*"
    silent_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _guard_star(self) -> StaleRuleConfig:
        # the subject is the device: a guard names one plain field of it (e.g. on_duty)
        if self.guard is not None and "*" in self.guard.field:
            raise ValueError("a staleness guard names a plain field")
        return self


class FlatlineRuleConfig(_RuleBase):
    """A stuck sensor: every value within ``eps`` of the run's first value for ``for_s``."""

    family: Literal["flatline"]
    eps: float = Field(0.0, ge=0)
    for_s: float = Field(gt=0)


class RateRuleConfig(_Hysteresis):
    """Rate of change per minute between consecutive rows against set/clear levels."""

    family: Literal["rate"]
    absolute: bool = True  # compare |rate|, so falls count as much as rises


class CrossRuleConfig(_Hysteresis):
    """Cross-field validity: ``field - other`` of the same device (rows of ``other`` no
    older or newer than ``tolerance_s``) against set/clear, e.g. pm25 > pm10."""

    family: Literal["cross"]
    other: str
    set: float = 0.0
    tolerance_s: float = Field(120.0, ge=0)

    @model_validator(mode="after")
    def _plain_fields(self) -> CrossRuleConfig:
        if "*" in self.field or "*" in self.other:
            raise ValueError("cross-field rules take plain field names")
        return self


class AstroRuleConfig(_RuleBase):
    """Lighting against the astronomical clock at the device's location: ``lit_in_day``
    (field on while the clock has lamps off) or ``dark_at_night``, after ``for_s`` grace."""

    family: Literal["astro"]
    expect: Literal["lit_in_day", "dark_at_night"]
    on_offset_min: float = 0.0  # added to sunset
    off_offset_min: float = 0.0  # added to sunrise


class NoiseRuleConfig(_RuleBase):
    """Noise against day/night limits in the city's local time (GB 12523: 70 / 55 dB(A))."""

    family: Literal["noise"]
    day_limit: float = 70.0
    night_limit: float = 55.0
    day_start_h: float = Field(6.0, ge=0, le=24)
    day_end_h: float = Field(22.0, ge=0, le=24)
    hysteresis: float = Field(2.0, ge=0)  # clears this far below the limit


def _family(v: Any) -> str:
    if isinstance(v, dict):
        return str(v.get("family", "threshold"))
    return str(getattr(v, "family", "threshold"))


AnyRuleConfig = Annotated[
    Union[  # noqa: UP007 - Tag annotations need the explicit Union
        Annotated[RuleConfig, Tag("threshold")],
        Annotated[WindowRuleConfig, Tag("window")],
        Annotated[StaleRuleConfig, Tag("stale")],
        Annotated[FlatlineRuleConfig, Tag("flatline")],
        Annotated[RateRuleConfig, Tag("rate")],
        Annotated[CrossRuleConfig, Tag("cross")],
        Annotated[AstroRuleConfig, Tag("astro")],
        Annotated[NoiseRuleConfig, Tag("noise")],
    ],
    Discriminator(_family),
]
RULE_FAMILIES = ("threshold", "window", "stale", "flatline", "rate", "cross", "astro", "noise")


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


class DeploymentConfig(_Model):
    """A whole deployment of Rongguan."""

    site: str = "chengdu"
    timezone: str = "Asia/Shanghai"  # the city's local time: schedules, day/night limits, display
    var_dir: str = "var"
    partitions: int = Field(1, ge=1, le=1024)
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
    agents: list[AgentConfig] = Field(default_factory=list)
    rules: list[AnyRuleConfig] = Field(default_factory=list)
    alarms: AlarmsConfig = Field(default_factory=AlarmsConfig)
    cases: CaseConfig = Field(default_factory=CaseConfig)
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)

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
        _no_duplicates("rules", [r.id for r in self.rules])
        _no_duplicates("dashboard.users", [u.name for u in self.dashboard.users])
        return self

    def path(self, p: str) -> Path:
        """A configured file path, resolved against ``var_dir``."""
        return Path(self.var_dir) / p

    def agent(self, agent_id: str) -> AgentConfig:
        """The agent with this id; KeyError names the known ones."""
        for a in self.agents:
            if a.id == agent_id:
                return a
        raise KeyError(f"no agent {agent_id!r}; known: {[a.id for a in self.agents]}")

    def devices(self) -> dict[str, tuple[AgentConfig, DeviceConfig]]:
        """Every device by id, with the agent that owns it."""
        return {d.id: (a, d) for a in self.agents for d in a.devices}


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
