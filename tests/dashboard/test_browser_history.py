"""The alarm console's history in headless Chromium: a storm the real alarm book recorded
in the store shows once, expands to its children, and its detail lists the group and what
happened to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.servers import free_port
from contracts.config import BrokerConfig
from ingest.store.embedded import EmbeddedStore
from tests.alarmstorm import record_storm
from tests.browser import ARTIFACTS, chromium_browser, local_page
from tests.dashboard._helpers import NOW, config
from tests.dashboard.test_browser import _start, _stop, _write_config

pytestmark = [pytest.mark.servers, pytest.mark.browser]

pytest.importorskip("playwright.sync_api")


def test_a_recorded_storm_shows_once_in_the_history_and_expands(
    tmp_path: Path, mosquitto, repo_root: Path
) -> None:
    broker = BrokerConfig(url=mosquitto.url)
    port = free_port()
    cfg_path = _write_config(tmp_path, broker, port)
    cfg = config(broker, str(tmp_path / "var"), port)  # what _write_config wrote
    store = EmbeddedStore(cfg.path(cfg.store.path))
    try:
        devices = {d.id: d for _, d in cfg.devices().values()}
        storm = record_storm(tmp_path, store, NOW - 3600 * 10**9, devices=devices)
    finally:
        store.close()
    log = tmp_path / "dashboard.log"
    proc = _start(repo_root, cfg_path, port, log)
    try:
        with chromium_browser() as browser, local_page(browser, (1920, 1080)) as (page, external):
            page.goto(f"http://127.0.0.1:{port}/alarms")
            page.get_by_text("历史告警").click(timeout=20_000)
            hist = page.locator(".rg-history")
            hist.get_by_text("6 ▸").wait_for(timeout=20_000)
            assert hist.locator(".tabulator-row").count() == 2  # the storm once, the door alarm
            page.locator(".rg-hist-count").get_by_text("共 7 条，归并为 2 起").wait_for()
            page.locator(".rg-show-children input").check()
            hist.get_by_text("6 ▾").wait_for(timeout=10_000)
            assert hist.locator(".tabulator-row").count() == 7
            assert hist.get_by_text("↳").count() == 5
            hist.get_by_text("6 ▾").click()
            page.locator(f'.rg-detail-head[data-alarm="{storm.parent}"]').wait_for(timeout=10_000)
            assert page.locator(".rg-members tr").count() == 6
            page.locator(".rg-timeline").get_by_text("operator: 已派人 dispatched").wait_for()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "alarms-history.png"))
            assert external == [], external
    finally:
        _stop(proc, log)
