"""``rongguan simulate``: the simulated devices alone, for hardware-in-the-loop work."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]

log = logging.getLogger("rongguan")


def _interval(text: str) -> list[float]:
    lo, _, hi = text.partition("-")
    try:
        out = [float(lo), float(hi or lo)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected S or LOW-HIGH seconds, got {text!r}") from None
    if not 0 < out[0] <= out[1]:
        raise argparse.ArgumentTypeError(f"expected 0 < LOW <= HIGH, got {text!r}")
    return out


def _part(text: str) -> tuple[int, int]:
    i, _, n = text.partition("/")
    try:
        part = (int(i) - 1, int(n))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/N (e.g. 2/4), got {text!r}") from None
    if not 0 <= part[0] < part[1]:
        raise argparse.ArgumentTypeError(f"expected 1 <= I <= N, got {text!r}")
    return part


def add_parser(sub: Any) -> None:
    """Register the ``simulate`` subcommand."""
    s = sub.add_parser(
        "simulate",
        help="the simulated devices alone (hardware in the loop)",
        description="Serve a simulated Chengdu over its real protocols and print (or write) "
        "the endpoints and agent device entries as JSON. One simulated clock drives every "
        "device: --start/--speed run a night in minutes, with every timestamp in simulated "
        "time. A city too big for one process runs as --processes N parts.",
    )
    s.add_argument("--size", default="district", choices=["tiny", "district", "city"])
    s.add_argument("--seed", type=int, default=1)
    s.add_argument(
        "--mqtt-url", default="mqtt://127.0.0.1:1883", help="broker the trackers publish to"
    )
    s.add_argument("--scenario", help="fault scenario YAML")
    s.add_argument(
        "--hj212-listener", metavar="HOST:PORT", help="the agent's HJ 212 listener to push to"
    )
    s.add_argument(
        "--jt808-listener", metavar="HOST:PORT", help="the agent's JT/T 808 listener to push to"
    )
    s.add_argument("--ground-truth", help="append injected faults as JSON lines to this file")
    s.add_argument("--endpoints-json", help="write the served endpoints and device configs here")
    c = s.add_argument_group("simulated clock (default: the scenario's, else real time)")
    c.add_argument("--start", help="simulated start: HH:MM today or an ISO date-time (China time)")
    c.add_argument("--speed", type=float, help="simulated seconds per wall second (max 3600)")
    c.add_argument(
        "--stamps",
        choices=["sim", "wall"],
        help="time on the wire (default: wall at speed 1, simulated otherwise)",
    )
    c.add_argument(
        "--tick-s", type=float, default=1.0, help="simulated seconds between cabinet updates"
    )
    c.add_argument(
        "--anchor",
        type=float,
        help="wall epoch seconds at which simulated time is --start (default: when the city "
        "starts); give a deployment's `clock:` section the same start, speed and anchor",
    )
    r = s.add_argument_group("rates and layout")
    r.add_argument(
        "--tracker-interval",
        type=_interval,
        default=[2.0, 2.0],
        metavar="S|LOW-HIGH",
        help="MQTT tracker report interval, simulated s; a range gives each its own "
        "(the field: 10-30; default 2)",
    )
    r.add_argument(
        "--push-interval", type=float, default=20.0, help="HJ 212 / JT/T 808 report interval"
    )
    r.add_argument("--cabinets-per-server", type=int, default=500, help="per OPC-UA endpoint")
    r.add_argument(
        "--units-per-port",
        type=int,
        default=1,
        help="Modbus unit ids behind one port (a gateway); 1: a port per device",
    )
    p = s.add_argument_group("a city in several processes")
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        help="serve the city as N processes, one part each (see `rongguan bench sim`)",
    )
    p.add_argument("--part", type=_part, help="serve only part I/N (every N-th device of a kind)")


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "size": args.size,
        "seed": args.seed,
        "mqtt_url": args.mqtt_url,
        "scenario": args.scenario,
        "ground_truth": args.ground_truth,
        "hj212_listener": args.hj212_listener,
        "jt808_listener": args.jt808_listener,
        "speed": args.speed,
        "start": args.start,
        "stamps": args.stamps,
        "tick_s": args.tick_s,
        "tracker_interval_s": args.tracker_interval,
        "push_interval_s": args.push_interval,
        "cabinets_per_server": args.cabinets_per_server,
        "units_per_port": args.units_per_port,
    }


def _publish(args: argparse.Namespace, doc: dict[str, Any]) -> None:
    text = json.dumps(doc, ensure_ascii=False, indent=2)
    if args.endpoints_json:
        tmp = Path(args.endpoints_json).with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(args.endpoints_json)  # readers never see half a file
    else:
        print(text, flush=True)
    log.info(
        "simulated city (%s, seed %d) serving %d devices, clock %s",
        args.size,
        args.seed,
        len(doc["devices"]),
        doc["clock"],
    )


async def run(args: argparse.Namespace, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set."""
    from hardware.sim.clock import ClockError
    from hardware.sim.faults import FaultError
    from hardware.sim.parts import build, serve, serve_parts

    opts = _options(args)
    anchor = getattr(args, "anchor", None)
    if anchor is not None and args.processes > 1:
        print(
            "rongguan simulate: --anchor serves one process (parts share their own)",
            file=sys.stderr,
        )
        raise SystemExit(2)
    try:
        # a bad clock or scenario: one line, exit 2
        city = build(opts, args.part or (0, 1), anchor)
    except (ClockError, FaultError, ValueError) as exc:
        print(f"rongguan simulate: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.processes > 1:
        await serve_parts(opts, args.processes, stop, lambda doc: _publish(args, doc))
        return
    city, doc = await serve(opts, args.part or (0, 1), city=city)
    try:
        _publish(args, doc)
        await stop.wait()
    finally:
        await city.stop()
