"""The dashboard in headless Chromium against a real Mosquitto: the wall shows devices and
the alarm's case number, nothing is fetched from a non-local host, an engineer switches a
circuit and sees it confirmed, a viewer is refused and sends nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from contracts import topics
from contracts.commands import Command, CommandAck, CommandState
from contracts.config import BrokerConfig
from tests.dashboard._helpers import Recorder, alarm, batch, config, publish, wait_for
from tests.servers import free_port, wait_port

pytestmark = [pytest.mark.servers, pytest.mark.browser]

playwright_api = pytest.importorskip("playwright.sync_api")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


@dataclass
class Server:
    url: str
    broker: BrokerConfig
    log: Path


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory, mosquitto, repo_root: Path) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("dash")
    broker = BrokerConfig(url=mosquitto.url)
    port = free_port()
    cfg = config(broker, str(tmp / "var"), port)
    cfg_path = tmp / "dashboard.yaml"
    cfg_path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), allow_unicode=True))
    # Retained before the dashboard starts: it must pick the alarm up on subscribe.
    publish(broker, [(topics.alarm("A-1"), alarm().encode(), True)])
    log = tmp / "dashboard.log"
    env = {**os.environ, "PYTHONPATH": str(repo_root)}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "dashboard.app", str(cfg_path)], cwd=repo_root,
                                env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_port(port, 60, proc)
        yield Server(f"http://127.0.0.1:{port}", broker, log)
    finally:
        proc.terminate()
        try:
            assert proc.wait(timeout=15) == 0, log.read_text(errors="replace")[-3000:]
        finally:
            if proc.poll() is None:
                proc.kill()
        publish(broker, [(topics.alarm("A-1"), b"", True)])  # leave the session broker clean


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    exe = shutil.which("chromium") or "/usr/bin/chromium"
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def artifacts(repo_root: Path) -> Path:
    out = repo_root / "test-artifacts"
    out.mkdir(exist_ok=True)
    return out


class _Requests(list):
    def foreign(self) -> list[str]:
        return [u for u in self if urlsplit(u).scheme in ("http", "https", "ws", "wss")
                and urlsplit(u).hostname not in LOCAL_HOSTS]  # fmt: skip


def _page(browser, requests: _Requests):
    ctx = browser.new_context(viewport={"width": 1600, "height": 900}, locale="zh-CN")
    page = ctx.new_page()
    page.on("request", lambda r: requests.append(r.url))
    page.on("websocket", lambda ws: requests.append(ws.url))
    return ctx, page


def _markers(page, name: str) -> list[str]:
    return page.evaluate(
        """(name) => { for (const doc of (window.Bokeh ? Bokeh.documents : [])) {
               const m = doc.get_model_by_name(name); if (m) return m.data.id; } return []; }""",
        name,
    )


def test_wall_shows_devices_and_case_number_with_no_foreign_requests(dashboard, browser, artifacts):
    requests = _Requests()
    ctx, page = _page(browser, requests)
    try:
        page.goto(dashboard.url + "/", wait_until="load")
        page.get_by_text("CD-2026-000123").wait_for(timeout=20_000)
        publish(dashboard.broker, [(topics.telemetry(0, "agent-7"), batch().encode(), False)])
        page.wait_for_function(
            """() => Bokeh.documents.some(d => { const m = d.get_model_by_name('rg-trucks');
                   return m && m.data.id.length > 0; })""", timeout=15_000)  # fmt: skip
        assert set(_markers(page, "rg-cabinets")) == {"LC-0001", "LC-0002"}
        assert _markers(page, "rg-dust") == ["DM-0001"]
        assert _markers(page, "rg-trucks") == ["TRK-0001"]
        page.get_by_text("亮灯率").wait_for()
        page.wait_for_timeout(1500)  # let the KPI tiles' next tick land before the picture
        page.screenshot(path=str(artifacts / "wall.png"))
        assert requests, "no requests recorded"
        assert requests.foreign() == [], requests.foreign()
    finally:
        ctx.close()


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
    requests = _Requests()
    try:
        publish(dashboard.broker, [(topics.telemetry(0, "agent-7"), batch(seq=2).encode(), False)])
        # A guest (viewer) tries first: refused on the page, nothing published.
        ctx, page = _page(browser, requests)
        page.goto(dashboard.url + "/lighting")
        page.get_by_text("人民南路1号箱").first.wait_for(timeout=20_000)
        _try_switch(page, "我想试试")
        page.get_by_text("无权限").wait_for(timeout=10_000)
        ctx.close()
        # The engineer logs in and switches LC-0001 circuit 1 off.
        ctx, page = _page(browser, requests)
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
        ctx.close()
        assert requests.foreign() == [], requests.foreign()
    finally:
        rec.close()
