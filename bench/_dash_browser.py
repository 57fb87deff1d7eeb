"""The dashboard benchmark's real browsers: headless Chromium wall pages that note when their
Bokeh document took each new position of marker 0, and check that the markers are drawn."""

from __future__ import annotations

import shutil
import time
from typing import Any

__all__ = ["Browsers", "chromium_cpu_s"]

_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-background-networking", "--disable-background-timer-throttling",
         "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows"]  # fmt: skip
_LOADED = """() => window.Bokeh && Bokeh.documents.some(d => {
    const m = d.get_model_by_name('rg-trucks'); return m && m.data.id.length > 0; })"""
_HOOK = """() => {
  const doc = Bokeh.documents.find(d => d.get_model_by_name('rg-trucks'));
  const m = doc.get_model_by_name('rg-trucks');
  window.__rg = [];
  const note = () => window.__rg.push([Date.now() / 1000, m.data.x[0], m.data.y[0]]);
  m.patching.connect(note);
  m.streaming.connect(note);
  m.properties.data.change.connect(note);
  return m.data.x.length;
}"""
# Drawn, not only received: the glyph view of the trucks has screen coordinates for its rows.
_DRAWN = """() => {
  const doc = Bokeh.documents.find(d => d.get_model_by_name('rg-trucks'));
  const m = doc.get_model_by_name('rg-trucks');
  const v = Bokeh.index.query_one(v => v.model && v.model.data_source === m);
  if (!v || !v.glyph || !v.glyph.sx) return -1;
  let n = 0;
  for (const s of v.glyph.sx) if (Number.isFinite(s)) n++;
  return n;
}"""


def chromium_cpu_s() -> float:
    """CPU seconds used so far by this process's Chromium descendants."""
    import psutil

    total = 0.0
    for c in psutil.Process().children(recursive=True):
        try:
            if "chrom" in c.name():
                t = c.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            pass
    return total


class Browsers:
    """``n`` wall pages in one headless Chromium; websocket frame sizes recorded per page."""

    def __init__(self, url: str, n: int) -> None:
        self.url = url
        self.n = n
        self.frames: list[list[tuple[float, int]]] = [[] for _ in range(n)]
        self.shown: list[int] = []
        self._pw: Any = None
        self._browser: Any = None
        self.pages: list[Any] = []

    def open(self) -> None:
        """Launch Chromium, open the pages and wait until each shows its markers."""
        from playwright.sync_api import sync_playwright

        if not self.n:
            return
        self._pw = sync_playwright().start()
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        self._browser = self._pw.chromium.launch(executable_path=exe, args=_ARGS, headless=True)
        for i in range(self.n):
            page = self._browser.new_page(viewport={"width": 1600, "height": 900})
            page.on("websocket", lambda ws, i=i: self._watch(i, ws))
            page.goto(self.url, timeout=300_000)
            self.pages.append(page)
        for page in self.pages:
            page.wait_for_function(_LOADED, timeout=300_000)
            self.shown.append(page.evaluate(_HOOK))

    def _watch(self, i: int, ws: Any) -> None:
        def got(payload: Any) -> None:
            self.frames[i].append((time.time(), len(payload) if payload is not None else 0))

        ws.on("framereceived", got)

    def wait(self, ms: int) -> None:
        """Sleep while Playwright's event loop keeps delivering frames (plain sleep if none)."""
        if self.pages:
            self.pages[0].wait_for_timeout(ms)
        else:
            time.sleep(ms / 1000)

    def events(self) -> list[list[tuple[float, float, float]]]:
        """Per page: (time, x, y) of marker 0 each time the trucks' data changed."""
        return [page.evaluate("() => window.__rg") for page in self.pages]

    def drawn(self) -> list[int]:
        """Per page: trucks with finite screen coordinates (the glyph was mapped to draw)."""
        return [page.evaluate(_DRAWN) for page in self.pages]

    def close(self) -> None:
        """Close Chromium and Playwright."""
        if self._browser is not None:
            self._browser.close()
        if self._pw is not None:
            self._pw.stop()
