"""The dashboard in headless Chromium against a real Mosquitto: the wall shows devices and
the alarm's case number, nothing is fetched from a non-local host, an engineer switches a
circuit and sees it confirmed, a viewer is refused and sends nothing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from bench.servers import free_port, wait_port
from contracts import topics
from contracts.commands import Command, CommandAck, CommandState
from contracts.config import BrokerConfig
from tests.browser import ARTIFACTS, chromium_browser, local_page
from tests.dashboard._helpers import Recorder, alarm, batch, config, publish, storm, wait_for

pytestmark = [pytest.mark.servers, pytest.mark.browser]

pytest.importorskip("playwright.sync_api")


@dataclass
class Server:
    url: str
    broker: BrokerConfig
    log: Path


def _write_config(tmp: Path, broker: BrokerConfig, port: int) -> Path:
    cfg = config(broker, str(tmp / "var"), port)
    cfg_path = tmp / "dashboard.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), allow_unicode=True))
    return cfg_path


def _start(repo_root: Path, cfg_path: Path, port: int, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    with open(log, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "rongguan.cli", "dashboard", "-c", str(cfg_path)], cwd=repo_root,
                                env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    wait_port(port, 60, proc)
    return proc


def _stop(proc: subprocess.Popen, log: Path) -> None:
    proc.terminate()
    try:
        assert proc.wait(timeout=15) == 0, log.read_text(errors="replace")[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory, mosquitto, repo_root: Path) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("dash")
    broker = BrokerConfig(url=mosquitto.url)
    port = free_port()
    cfg_path = _write_config(tmp, broker, port)
    # Retained before the dashboard starts: it must pick the alarm up on subscribe.
    publish(broker, [(topics.alarm("A-1"), alarm().encode(), True)])
    log = tmp / "dashboard.log"
    proc = _start(repo_root, cfg_path, port, log)
    try:
        yield Server(f"http://127.0.0.1:{port}", broker, log)
    finally:
        _stop(proc, log)
        publish(broker, [(topics.alarm("A-1"), b"", True)])  # leave the session broker clean


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium_browser() as b:
        yield b


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def _markers(page, name: str) -> list[str]:
    return page.evaluate(
        """(name) => { for (const doc of (window.Bokeh ? Bokeh.documents : [])) {
               const m = doc.get_model_by_name(name); if (m) return m.data.id; } return []; }""",
        name,
    )


def test_wall_shows_devices_and_case_number_with_no_foreign_requests(dashboard, browser, artifacts):
    with local_page(browser) as (page, external):
        page.goto(dashboard.url + "/", wait_until="load")
        page.get_by_text("CD-2026-000123").wait_for(timeout=20_000)
        publish(dashboard.broker, [(topics.telemetry(0, "agent-7"), batch().encode(), False)])
        page.wait_for_function(
            """() => Bokeh.documents.some(d => { const m = d.get_model_by_name('rg-trucks');
                   return m && m.data.id.length > 0; })""", timeout=15_000)  # fmt: skip
        assert set(_markers(page, "rg-cabinets")) == {"LC-0001", "LC-0002"}
        assert _markers(page, "rg-dust") == ["DM-0001"]
        assert _markers(page, "rg-trucks") == ["TRK-0001"]
        page.get_by_text("亮灯率").first.wait_for()
        page.wait_for_timeout(1500)  # let the KPI tiles' next tick land before the picture
        page.screenshot(path=str(artifacts / "wall.png"))
        assert external == [], external


def _login(page, base: str, user: str, password: str) -> None:
    page.goto(base + "/login")
    page.fill("#username", user)
    page.fill("#password", password)
    page.click("#login")
    page.wait_for_load_state("load")


def _try_switch(page, reason: str) -> None:
    page.get_by_placeholder("操作原因（必填）").fill(reason)
    page.get_by_role("button", name="切换回路…").click()
    page.get_by_role("button", name="确认执行").click()


def test_engineer_switches_and_sees_confirmation_viewer_is_refused(dashboard, browser, artifacts):
    rec = Recorder(dashboard.broker, topics.command("agent-7"))
    try:
        publish(dashboard.broker, [(topics.telemetry(0, "agent-7"), batch(seq=2).encode(), False)])
        # A guest (viewer) tries first: refused on the page, nothing published.
        with local_page(browser) as (page, external):
            page.goto(dashboard.url + "/lighting")
            page.get_by_text("人民南路1号箱").first.wait_for(timeout=20_000)
            _try_switch(page, "我想试试")
            page.get_by_text("无权限").wait_for(timeout=10_000)
            assert external == [], external
        # The engineer logs in and switches LC-0001 circuit 1 off.
        with local_page(browser) as (page, external):
            _login(page, dashboard.url, "engineer", "engineer-pw")
            page.goto(dashboard.url + "/lighting")
            page.get_by_text("人民南路1号箱").first.wait_for(timeout=20_000)
            page.get_by_role("button", name="关").click()
            _try_switch(page, "夜间检修 maintenance")
            page.get_by_text("指令已发送").wait_for(timeout=10_000)
            wait_for("the command on the agent's topic", lambda: rec.messages)
            assert len(rec.messages) == 1, rec.messages  # only the engineer's command
            cmd = Command.decode(rec.messages[0][1])
            assert (cmd.device_id, cmd.params, cmd.issued_by, cmd.role) == (
                "LC-0001",
                {"circuit": 1, "on": False},
                "engineer",
                "lighting_engineer",
            )
            # The agent's progress reports, as an agent would send them.
            acks = [
                CommandAck(
                    command_id=cmd.command_id,
                    device_id="LC-0001",
                    state=s,
                    readback={"circuit1_on": False} if s == CommandState.CONFIRMED else {},
                )
                for s in (
                    CommandState.RECEIVED,
                    CommandState.SENT,
                    CommandState.ACKNOWLEDGED,
                    CommandState.CONFIRMED,
                )
            ]
            publish(
                dashboard.broker, [(topics.command_ack("agent-7"), a.encode(), False) for a in acks]
            )
            page.locator(".rg-confirmed").wait_for(timeout=10_000)
            page.screenshot(path=str(artifacts / "lighting-confirmed.png"))
            assert external == [], external
    finally:
        rec.close()


def test_alarm_console_acts_for_an_operator_and_refuses_a_viewer(dashboard, browser, artifacts):
    rec = Recorder(dashboard.broker, topics.alarm_action())
    try:
        with local_page(browser) as (page, external):
            page.goto(dashboard.url + "/alarms")
            page.get_by_text("CD-2026-000123").first.click(timeout=20_000)
            page.locator(".rg-comment button").click()
            page.get_by_text("无权限").wait_for(timeout=10_000)
            assert external == [], external
        with local_page(browser) as (page, external):
            _login(page, dashboard.url, "operator", "operator-pw")
            page.goto(dashboard.url + "/alarms")
            page.get_by_text("CD-2026-000123").first.click(timeout=20_000)
            page.get_by_placeholder("…").fill("已派人 dispatched")
            page.locator(".rg-comment button").click()
            page.get_by_text("操作请求已发送").wait_for(timeout=10_000)
            page.screenshot(path=str(artifacts / "alarms.png"))
            assert external == [], external
        wait_for("the action on the broker", lambda: rec.messages)
        assert len(rec.messages) == 1, rec.messages  # the viewer's click sent nothing
        doc = json.loads(rec.messages[0][1])
        assert doc == {"alarm_id": "A-1", "action": "comment", "user": "operator",
                       "role": "operator", "text": "已派人 dispatched"}  # fmt: skip
    finally:
        rec.close()


def _fits(page) -> None:
    """The active table shows every column without sideways scrolling, the detail beside it."""
    holder = page.locator(".rg-active .tabulator-tableholder").first
    scroll_w, client_w = holder.evaluate("e => [e.scrollWidth, e.clientWidth]")
    assert scroll_w <= client_w + 1, (scroll_w, client_w)
    table, side = (
        page.locator(".rg-active").first.bounding_box(),
        page.locator(".rg-alarm-side").first.bounding_box(),
    )
    vw, vh = page.viewport_size["width"], page.viewport_size["height"]
    assert side["x"] >= table["x"] + table["width"] - 1 and side["x"] + side["width"] <= vw + 1
    assert table["height"] > vh * 0.5  # the table uses the screen's height, not a fixed box


def test_a_storm_is_shown_once_and_acknowledged_as_a_group(dashboard, browser, artifacts):
    alarms = storm(6)
    publish(dashboard.broker, [(topics.alarm(a.alarm_id), a.encode(), True) for a in alarms])
    rec = Recorder(dashboard.broker, topics.alarm_action())
    try:
        with local_page(browser) as (page, external):
            page.goto(dashboard.url + "/")
            page.locator('.rg-alarm[data-alarm="G-1"][data-size="6"]').wait_for(timeout=20_000)
            assert page.locator(".rg-alarm").count() == 2  # the storm once, and A-1
            page.get_by_text("配电箱 人民南路1号箱：6 个回路告警").wait_for()
            assert external == [], external
        with local_page(browser, (1920, 1080)) as (page, external):
            _login(page, dashboard.url, "operator", "operator-pw")
            page.goto(dashboard.url + "/alarms")
            page.get_by_text("6 ▸").click(timeout=20_000)
            page.locator(".rg-members tr").nth(5).wait_for(timeout=10_000)
            assert page.locator(".rg-members tr").count() == 6
            _fits(page)
            page.screenshot(path=str(artifacts / "alarms-console-1920.png"))
            page.locator(".rg-acknowledge button").click()
            page.get_by_text("(6/6)").wait_for(timeout=10_000)
            page.set_viewport_size({"width": 1366, "height": 768})
            page.wait_for_timeout(500)  # let the layout settle before measuring it
            _fits(page)
            page.screenshot(path=str(artifacts / "alarms-console-1366.png"))
            assert external == [], external
        wait_for("six acknowledgements", lambda: len(rec.messages) >= 6)
        docs = [json.loads(m[1]) for m in rec.messages]
        assert sorted(d["alarm_id"] for d in docs) == sorted(a.alarm_id for a in alarms)
        assert {d["action"] for d in docs} == {"acknowledge"}
    finally:
        rec.close()
        publish(dashboard.broker, [(topics.alarm(a.alarm_id), b"", True) for a in alarms])


def test_fleet_page_in_english_and_sessions_released_on_disconnect(dashboard, browser, artifacts):
    publish(dashboard.broker, [(topics.telemetry(0, "agent-7"), batch(seq=3).encode(), False)])
    with local_page(browser) as (page, external):
        page.goto(dashboard.url + "/fleet?lang=en")
        page.get_by_text("川A12345").first.wait_for(timeout=20_000)
        for text in ("Track playback", "Violations", "Company", "Load track", "Geofences"):
            page.get_by_text(text).first.wait_for(timeout=5_000)
        assert page.get_by_text("车辆监管").count() == 0
        zones = page.evaluate(
            """() => { for (const d of Bokeh.documents) { const m = d.get_model_by_name(
                   'rg-geofence-zones'); if (m) return m.data.name; } return null; }"""
        )
        assert zones == ["春熙路禁行区"]
        page.screenshot(path=str(artifacts / "fleet-en.png"))
        released = dashboard.log.read_text(errors="replace").count("session released")
        assert external == [], external
    # Panel destroys the closed screen's session; its periodic callback goes with it.
    wait_for(
        "the session to be released",
        lambda: dashboard.log.read_text(errors="replace").count("session released") > released,
        timeout_s=15,
    )


def test_wall_rotates_and_reconnects_after_a_server_restart(
    tmp_path, mosquitto, browser, repo_root
):
    broker = BrokerConfig(url=mosquitto.url)
    port = free_port()
    cfg_path = _write_config(tmp_path, broker, port)
    log = tmp_path / "dashboard.log"
    proc = _start(repo_root, cfg_path, port, log)
    try:
        with local_page(browser) as (page, external):
            page.goto(f"http://127.0.0.1:{port}/?rotate=600")
            page.get_by_text("亮灯率").first.wait_for(timeout=20_000)
            assert page.evaluate("window.rgNextPage") == "/alarms?rotate=600"
            page.evaluate("window.rgMarker = 1")  # gone once the page reloads
            _stop(proc, log)
            page.wait_for_function("window.rgDisconnected === true", timeout=10_000)
            proc = _start(repo_root, cfg_path, port, log)
            page.wait_for_function("window.rgMarker === undefined", timeout=20_000)
            page.get_by_text("亮灯率").first.wait_for(timeout=20_000)
            assert external == [], external
    finally:
        _stop(proc, log)
