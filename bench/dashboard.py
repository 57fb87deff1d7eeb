"""Wall screens under load: N headless Chromium pages on one dashboard whose live store gets
~15,000 moving markers every second; patching changed markers vs redrawing whole layers.

Each mode runs its own dashboard process (fed directly, in-process, so the broker is not
what is measured). Figures per mode: server CPU (% of one core) and RSS, websocket bytes
per update per session (``page.on("websocket")`` frame sizes, over the updates received),
and update latency: the time from the feeder's write (at a whole second) to a frame
arriving in a page. The baseline (``redraw_all``) replaces every marker layer each second.

``run()`` with no size sweeps :data:`SIZES` for the capacity of this machine (the largest
sessions x markers whose patched latency p95 stays under 1 s) and compares the redraw
baseline at that size, within a time budget; ``run(sessions, markers)`` compares one size.
"""

from __future__ import annotations

import math
import multiprocessing as mp
import os
import random
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
from typing import Any

__all__ = ["run"]

_CENTER = (30.66, 104.06)
_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-background-networking", "--disable-background-timer-throttling",
         "--disable-renderer-backgrounding", "--disable-backgrounding-occluded-windows"]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(port: int, markers: int, redraw_all: bool, stop_at: float, truth: str) -> None:
    """Child process: a dashboard whose store a thread moves every whole second."""
    import logging

    from contracts.config import parse_config
    from contracts.telemetry import TelemetryBatch
    from dashboard.app import serve
    from dashboard.livestore import DeviceInfo, LiveStore

    logging.basicConfig(level=logging.ERROR)
    # Bokeh prints "Launching server at ..." to stdout: keep the parent's JSON output clean.
    sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - the child's lifetime
    cfg = parse_config({"var_dir": tempfile.mkdtemp(prefix="rg-bench-"), "broker": {"url": f"mqtt://127.0.0.1:{_free_port()}"},
                        "dashboard": {"host": "127.0.0.1", "port": port, "guest_role": "viewer"}})  # fmt: skip
    rnd = random.Random(7)
    devs = {}
    pos = []
    for i in range(markers):
        dev_id = f"TRK-{i:05d}"
        lat, lon = _CENTER[0] + rnd.uniform(-0.3, 0.3), _CENTER[1] + rnd.uniform(-0.3, 0.3)
        devs[dev_id] = DeviceInfo(dev_id, "vehicle", dev_id, "bench", lat, lon,
                                  {"fleet": f"fleet-{i % 6}"})  # fmt: skip
        pos.append([dev_id, lat, lon, rnd.uniform(0, 360)])
    store = LiveStore(devs)
    stop = threading.Event()

    def feed() -> None:
        seq = 0
        out = open(truth, "a", encoding="utf-8")  # noqa: SIM115 - lives as long as the thread
        while not stop.is_set():
            time.sleep(math.ceil(time.time()) - time.time())  # write at whole seconds
            if time.time() > stop_at:
                stop.set()
                return
            seq += 1
            now = time.time_ns()
            b = TelemetryBatch(agent="bench", seq=seq)
            for p in pos:
                p[3] = (p[3] + rnd.uniform(-20, 20)) % 360
                p[1] += 0.0002 * math.cos(math.radians(p[3]))
                p[2] += 0.0002 * math.sin(math.radians(p[3]))
                for name, v in (("lat", p[1]), ("lon", p[2]), ("heading", p[3]), ("speed", 30.0)):
                    b.device_id.append(p[0])
                    b.kind.append("vehicle")
                    b.ts.append(now)
                    b.field_name.append(name)
                    b.value.append(v)
            t_write = time.time()
            store.apply_batch(b)
            # Ground truth: when marker 0 reached each position (the page reports what it shows).
            out.write(f"{t_write} {time.time() - t_write} {pos[0][2]!r} {pos[0][1]!r}\n")
            out.flush()

    threading.Thread(target=feed, daemon=True).start()
    serve(cfg, stop=stop, redraw_all=redraw_all, store=store)


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


def _chromium_cpu_s() -> float:
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


