"""End to end over real parts, as a user runs it:

simulators on loopback → edge agent → real Mosquitto → ingest → real InfluxDB (read back
with InfluxQL) → rules → alarms for injected faults → case inbox → the dashboard in
headless Chromium shows the alarm and its case number; a lighting engineer switches a
circuit from the page and the simulated cabinet really switches.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bench.servers import InfluxBehindNginx, Mosquitto, free_port
from tests.browser import ARTIFACTS, chromium_page

pytestmark = [pytest.mark.servers, pytest.mark.browser]

SCENARIO = """\
faults:
  - {at_s: 2, kind: dust_episode, device: DM-0001, pm10: 450, duration_s: 600}
  - {at_s: 2, kind: door_open, device: LC-0002}
  - {at_s: 2, kind: overspeed, device: TRK-0001, speed: 88, duration_s: 600}
"""


@dataclass
class Demo:
    proc: subprocess.Popen
    var_dir: Path
    port: int
    bucket: str
    output: list[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _wait(what: str, check, timeout_s: float, interval_s: float = 0.5):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - keep polling until the deadline
            last = exc
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory, influx_server: InfluxBehindNginx
) -> Iterator[Demo]:
    # A broker of its own: the demo leaves retained alarms and availability behind.
    mosquitto = Mosquitto(tmp_path_factory.mktemp("e2e-mosquitto")).start()
    tmp = tmp_path_factory.mktemp("e2e")
    scenario = tmp / "scenario.yaml"
    scenario.write_text(SCENARIO)
    bucket = "rg_e2e"
    influx_server.create_database(bucket)
    port = free_port()
    cmd = [
        sys.executable, "-m", "rongguan.cli", "demo", "--size", "tiny", "--port", str(port),
        "--mqtt-url", mosquitto.url, "--influx-url", influx_server.url,
        "--influx-token", "e2e", "--influx-bucket", bucket,
        "--scenario", str(scenario), "--var-dir", str(tmp / "var"),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    deadline = time.monotonic() + 180
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        output.append(line)
        if "Rongguan dashboard:" in line:
            break
    if not any("Rongguan dashboard:" in line for line in output):
        proc.kill()
        logs = "".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
            for p in (tmp / "var").glob("*.log")
        )
        mosquitto.stop()
        pytest.fail("demo did not start:\n" + "".join(output) + logs)
    yield Demo(proc, tmp / "var", port, bucket, output)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
    mosquitto.stop()


def test_telemetry_of_every_kind_lands_in_influxdb(demo: Demo, influx_server: InfluxBehindNginx):
    # Every protocol: OPC-UA and Modbus cabinets, Modbus and HJ 212 dust monitors,
    # MQTT JSON and JT/T 808 trucks.
    want = {
        "lighting_cabinet": {"LC-0001", "LC-0002", "LC-0003"},
        "dust_monitor": {"DM-0001", "DM-0002", "DM-1001", "DM-1002"},
        "vehicle": {"TRK-0001", "TRK-0002", "TRK-0003", "TRK-1001", "TRK-1002", "TRK-1003"},
    }

    def devices():
        got = {}
        for kind in want:
            res = influx_server.query(
                demo.bucket, f'SELECT count(*) FROM "{kind}" GROUP BY "device_id"'
            )
            series = res["results"][0].get("series", [])
            got[kind] = {s["tags"]["device_id"] for s in series}
        return got if all(want[k] <= got[k] for k in want) else None

    got = _wait("telemetry of every device in InfluxDB", devices, 90)
    assert got == want  # and nothing else (no unknown devices stored)
    res = influx_server.query(
        demo.bucket, """SELECT last("pm10") FROM "dust_monitor" WHERE "device_id" = 'DM-0001'"""
    )
    assert res["results"][0]["series"][0]["values"][0][1] > 100  # the injected episode


def _cases(var_dir: Path) -> list[dict]:
    import sqlite3

    db = var_dir / "cases.db"
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM cases")]
    finally:
        con.close()


WANT = {
    "DM-0001": "dust.pm10_stop_work",
    "LC-0002": "lighting.door_open",
    "TRK-0001": "vehicle.overspeed",
}


def _alarms(var_dir: Path) -> dict[tuple[str, str], dict]:
    import json
    import sqlite3

    con = sqlite3.connect(f"file:{var_dir / 'alarms.db'}?mode=ro", uri=True)
    try:
        docs = [json.loads(d) for (d,) in con.execute("SELECT doc FROM alarms")]
    finally:
        con.close()
    return {(a["device_id"], a["rule_id"]): a for a in docs}


def _filed_alarms(var_dir: Path) -> dict[tuple[str, str], dict] | None:
    got = _alarms(var_dir)
    return got if all(got.get((d, r), {}).get("case_no") for d, r in WANT.items()) else None


def test_injected_faults_become_alarms_with_exactly_one_case_each(demo: Demo):
    import json

    got = _wait(
        "the alarms for the injected faults, filed as cases",
        lambda: _filed_alarms(demo.var_dir),
        90,
    )
    cases = _cases(demo.var_dir)
    case_nos = [c["case_no"] for c in cases]
    assert len(case_nos) == len(set(case_nos))
    assert len({c["idempotency_key"] for c in cases}) == len(cases)  # no alarm filed twice
    for device, rule in WANT.items():
        alarm = got[(device, rule)]
        case = next(c for c in cases if c["case_no"] == alarm["case_no"])
        # The case is the alarm's own, or its storm group's parent's, on the same device.
        assert json.loads(case["record"])["device_id"] == device
        assert case["idempotency_key"] in (alarm["alarm_id"], alarm["extra"].get("parent"))
    # Every case belongs to an alarm the rules service holds.
    filed = {a["case_no"] for a in _alarms(demo.var_dir).values()}
    assert set(case_nos) <= filed


def test_wall_screen_shows_the_alarm_and_its_case_number(demo: Demo):
    got = _wait("the dust alarm's case", lambda: _filed_alarms(demo.var_dir), 90)
    case_no = got[("DM-0001", "dust.pm10_stop_work")]["case_no"]
    with chromium_page() as (page, external):
        page.goto(demo.url + "/", wait_until="load")
        page.get_by_text(case_no).first.wait_for(timeout=30_000)
        page.get_by_text("DM-0001").first.wait_for(timeout=10_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "e2e-wall.png"))
        assert external == [], external


def _read_circuit(endpoints: dict, device: str, circuit: int) -> bool:
    """Read the cabinet's contactor with an independent OPC-UA client (not our driver)."""
    import asyncio

    from asyncua import Client

    server = next(s for s in endpoints["opcua"] if device in s["devices"])

    async def read() -> bool:
        async with Client(server["endpoint"]) as client:
            ns = await client.get_namespace_index(server["namespace"])
            node = client.get_node(f"ns={ns};s={device}.Circuit{circuit}.On")
            return bool(await node.read_value())

    return asyncio.run(read())


