"""``rongguan``: one entry point with a subcommand per job (each has ``--help``)."""

from __future__ import annotations

import argparse
import json
import sys

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``rongguan`` command."""
    p = argparse.ArgumentParser(
        prog="rongguan",
        description="Rongguan (蓉管): real-time IoT for a city's urban-management command center.",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    d = sub.add_parser("demo", help="the whole system on embedded defaults, in one go")
    d.add_argument("--port", type=int, default=5006, help="dashboard port (default 5006)")
    d.add_argument("--host", default="127.0.0.1", help="dashboard address to bind")
    d.add_argument(
        "--size", default="district", choices=["tiny", "district"], help="simulated city size"
    )
    d.add_argument("--seed", type=int, default=1, help="seed of the simulated city")
    d.add_argument("--mqtt-url", help="use this broker instead of starting one (mqtt://HOST:PORT)")
    d.add_argument(
        "--broker",
        choices=["auto", "mosquitto", "embedded"],
        default="auto",
        help="which broker to start: Mosquitto if installed (auto), or the embedded one",
    )
    d.add_argument("--influx-url", help="also write telemetry to this InfluxDB (v2 write API)")
    d.add_argument("--influx-token", default="", help="InfluxDB API token")
    d.add_argument("--influx-org", default="rongguan", help="InfluxDB organisation")
    d.add_argument("--influx-bucket", default="rongguan", help="InfluxDB bucket (database)")
    d.add_argument(
        "--case-url", help="send cases to this HTTP case system instead of the embedded inbox"
    )
    d.add_argument("--scenario", help="fault scenario YAML (default: the shipped demo scenario)")
    d.add_argument(
        "--poll-s", type=float, help="poll interval of OPC-UA/Modbus devices (default: per device)"
    )
    d.add_argument(
        "--batch-delay-s", type=float, default=0.5, help="agent batching delay (default 0.5 s)"
    )
    d.add_argument(
        "--var-dir", default="var/demo", help="where the demo keeps its files (wiped at start)"
    )
    d.add_argument(
        "--speed",
        type=float,
        help="run the whole system on one simulated clock this many times faster than the "
        "wall (e.g. 120: a night in minutes; max 3600)",
    )
    d.add_argument(
        "--start",
        help="simulated time when the system is up: HH:MM today or an ISO date-time (China time)",
    )

    from rongguan.simulate import add_parser as add_simulate

    add_simulate(sub)

    for name, what in (
        ("agent", "an edge agent: polls its devices, publishes telemetry, executes commands"),
        (
            "ingest",
            "ingest: MQTT telemetry into the store (and the rules engine, unless --no-rules)",
        ),
        ("rules", "the rules engine alone, consuming telemetry from MQTT"),
        ("dashboard", "the Panel dashboard"),
    ):
        sp = sub.add_parser(name, help=what)
        sp.add_argument("-c", "--config", required=True, help="deployment YAML")
        if name == "agent":
            sp.add_argument("--agent", help="agent id (default: the only agent in the config)")
        if name in ("ingest", "rules"):
            sp.add_argument("--partition", type=int, help="consume only this telemetry partition")
        if name == "ingest":
            sp.add_argument(
                "--no-rules", action="store_true", help="do not run the rules engine here"
            )

    c = sub.add_parser("check-config", help="validate a deployment YAML and report every error")
    c.add_argument("file")

    b = sub.add_parser("bench", help="run a benchmark; the last output line is one JSON object")
    b.add_argument("name", help="benchmark name (see `rongguan bench list`)")

    from rongguan.lighting import add_parser as add_lighting

    add_lighting(sub)

    dec = sub.add_parser(
        "decode", help="decode one field frame to JSON (exit 1 with the reason if bad)"
    )
    dec.add_argument("protocol", choices=["hj212", "jt808"])
    dec.add_argument(
        "frame", help="HJ 212: the frame text (##...); JT/T 808: hex bytes (spaces allowed)"
    )

    bt = sub.add_parser(
        "backtest",
        help="run a rule set over stored history; report the alarms it would have raised",
        add_help=False,
    )
    bt.add_argument("args", nargs=argparse.REMAINDER)

    ev = sub.add_parser(
        "evaluate",
        help="precision, recall and latency of alarms against the simulator's ground truth",
        add_help=False,
    )
    ev.add_argument("args", nargs=argparse.REMAINDER)

    br = sub.add_parser(
        "broker", help="an embedded MQTT broker (amqtt) for machines without Mosquitto"
    )
    br.add_argument("--port", type=int, default=1883)
    return p


#: subcommands whose options their own module parses
_PASS_THROUGH = {"backtest": "rules.backtest", "evaluate": "rules.evaluate"}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``rongguan`` command."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in _PASS_THROUGH:  # these parse their own options
        from rongguan.runner import setup_logging

        setup_logging(False)
        module = __import__(_PASS_THROUGH[argv[0]], fromlist=["main"])
        return module.main(argv[1:])
    args = build_parser().parse_args(argv)
    from rongguan.runner import setup_logging

    setup_logging(args.verbose)
    if args.command == "check-config":
        return _check_config(args.file)
    if args.command == "bench":
        from rongguan.bench import run_bench

        return run_bench(args.name)
    if args.command == "decode":
        return _decode(args.protocol, args.frame)
    if args.command == "lighting":
        from rongguan.lighting import run as run_lighting

        return run_lighting(args)
    if args.command == "demo":
        from rongguan.demo import run_demo

        return run_demo(args)
    from rongguan import services

    return services.run(args)


def _decode(protocol: str, text: str) -> int:
    from drivers import hj212, jt808

    try:
        doc = hj212.decode_cli(text) if protocol == "hj212" else jt808.decode_cli(text)
    except (hj212.FrameError, jt808.FrameError) as exc:
        print(f"rejected: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(doc, ensure_ascii=False, indent=2))
    return 0


def _check_config(path: str) -> int:
    from contracts.config import ConfigError, load_config

    try:
        cfg = load_config(path)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        print(f"{path}: INVALID ({len(exc.errors)} error(s))", file=sys.stderr)
        return 1
    summary = {
        "agents": len(cfg.agents),
        "devices": len(cfg.devices()),
        "rules": len(cfg.rules),
        "store": "embedded+influxdb" if cfg.store.influx else "embedded",
        "case_sink": cfg.cases.sink,
    }
    print(f"{path}: OK {json.dumps(summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