def _latencies(events: list[list[float]], truth: list[tuple[float, float, float]]) -> list[float]:
    """Page-side arrival of marker 0's position minus the time the feeder wrote it."""
    out = []
    for t, x, y in events:
        best = min(truth, key=lambda r: abs(r[1] - x) + abs(r[2] - y), default=None)
        # float32 on the wire: ~1e-5 degrees; a step moves 2e-4, so a match is unambiguous.
        if best is not None and abs(best[1] - x) + abs(best[2] - y) < 4e-5 and t >= best[0]:
            out.append((t - best[0]) * 1000)
    return out


def _pct(xs: list[float], q: float) -> float | None:
    return round(sorted(xs)[min(len(xs) - 1, int(len(xs) * q))]) if xs else None


def _mode(sessions: int, markers: int, seconds: int, redraw_all: bool) -> dict[str, Any]:
    import psutil
    from playwright.sync_api import sync_playwright

    port = _free_port()
    truth_path = tempfile.mktemp(prefix="rg-bench-truth-")
    # A safety net only: the parent terminates the server once it has measured.
    stop_at = time.time() + 900 + seconds
    proc = mp.get_context("spawn").Process(
        target=_serve, args=(port, markers, redraw_all, stop_at, truth_path), daemon=True
    )
    proc.start()
    deadline = time.time() + 60
    while time.time() < deadline and proc.is_alive():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.2)
    ps = psutil.Process(proc.pid)
    frames: list[list[tuple[float, int]]] = [[] for _ in range(sessions)]
    measuring = threading.Event()

    def watch(i: int, ws: Any) -> None:
        def got(payload: Any) -> None:
            if measuring.is_set():
                size = len(payload) if payload is not None else 0
                frames[i].append((time.time(), size))

        ws.on("framereceived", got)

    t_setup = time.time()
    with sync_playwright() as p:
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        browser = p.chromium.launch(executable_path=exe, args=_ARGS, headless=True)
        pages = []
        for i in range(sessions):
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.on("websocket", lambda ws, i=i: watch(i, ws))
            page.goto(f"http://127.0.0.1:{port}/", timeout=120_000)
            pages.append(page)
        shown = []
        for page in pages:
            page.wait_for_function(
                """() => window.Bokeh && Bokeh.documents.some(d => {
                       const m = d.get_model_by_name('rg-trucks'); return m && m.data.id.length > 0; })""",
                timeout=180_000,
            )
            shown.append(page.evaluate(_HOOK))
        setup_s = time.time() - t_setup
        ps.cpu_percent(None)
        chrome0 = _chromium_cpu_s()
        t0 = time.time()
        measuring.set()
        rss = []
        while time.time() - t0 < seconds and time.time() < stop_at - 1:
            rss.append(ps.memory_info().rss)
            pages[0].wait_for_timeout(1000)  # keeps Playwright's event loop delivering frames
        measuring.clear()
        elapsed = time.time() - t0
        cpu = ps.cpu_percent(None)
        chrome_cpu = (_chromium_cpu_s() - chrome0) / elapsed * 100
        events = [e for page in pages for e in page.evaluate("() => window.__rg") if e[0] >= t0]
        browser.close()
    proc.terminate()
    proc.join(15)
    truth = []
    apply_ms = []
    with open(truth_path, encoding="utf-8") as f:
        for line in f:
            t, dt, x, y = (float(v) for v in line.split())
            truth.append((t, x, y))
            apply_ms.append(dt * 1000)
    os.unlink(truth_path)
    lat = _latencies(events, truth)
    writes = sum(1 for t, _, _ in truth if t0 <= t <= t0 + elapsed)
    per_session_bytes = [sum(s for _, s in f) for f in frames]
    bpu = [b / writes for b in per_session_bytes] if writes else []
    return {
        "server_cpu_pct": round(cpu, 1),
        "chromium_cpu_pct": round(chrome_cpu, 1),
        "server_rss_mb": round(max(rss) / 2**20, 1) if rss else None,
        "bytes_per_update_per_session": round(statistics.mean(bpu)) if bpu else None,
        "updates_seen_per_session_per_s": round(len(lat) / sessions / elapsed, 2),
        "latency_ms_p50": _pct(lat, 0.5),
        "latency_ms_p95": _pct(lat, 0.95),
        "latency_ms_max": round(max(lat)) if lat else None,
        "feeder_apply_ms_p50": _pct(apply_ms, 0.5),
        "markers_shown": min(shown) if shown else 0,
        "setup_s": round(setup_s, 1),
        "seconds": round(elapsed, 1),
    }


