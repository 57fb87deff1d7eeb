"""HJ 212 settings of one device and the mapping of a decoded frame to telemetry rows.

Field rule (documented for the dashboards and rules):

- CN 2011 (real-time) ``code-Rtd`` -> ``<key>``; CN 2051 / 2061 / 2031 ``code-Avg`` ->
  ``<key>_avg_1m`` / ``<key>_avg_1h`` / ``<key>_avg_1d``.
- A value is only emitted when its data flag is ``N`` (normal) or absent. Any other flag
  (F stopped, M maintenance, S manual, D fault, C calibration, T over range, B comms lost)
  emits ``<field>_flag`` with the flag's code from :data:`FLAG_CODES` instead, so a
  calibration value never reaches a threshold rule.
- Values are ``raw * scale + offset`` from the profile; ``address.scale`` (key -> factor)
  overrides the profile's scale per device (monitors of the same model set up in other units).
- The time is CP ``DataTime`` (YYYYMMDDhhmmss, Beijing time, UTC+8), else the QN.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from contracts.config import DeviceConfig
from contracts.telemetry import TelemetryRow
from drivers.base import BadConfig
from drivers.hj212.codec import DATA_CNS, FrameError, Hj212Frame, parse_number
from hardware.profiles import Point, Profile, load_profile

__all__ = ["Hj212Settings", "settings_for", "frame_rows", "FLAG_CODES", "parse_endpoint"]

FLAG_CODES = {"N": 0, "F": 1, "M": 2, "S": 3, "D": 4, "C": 5, "T": 6, "B": 7}
_SUFFIX = {"2011": "", "2051": "_avg_1m", "2061": "_avg_1h", "2031": "_avg_1d"}
_BEIJING = dt.timezone(dt.timedelta(hours=8))


@dataclass(frozen=True)
class Hj212Settings:
    """Listener endpoint, MN, points by pollutant code and buffer bound of one monitor."""

    host: str
    port: int
    mn: str
    profile: Profile
    points: dict[str, Point]  # pollutant code -> point
    scale: dict[str, float]  # key -> effective scale
    max_buffered: int
    stale_s: float


def parse_endpoint(device_id: str, endpoint: str) -> tuple[str, int]:
    """``tcp://HOST:PORT`` -> (host, port); BadConfig otherwise."""
    rest = endpoint.removeprefix("tcp://")
    host, _, port = rest.rpartition(":")
    if rest == endpoint or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise BadConfig(f"{device_id}: endpoint {endpoint!r} must be tcp://HOST:PORT")
    return host.strip("[]"), int(port)


def settings_for(device: DeviceConfig) -> Hj212Settings:
    """Resolve endpoint, MN and profile; BadConfig names the problem."""
    host, port = parse_endpoint(device.id, device.endpoint)
    mn = device.address.get("mn")
    if not isinstance(mn, str) or not mn or not mn.isascii() or ";" in mn:
        raise BadConfig(f"{device.id}: address.mn must be the monitor's MN string, got {mn!r}")
    try:
        profile = load_profile(device.profile)
    except KeyError as exc:
        raise BadConfig(f"{device.id}: {exc.args[0]}") from None
    if profile.protocol != "hj212":
        raise BadConfig(f"{device.id}: profile {profile.name!r} is for {profile.protocol}")
    points = {p.code or p.key: p for p in profile.expanded()}
    scale = {p.key: p.scale for p in points.values()}
    for key, factor in dict(device.address.get("scale", {})).items():
        if key not in scale or isinstance(factor, bool) or not isinstance(factor, (int, float)):
            raise BadConfig(f"{device.id}: address.scale.{key} must name a point and a number")
        scale[key] = float(factor)
    max_buffered = device.address.get("max_buffered", 10_000)
    if type(max_buffered) is not int or max_buffered < 1:
        raise BadConfig(f"{device.id}: address.max_buffered must be an integer >= 1")
    stale_s = float(device.address.get("stale_s", max(60.0, 3 * device.interval_s)))
    return Hj212Settings(host, port, mn, profile, points, scale, max_buffered, stale_s)


def _time_ns(frame: Hj212Frame) -> int:
    text = frame.cp.get("DataTime") or frame.qn[:14]
    if len(text) != 14 or not text.isascii() or not text.isdigit():
        raise FrameError(f"bad DataTime/QN time: {text!r}")
    try:
        t = dt.datetime.strptime(text, "%Y%m%d%H%M%S").replace(tzinfo=_BEIJING)
    except ValueError:
        raise FrameError(f"bad DataTime/QN time: {text!r}") from None
    return int(t.timestamp()) * 1_000_000_000


def frame_rows(
    frame: Hj212Frame, s: Hj212Settings, device_id: str, kind: str
) -> list[TelemetryRow]:
    """Rows of one data frame (CN 2011/2051/2061/2031); [] for other CNs."""
    if frame.cn not in DATA_CNS:
        return []
    ts = _time_ns(frame)
    value_suffix, field_suffix = DATA_CNS[frame.cn], _SUFFIX[frame.cn]
    rows: list[TelemetryRow] = []
    for code, members in frame.items.items():
        p = s.points.get(code)
        if p is None or value_suffix not in members:
            continue  # pollutants the profile does not list are not ours to publish
        name = p.key + field_suffix
        flag = members.get("Flag", "N")
        if flag != "N":
            if flag not in FLAG_CODES:
                raise FrameError(f"bad data flag for {code}-Flag: {flag!r}")
            rows.append(TelemetryRow(device_id, kind, ts, f"{name}_flag", float(FLAG_CODES[flag])))
            continue
        raw = parse_number(members[value_suffix], f"{code}-{value_suffix}")
        rows.append(TelemetryRow(device_id, kind, ts, name, raw * s.scale[p.key] + p.offset))
    return rows
