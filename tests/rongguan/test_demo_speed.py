"""``rongguan demo --speed``: the whole system on one simulated clock, a night in minutes.

The pure tests pin the allowances that widen with the speed; the end-to-end test runs the
demo (real Mosquitto where installed, real simulators over OPC-UA, Modbus, MQTT, HJ 212 and
JT/T 808) at ×300 from just before dusk on a fixed winter day.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import pytest
import yaml

from bench.servers import free_port
from contracts import clock
from contracts.astro import CST, sun_times
from contracts.clock import Clock
from contracts.telemetry import TelemetryBatch, TelemetryRow
from rongguan.demo import PUSHED

ANCHOR = datetime(2026, 12, 21, 9, 0, tzinfo=CST).timestamp()
DAY = date(2026, 12, 21)  # a winter evening, weeks away from any wall date the test runs on
_, SUNSET = sun_times(30.66, 104.06, DAY)  # Chengdu
assert SUNSET is not None
START = SUNSET.astimezone(CST).replace(second=0, microsecond=0).timestamp() - 26 * 60
SPEED = 300


@pytest.fixture
def at_speed() -> Iterator[Clock]:
    """This process on a ×120 clock standing at the anchor; the wall clock again after."""
    before = clock.current()
    c = clock.install(Clock(speed=120, start=START, anchor=ANCHOR, wall=lambda: ANCHOR))
    yield c
    clock.install(before)


def test_ingest_future_window_is_wall_seconds(at_speed, tmp_path):
    from ingest.metrics import IngestMetrics
    from ingest.prepare import prepare
    from ingest.quarantine import Quarantine

    now = at_speed.now_ns()
    batch = TelemetryBatch(agent="a", seq=1)
    # 20 simulated minutes ahead is 10 wall seconds of skew at ×120: fine; a day is not
    for i, ahead_s in enumerate((0, 1200, 86400)):
        batch.append(TelemetryRow(f"D-{i}", "vehicle", now + ahead_s * 10**9, "speed", 1.0))
    q = Quarantine(tmp_path / "q.db")
    m = IngestMetrics()
    frame = prepare([("rg/v1/tele/0/a", batch.encode(), now)], None, None, m, q)
    assert frame is not None
    assert sorted(frame.get_column("device_id").to_list()) == ["D-0", "D-1"]
    assert q.counts() == {"ts_future": 1}
    q.close()


def test_deadman_silence_and_dashboard_staleness_widen_with_speed(at_speed):
    from contracts.config import parse_config
    from dashboard.kpi import STALE_S, is_online
    from dashboard.records import DeviceInfo
    from rules.defaults import load_default_rules
    from rules.engine import SILENCE_AT_SPEED_S, rules_at_speed

    rules = load_default_rules()
    scaled = {r.id: r for r in rules_at_speed(rules, clock.speed())}
    floor = SILENCE_AT_SPEED_S * 120  # a monitor polled every 5 wall s: 10 simulated min
    for r in rules:
        got, back = scaled[r.id], {"max_silence_s": r.max_silence_s}
        assert got.max_silence_s == max(r.max_silence_s, floor)
        if r.family == "stale":
            assert got.silent_s == max(r.silent_s, floor)
            back["silent_s"] = r.silent_s
        assert got.model_copy(update=back) == r  # nothing else changes
    assert parse_config({"rules": [r.model_dump(mode="json") for r in rules]}, "d").rules == rules
    dev = DeviceInfo("LC-1", "lighting_cabinet", last_ns=at_speed.now_ns() - int(STALE_S * 2e9))
    assert is_online(dev, at_speed.now_ns())  # 2 × STALE_S simulated is a wall second
    clock.install(Clock())
    assert rules_at_speed(rules, clock.speed()) is rules
    assert not is_online(dev, at_speed.now_ns())


def _rows(db: Path, sql: str, *args) -> list[tuple]:
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return con.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return []  # not created yet
    finally:
        con.close()


def _switch_on_ns(store: Path) -> int | None:
    """Stamp of the first row where a circuit of LC-0001 went from off to on."""
    ons = _rows(
        store,
        "SELECT ts, value FROM telemetry WHERE device_id = 'LC-0001' AND field = 'circuit1_on' "
        "ORDER BY ts",
    )
    for (_, before), (ts, after) in zip(ons, ons[1:]):
        if before == 0 and after == 1:
            return ts
    return None


def _door_alarm(alarms: Path) -> dict | None:
    for (doc,) in _rows(alarms, "SELECT doc FROM alarms WHERE rule_id = 'lighting.door_open'"):
        return json.loads(doc)
    return None


def test_demo_at_speed_runs_the_evening_on_simulated_time(tmp_path: Path):
    from rules.defaults import load_default_rules

    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(
        "faults:\n  - {at_s: 600, kind: door_open, device: LC-0002, duration_s: 1800}\n"
    )
    var = tmp_path / "var"
    start = datetime.fromtimestamp(START, CST).isoformat(timespec="minutes")
    cmd = [
        sys.executable, "-m", "rongguan.cli", "demo", "--size", "tiny", "--port", str(free_port()),
        "--var-dir", str(var), "--scenario", str(scenario), "--speed", str(SPEED), "--start", start,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    store, alarms = var / "store.db", var / "alarms.db"
    night = int((SUNSET.timestamp() + 2 * 3600) * 1e9)  # two simulated hours after sunset
    try:
        deadline = time.monotonic() + 300
        done = False
        while time.monotonic() < deadline and proc.poll() is None:
            newest = _rows(store, "SELECT max(ts) FROM telemetry")
            late_enough = bool(newest) and (newest[0][0] or 0) > night
            if late_enough and _switch_on_ns(store) and _door_alarm(alarms):
                done = True
                break
            time.sleep(0.5)
        assert done, f"no evening: newest={newest}; demo exit={proc.poll()}"
        # every row carries simulated time: the evening of DAY, never the wall's date
        day_lo = datetime(2026, 12, 21, tzinfo=CST).timestamp() * 1e9
        wall_rows = _rows(store, "SELECT count(*) FROM telemetry WHERE ts < ?", int(day_lo))
        assert wall_rows == [(0,)]
        assert _rows(var / "quarantine.db", "SELECT count(*) FROM quarantine") in ([], [(0,)])
        # the cabinets switched on at dusk, by the astronomical clock in simulated time
        on = _switch_on_ns(store) / 1e9
        assert abs(on - SUNSET.timestamp()) < 3600, datetime.fromtimestamp(on, CST)
        # the scenario's fault raised its alarm at simulated times, not before the fault
        truth = json.loads((var / "ground-truth.jsonl").read_text().splitlines()[0])
        alarm = _door_alarm(alarms)
        assert alarm["raised_ns"] >= truth["start_ns"] - 10**9
        for t in (alarm["raised_ns"], alarm["updated_ns"]):
            assert datetime.fromtimestamp(t / 1e9, CST).date() == DAY
        # pushing devices are drained on the wall as often as they fill at this speed
        deployment = yaml.safe_load((var / "deployment.yaml").read_text(encoding="utf-8"))
        pushed = [d for d in deployment["agents"][0]["devices"] if d["protocol"] in PUSHED]
        assert pushed and all(d["interval_s"] <= 1.0 for d in pushed), pushed
        # no device called offline: a deadman's silence is at least a wall minute
        stale = {r.id for r in load_default_rules() if r.family == "stale"}
        raised = {rid for (rid,) in _rows(alarms, "SELECT rule_id FROM alarms")}
        assert not raised & stale, raised
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    shown = datetime.fromtimestamp(START, CST).isoformat(timespec="seconds")
    assert f"clock       simulated, from {shown} at ×{SPEED}" in out


@pytest.mark.parametrize(
    ("option", "message"),
    [(["--speed", "0"], "clock speed must be in"), (["--start", "25:00"], "clock start must be")],
)
def test_demo_refuses_a_bad_clock_before_starting_anything(tmp_path, option, message):
    cmd = [sys.executable, "-m", "rongguan.cli", "demo", "--var-dir", str(tmp_path / "v"), *option]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and message in out.stderr
    assert not (tmp_path / "v" / "broker.log").exists()