def _compare(patch: dict[str, Any], redraw: dict[str, Any]) -> dict[str, Any]:
    def ratio(key: str) -> float | None:
        a, b = patch.get(key), redraw.get(key)
        return round(b / a, 2) if a and b else None

    return {
        "bytes_ratio_redraw_over_patch": ratio("bytes_per_update_per_session"),
        "cpu_ratio_redraw_over_patch": ratio("server_cpu_pct"),
        "latency_p95_ratio_redraw_over_patch": ratio("latency_ms_p95"),
    }


#: Candidate loads for the capacity sweep, lightest first (sessions, markers).
SIZES: tuple[tuple[int, int], ...] = (
    (5, 5000), (10, 3000), (20, 1500), (5, 10000), (10, 5000), (20, 3000), (5, 15000)
)  # fmt: skip
LATENCY_GOAL_MS = 1000
_NOTE = (
    "latency = a page's Bokeh document holding marker 0's new position minus the feeder's "
    "write of it; sessions are woken by the pusher right after the write (dashboard.push). "
    "Server and every "
    "headless Chromium page share this machine's cores, so large loads measure the "
    "browsers as much as the server."
)


def capacity(
    sizes: tuple[tuple[int, int], ...] = SIZES, seconds: int = 8, budget_s: float = 270
) -> dict[str, Any]:
    """The largest sessions x markers whose patched update latency p95 stays under 1 s.

    Patching runs at each size, lightest first, skipping sizes at least as large in both
    sessions and markers as one that missed the goal, and those the time budget leaves no
    room for; the redraw baseline then runs at the largest passing size (or the lightest
    one, if none passed) so the two are compared at the same load.
    """
    t0 = time.time()
    tried: list[dict[str, Any]] = []
    passing: tuple[int, int] | None = None
    failed: list[tuple[int, int]] = []
    for n, m in sorted(sizes, key=lambda s: (s[0] * s[1], s[0])):
        if any(n >= fn and m >= fm for fn, fm in failed):
            tried.append({"sessions": n, "markers": m, "skipped": "a smaller load missed the goal"})
            continue
        if tried and time.time() - t0 > budget_s * 0.7:
            tried.append({"sessions": n, "markers": m, "skipped": "time budget"})
            continue
        r = _mode(n, m, seconds, redraw_all=False)
        p95 = r["latency_ms_p95"]
        ok = p95 is not None and p95 < LATENCY_GOAL_MS and r["updates_seen_per_session_per_s"] > 0.5
        tried.append({"sessions": n, "markers": m, "meets_goal": ok, **r})
        if not ok:
            failed.append((n, m))
        elif passing is None or n * m >= passing[0] * passing[1]:
            passing = (n, m)
    n, m = passing or min(sizes, key=lambda s: s[0] * s[1])
    patch = next(t for t in tried if (t["sessions"], t["markers"]) == (n, m) and "skipped" not in t)
    redraw = {"sessions": n, "markers": m, **_mode(n, m, seconds, redraw_all=True)}
    return {
        "goal": f"update latency p95 < {LATENCY_GOAL_MS} ms with patching",
        "capacity": {"sessions": n, "markers": m, "session_markers": n * m} if passing else None,
        "patch_runs": tried,
        "redraw_baseline_at_capacity": redraw,
        **_compare(patch, redraw),
        "cpu_count": os.cpu_count(),
        "total_s": round(time.time() - t0, 1),
        "note": _NOTE,
    }


def run(
    sessions: int | None = None, markers: int | None = None, seconds: int = 8, budget_s: float = 270
) -> dict:
    """Capacity sweep (default), or patch vs redraw at one given size (sessions and markers)."""
    if sessions is None or markers is None:
        return capacity(seconds=seconds, budget_s=budget_s)
    patch = _mode(sessions, markers, seconds, redraw_all=False)
    redraw = _mode(sessions, markers, seconds, redraw_all=True)
    return {
        "sessions": sessions,
        "markers": markers,
        "patch": patch,
        "redraw_baseline": redraw,
        **_compare(patch, redraw),
        "note": _NOTE,
    }


if __name__ == "__main__":
    import json

    args = [int(a) for a in sys.argv[1:]]
    print(json.dumps(run(*args), indent=2))
