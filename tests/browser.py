"""Headless Chromium from the OS packages, driven by Playwright, that fails on any request
to a host that is not this machine (the dashboard must work with no internet)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

__all__ = [
    "chromium_path",
    "chromium_browser",
    "local_page",
    "chromium_page",
    "ARTIFACTS",
    "LOCAL_HOSTS",
]

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


def chromium_path() -> str:
    """The OS's Chromium (Playwright's own browser download does not work offline)."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise RuntimeError("chromium not found: run the README's test command, which installs it")
    return path


def _guard(context, external: list[str]) -> None:
    """Abort and record every request (and websocket) to a host that is not this machine."""

    def _route(route) -> None:
        parts = urlsplit(route.request.url)
        if parts.scheme in ("data", "blob") or (parts.hostname or "") in LOCAL_HOSTS:
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort()

    def _websocket(ws) -> None:  # routes do not see websockets; record them here
        if (urlsplit(ws.url).hostname or "") not in LOCAL_HOSTS:
            external.append(ws.url)

    context.route("**/*", _route)
    context.on("page", lambda page: page.on("websocket", _websocket))


@contextmanager
def chromium_browser() -> Iterator[object]:
    """The OS's headless Chromium under Playwright, for tests that open several pages."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def local_page(
    browser, viewport: tuple[int, int] = (1600, 900), locale: str = "zh-CN"
) -> Iterator[tuple[object, list[str]]]:
    """A page in its own context (own cookies: one user) and the non-local URLs it tried."""
    external: list[str] = []
    context = browser.new_context(
        viewport={"width": viewport[0], "height": viewport[1]}, locale=locale
    )
    _guard(context, external)
    try:
        yield context.new_page(), external
    finally:
        context.close()


@contextmanager
def chromium_page(viewport: tuple[int, int] = (1600, 900)) -> Iterator[tuple[object, list[str]]]:
    """A fresh browser and page, and the list of non-local URLs it requested (blocked)."""
    with chromium_browser() as browser, local_page(browser, viewport) as (page, external):
        yield page, external
