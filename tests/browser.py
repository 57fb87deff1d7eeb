"""Headless Chromium from the OS packages, driven by Playwright, that fails on any request
to a host that is not this machine (the dashboard must work with no internet)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["chromium_path", "chromium_page", "ARTIFACTS", "LOCAL_HOSTS"]

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


@contextmanager
def chromium_page(viewport: tuple[int, int] = (1600, 900)) -> Iterator[tuple[object, list[str]]]:
    """A fresh page and the list of non-local URLs it requested (blocked, and to assert empty)."""
    from playwright.sync_api import sync_playwright

    external: list[str] = []

    def _route(route) -> None:
        host = urlsplit(route.request.url).hostname or ""
        scheme = urlsplit(route.request.url).scheme
        if scheme in ("data", "blob") or host in LOCAL_HOSTS:
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=_ARGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
            context.route("**/*", _route)
            page = context.new_page()
            yield page, external
            context.close()
        finally:
            browser.close()
