"""``rongguan demo``: the whole system in one command, each part its own process.

Order: broker → simulated city → config written from the city's endpoints → ingest and
rules → agent → dashboard. Ctrl-C (or SIGTERM) stops everything in reverse order.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import yaml

from contracts.config import parse_config
from contracts.ports import free_port, wait_port

__all__ = ["run_demo", "demo_config", "sim_clock_args", "STARTUP_S"]

_SCENARIO = Path(__file__).resolve().parent.parent / "hardware" / "scenarios" / "demo.yaml"
#: Wall seconds from starting the simulator to the dashboard's address (measured ~8-10 s
#: on 2 loaded cores): a sped-up clock reaches ``--start`` about then.
STARTUP_S = 15.0


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def demo_config(
    args: argparse.Namespace, mqtt_url: str, devices: list[dict], var_dir: Path
) -> dict:
    """The deployment the demo runs, as plain data (written to ``var_dir/deployment.yaml``)."""
    from rules.defaults import load_default_rules

    store: dict = {"path": "store.db"}
    if args.influx_url:
        store["influx"] = {
            "url": args.influx_url,
            "token": args.influx_token,
            "org": args.influx_org,
            "bucket": args.influx_bucket,
        }
    cases: dict = {"sink": "embedded", "path": "cases.db"}
    if args.case_url:
        cases = {"sink": "http", "url": args.case_url}
    return {
        "site": "chengdu-demo",
        "var_dir": str(var_dir),
        "broker": {"url": mqtt_url},
        "store": store,
        "agents": [
            {
                "id": "agent-1",
                "batch": {"max_rows": 5000, "max_delay_s": args.batch_delay_s},
                "devices": devices,
            }
        ],
        "rules": [r.model_dump(mode="json") for r in load_default_rules()],
        "cases": cases,
        "dashboard": {
            "host": args.host,
            "port": args.port,
            "users": [
                {"name": "engineer", "password": "engineer", "role": "lighting_engineer"},
                {"name": "supervisor", "password": "supervisor", "role": "sanitation_supervisor"},
                {"name": "operator", "password": "operator", "role": "operator"},
                {"name": "admin", "password": "admin", "role": "admin"},
            ],
            "guest_role": "viewer",
        },
    }


def sim_clock_args(args: argparse.Namespace) -> list[str]:
    """The simulator's clock options for ``--speed/--start`` (none: the scenario's clock).

    A sped-up city stamps simulated time and the whole deployment runs on its clock.
    Report and update rates are simulated seconds; they grow with the speed so that the
    wall-time load stays about that of speed 1 (a tracker every 2 s at speed 1 would be
    60 reports a second at speed 120). The clock is anchored :data:`STARTUP_S` ahead, so
    ``--start`` is about when the dashboard opens, not when the simulator did.
    """
    if not _sped_up(args):
        return []
    speed = 1.0 if args.speed is None else args.speed
    start = args.start
    rate = max(1.0, speed / 4)  # simulated seconds per quarter wall second
    out = ["--speed", f"{speed:g}", "--stamps", "sim", "--anchor", f"{time.time() + STARTUP_S:.3f}"]
    out += ["--tick-s", f"{rate:g}", "--tracker-interval", f"{max(2.0, rate):g}"]
    out += ["--push-interval", f"{max(20.0, rate):g}"]
    return out + (["--start", start] if start else [])


#: protocols whose devices push: the agent's interval only drains what they sent
PUSHED = ("mqtt_tracker", "hj212", "jt808")


def _sped_up(args: argparse.Namespace) -> bool:
    return getattr(args, "speed", None) is not None or getattr(args, "start", None) is not None


def _check_clock(args: argparse.Namespace) -> str | None:
    """Why ``--speed/--start`` cannot run, or None."""
    from contracts.clock import ClockError, check_speed, parse_start

    try:
        if args.speed is not None:
            check_speed(args.speed)
        parse_start(args.start, time.time())
    except ClockError as exc:
        return str(exc)
    return None


class _Children:
    """The demo's child processes, stopped in reverse start order."""

    def __init__(self, var_dir: Path):
        self.procs: list[tuple[str, subprocess.Popen]] = []
        self.var_dir = var_dir

    def start(self, name: str, cmd: list[str]) -> subprocess.Popen:
        log = open(self.var_dir / f"{name}.log", "ab")
        # Own process group: the terminal's Ctrl-C reaches only the demo, which then
        # stops the children in order.
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
        self.procs.append((name, proc))
        return proc

    def rongguan(self, name: str, *args: str) -> subprocess.Popen:
        return self.start(name, [sys.executable, "-m", "rongguan.cli", *args])

    def dead(self) -> list[tuple[str, int]]:
        return [(n, p.returncode) for n, p in self.procs if p.poll() is not None]

    def stop_all(self) -> None:
        for name, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    print(f"  {name} did not stop in 10 s; killing it", flush=True)
                    proc.kill()
                    proc.wait()