def test_engineer_switches_a_circuit_and_the_cabinet_really_switches(demo: Demo):
    import json

    endpoints = json.loads((demo.var_dir / "endpoints.json").read_text())["endpoints"]
    before = _read_circuit(endpoints, "LC-0001", 2)
    target = not before
    with chromium_page() as (page, external):
        page.goto(demo.url + "/login")
        page.fill("#username", "engineer")
        page.fill("#password", "engineer")
        page.click("#login")
        page.wait_for_load_state("load")
        page.goto(demo.url + "/lighting")
        page.locator("option[value='LC-0001']").wait_for(state="attached", timeout=30_000)
        selects = page.locator("select")
        selects.nth(0).select_option("LC-0001")
        selects.nth(1).select_option("2")
        page.get_by_role("button", name="开" if target else "关").click()
        page.get_by_placeholder("操作原因（必填）").fill("端到端测试 e2e")
        page.get_by_role("button", name="切换回路…").click()
        page.get_by_role("button", name="确认执行").click()
        page.locator(".rg-confirmed").wait_for(timeout=30_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "e2e-lighting.png"))
        assert external == [], external
    assert _read_circuit(endpoints, "LC-0001", 2) is target


def test_demo_stops_cleanly_on_ctrl_c(demo: Demo):
    demo.proc.send_signal(signal.SIGINT)
    rest, _ = demo.proc.communicate(timeout=60)
    assert demo.proc.returncode == 0, "".join(demo.output) + rest
    assert "stopped." in rest
