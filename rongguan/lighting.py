"""``rongguan lighting schedule``: the switching times the astronomical clock gives."""

from __future__ import annotations

import argparse
import json
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from contracts.astro import sun_times, switch_times

__all__ = ["add_parser", "run", "night_schedule"]


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``lighting schedule`` on the main parser."""
    p = sub.add_parser("lighting", help="street-lighting tools")
    lsub = p.add_subparsers(dest="lighting_command", required=True, metavar="TOOL")
    s = lsub.add_parser(
        "schedule", help="switching times of the astronomical clock for a place and day"
    )
    s.add_argument("--lat", type=float, required=True, help="latitude, degrees north (WGS-84)")
    s.add_argument("--lon", type=float, required=True, help="longitude, degrees east (WGS-84)")
    s.add_argument(
        "--date", type=date.fromisoformat, default=None, help="YYYY-MM-DD (default: today)"
    )
    s.add_argument(
        "--tz", default="Asia/Shanghai", help="time zone to print in (default Asia/Shanghai)"
    )
    s.add_argument("--on-offset", type=float, default=0.0, help="minutes after sunset to switch on")
    s.add_argument(
        "--off-offset", type=float, default=0.0, help="minutes after sunrise to switch off"
    )
    s.add_argument("--half-night", default="00:00-05:00",
                   help="half-night (半夜灯) circuits dark between these local times, or 'none'")  # fmt: skip
    s.add_argument("--json", action="store_true", help="print JSON instead of a table")


def night_schedule(
    lat: float, lon: float, day: date, tz: ZoneInfo, on_offset: float = 0.0, off_offset: float = 0.0,
    half_night: tuple[time, time] | None = (time(0, 0), time(5, 0)),
) -> dict[str, str | float | None]:  # fmt: skip
    """The night that starts on local ``day``: sunset, switch-on, half-night, switch-off, sunrise."""
    if not -90 <= lat <= 90 or not -180 <= lon <= 180:
        raise ValueError(f"lat/lon out of range: {lat}, {lon}")
    _, sunset = sun_times(lat, lon, day)
    sunrise_next, _ = sun_times(lat, lon, day + timedelta(days=1))
    _, on = switch_times(lat, lon, day, on_offset, off_offset)
    off, _ = switch_times(lat, lon, day + timedelta(days=1), on_offset, off_offset)
    out: dict[str, str | float | None] = {
        "date": day.isoformat(),
        "timezone": tz.key,
        "sunset": sunset.astimezone(tz).isoformat(timespec="minutes") if sunset else None,
        "lights_on": on.astimezone(tz).isoformat(timespec="minutes"),
        "lights_off": off.astimezone(tz).isoformat(timespec="minutes"),
        "sunrise_next_day": sunrise_next.astimezone(tz).isoformat(timespec="minutes")
        if sunrise_next
        else None,
        "hours_lit": round((off - on).total_seconds() / 3600, 2),
    }
    if half_night is not None:
        start_day = day if half_night[0] >= time(12) else day + timedelta(days=1)
        start = datetime.combine(start_day, half_night[0], tz)
        end = datetime.combine(day + timedelta(days=1), half_night[1], tz)
        start, end = max(start, on).astimezone(tz), min(end, off).astimezone(tz)
        out["half_night_off"] = start.isoformat(timespec="minutes") if start < end else None
        out["half_night_on"] = end.isoformat(timespec="minutes") if start < end else None
        out["hours_lit_half_night"] = round(
            out["hours_lit"] - max(0.0, (end - start).total_seconds() / 3600), 2
        )  # type: ignore[operator]
    return out


def run(args: argparse.Namespace) -> int:
    """Print the schedule; exit 2 with a reason for bad input."""
    try:
        tz = ZoneInfo(args.tz)
        half = None
        if args.half_night.lower() != "none":
            a, b = args.half_night.split("-")
            half = (time.fromisoformat(a), time.fromisoformat(b))
        day = args.date or datetime.now(tz).date()
        sched = night_schedule(args.lat, args.lon, day, tz, args.on_offset, args.off_offset, half)
    except (ValueError, KeyError) as exc:
        print(f"rongguan lighting schedule: {exc}")
        return 2
    if args.json:
        print(json.dumps(sched, ensure_ascii=False))
    else:
        width = max(len(k) for k in sched)
        for k, v in sched.items():
            print(f"{k:<{width}}  {v}")
    return 0