def run_demo(args: argparse.Namespace) -> int:
    """Start every part, print the dashboard address, run until Ctrl-C."""
    from rongguan.preflight import check_demo

    # before anything starts (and before the last run's files are wiped): a broker or
    # store that is down is one clear sentence now, not minutes of waiting later
    if why := check_demo(args.mqtt_url, args.influx_url, args.influx_token):
        print(f"demo: {why}", file=sys.stderr, flush=True)
        return 2
    var_dir = Path(args.var_dir).resolve()
    if var_dir.exists():
        shutil.rmtree(var_dir)
    var_dir.mkdir(parents=True)
    children = _Children(var_dir)
    stopping = False

    def _on_signal(signum, frame):  # noqa: ARG001
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        if _sped_up(args) and (why := _check_clock(args)):
            print(f"demo: {why}", file=sys.stderr)
            return 2
        if not _port_free(args.port):
            print(f"port {args.port} is in use: pass --port N", file=sys.stderr)
            return 2
        mqtt_url = args.mqtt_url
        if not mqtt_url:
            from rongguan.broker import start_broker_process

            port = 1883 if _port_free(1883) else free_port()
            log = open(var_dir / "broker.log", "ab")
            proc, kind = start_broker_process(port, var_dir, log, args.broker)
            children.procs.append(("broker", proc))
            wait_port(port, 60, proc, "broker")
            mqtt_url = f"mqtt://127.0.0.1:{port}"
            print(f"broker      {kind} on {mqtt_url}", flush=True)
        endpoints = var_dir / "endpoints.json"
        scenario = args.scenario or str(_SCENARIO)
        sim = children.rongguan(
            "simulate", "simulate", "--size", args.size, "--seed", str(args.seed),
            "--mqtt-url", mqtt_url, "--scenario", scenario,
            "--ground-truth", str(var_dir / "ground-truth.jsonl"),
            "--endpoints-json", str(endpoints),
            "--hj212-listener", f"127.0.0.1:{free_port()}",
            "--jt808-listener", f"127.0.0.1:{free_port()}",
            *sim_clock_args(args),
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not endpoints.exists():
            if sim.poll() is not None or time.monotonic() > deadline or stopping:
                raise RuntimeError(f"simulator did not start; see {var_dir / 'simulate.log'}")
            time.sleep(0.1)
        served = json.loads(endpoints.read_text(encoding="utf-8"))
        devices = served["devices"]
        if args.poll_s:
            for dev in devices:
                if dev["protocol"] in ("opcua", "modbus"):
                    dev["interval_s"] = args.poll_s
        if _sped_up(args):
            # a pushing device's interval is the simulator's (simulated seconds); the agent
            # reads its buffer on the wall, as often as it fills at this speed
            speed = args.speed or 1.0
            for dev in devices:
                if dev["protocol"] in PUSHED:
                    dev["interval_s"] = max(0.5, dev["interval_s"] / speed)
        print(f"simulator   {len(devices)} devices, scenario {scenario}", flush=True)
        data = demo_config(args, mqtt_url, devices, var_dir)
        data["geofences"] = served.get("geofences", [])
        if _sped_up(args):
            # the deployment runs on the simulator's clock: same start, speed and anchor
            sc = served["clock"]
            data["clock"] = {"speed": sc["speed"], "start": sc["start"], "anchor": sc["anchor"]}
            print(f"clock       simulated, from {sc['start']} at ×{sc['speed']:g}", flush=True)
        parse_config(data, "demo config")  # fail here, loudly, rather than in a child
        cfg_path = var_dir / "deployment.yaml"
        cfg_path.write_text(
            yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8"
        )
        ingest = children.rongguan("ingest", "ingest", "-c", str(cfg_path))
        # Agents start once ingest has subscribed: the first batches (a device's initial
        # values, which an OPC-UA subscription sends only once) must not find nobody there.
        ready = var_dir / "ingest.ready"
        deadline = time.monotonic() + 180
        while not ready.exists():
            if ingest.poll() is not None or time.monotonic() > deadline or stopping:
                raise RuntimeError(f"ingest did not subscribe; see {var_dir / 'ingest.log'}")
            time.sleep(0.1)
        children.rongguan("agent", "agent", "-c", str(cfg_path))
        dash = children.rongguan("dashboard", "dashboard", "-c", str(cfg_path))
        wait_port(args.port, 120, dash, "dashboard")
        print(f"config      {cfg_path}", flush=True)
        print(f"logs        {var_dir}/*.log", flush=True)
        print(
            f"\nRongguan dashboard: http://{args.host}:{args.port}/   (Ctrl-C stops the demo)",
            flush=True,
        )
        while not stopping:
            dead = children.dead()
            if dead:
                name, code = dead[0]
                print(
                    f"{name} stopped unexpectedly (exit {code}); see {var_dir / (name + '.log')}",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
            time.sleep(0.5)
        return 0
    except RuntimeError as exc:
        print(f"demo failed: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        print("stopping ...", flush=True)
        children.stop_all()
        print("stopped.", flush=True)
