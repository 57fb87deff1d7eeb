"""The dashboard benchmark's server process: a real dashboard whose live store a thread moves
every whole second, and a sampling profiler that says where the server's time goes."""

from __future__ import annotations

import gc
import json
import math
import os
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Any

__all__ = ["serve_child", "Sampler", "CENTER"]

CENTER = (30.66, 104.06)
#: Frames of these modules say where the time goes (asyncio and the loop's own frames do not).
_KEEP = ("dashboard.", "bokeh.", "panel.", "tornado.websocket", "tornado.iostream", "json", "numpy")
_SKIP = ("dashboard.app:serve", "dashboard.push:Pusher._run")


def _thread_cpu(ident: int) -> float | None:
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(ident))
    except (OSError, OverflowError):
        return None  # the thread is gone


class Sampler:
    """A poor man's sampling profiler for the time ``on`` is set: each thread's CPU (% of a
    core, from its CPU clock) and, over the samples where the thread's CPU clock moved, the
    functions on its stack (inclusive), as the share of a core each accounts for."""

    def __init__(self, on: Any, interval_s: float = 0.005) -> None:
        self.on = on
        self.interval_s = interval_s
        self.wall_s = 0.0
        self.own_cpu_s = 0.0  # the sampler's own cost, inside the server's CPU figure
        self.cpu_s: Counter[str] = Counter()
        self.busy: Counter[str] = Counter()  # thread name -> samples it was running in
        self.funcs: dict[str, Counter[str]] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self.gc_ms: dict[int, list[float]] = {0: [], 1: [], 2: []}  # pauses per generation
        self._gc_t0 = 0.0
        gc.callbacks.append(self._gc)

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        # The collector stops every thread: its pauses sit on the latency path.
        if phase == "start":
            self._gc_t0 = time.perf_counter()
        elif self.on.is_set() and self._gc_t0:
            self.gc_ms[info["generation"]].append((time.perf_counter() - self._gc_t0) * 1000)

    def start(self) -> Sampler:
        """Start the sampling thread."""
        threading.Thread(target=self._run, name="bench-sampler", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        if self._gc in gc.callbacks:
            gc.callbacks.remove(self._gc)

    def _run(self) -> None:
        me = threading.get_ident()
        prev = time.monotonic()
        while not self._stop.wait(self.interval_s):
            now = time.monotonic()
            if not self.on.is_set():
                self._last.clear()
                prev = now
                continue
            self.wall_s += now - prev
            prev = now
            own = time.thread_time()
            names = {t.ident: t.name for t in threading.enumerate()}
            for ident, frame in sys._current_frames().items():
                cpu = _thread_cpu(ident)
                if ident == me or cpu is None:
                    continue
                name = names.get(ident, "?").split("-rg-")[0]  # paho's thread: one name
                last = self._last.get(ident)
                self._last[ident] = cpu
                if last is None or cpu <= last:
                    continue
                self.cpu_s[name] += cpu - last
                self.busy[name] += 1
                seen: set[str] = set()
                f: Any = frame
                while f is not None:
                    key = f"{f.f_globals.get('__name__', '')}:{f.f_code.co_qualname}"
                    if key.startswith(_KEEP) and not key.startswith(_SKIP):
                        seen.add(key)
                    f = f.f_back
                self.funcs.setdefault(name, Counter()).update(seen)
            self.own_cpu_s += time.thread_time() - own

    def report(self, top: int = 12) -> dict[str, Any]:
        """Per thread: % of a core, and the functions that account for most of it."""
        out = {}
        for name, cpu in self.cpu_s.most_common():
            pct = 100 * cpu / self.wall_s if self.wall_s else 0.0
            if pct < 0.5:
                continue
            funcs = self.funcs.get(name, Counter())
            n = self.busy[name]
            out[name] = {
                "cpu_pct": round(pct, 1),
                "top_functions_cpu_pct": {
                    k: round(pct * v / n, 1) for k, v in funcs.most_common(top)
                },
            }
        out["sampler_cpu_pct"] = round(100 * self.own_cpu_s / self.wall_s, 1) if self.wall_s else 0
        out["gc_tracked_objects"] = len(gc.get_objects())  # what a full collection walks
        out["gc"] = {
            f"gen{g}": {"pauses_per_s": round(len(ms) / self.wall_s, 2) if self.wall_s else None,
                        "ms_per_s": round(sum(ms) / self.wall_s, 1) if self.wall_s else None,
                        "max_ms": round(max(ms), 1) if ms else 0}
            for g, ms in self.gc_ms.items()
        }  # fmt: skip
        return out


def _feed(store: Any, stop: threading.Event, stop_at: float, truth: str) -> None:
    """Move every marker at each whole second; log when marker 0 reached each position."""
    from contracts.telemetry import TelemetryBatch

    rnd = random.Random(7)
    pos = [[d.device_id, d.lat, d.lon, rnd.uniform(0, 360)] for d in store.devices()]
    seq = 0
    with open(truth, "a", encoding="utf-8") as out:
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
            # Ground truth: clients report the (x, y) = (lon, lat) of marker 0 they received.
            out.write(f"{t_write} {time.time() - t_write} {pos[0][2]!r} {pos[0][1]!r}\n")
            out.flush()


def _control(conn: Any, on: threading.Event) -> None:
    while True:
        try:
            on.set() if conn.recv() else on.clear()
        except (EOFError, OSError):
            return


def serve_child(
    port: int, markers: int, redraw_all: bool, stop_at: float, truth: str, control: Any, prof: str
) -> None:
    """Child process: a dashboard fed in-process with ``markers`` moving trucks (until SIGTERM);
    it profiles while the last thing the parent sent on the pipe ``control`` was true, and
    writes the profile to the file ``prof`` at the end."""
    import logging
    import socket

    from contracts.config import parse_config
    from dashboard.app import serve
    from dashboard.livestore import DeviceInfo, LiveStore

    logging.basicConfig(level=logging.ERROR)
    # Bokeh prints "Launching server at ..." to stdout: keep the parent's JSON output clean.
    sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - the child's lifetime
    with socket.socket() as s:  # the feed's broker is never there: the store is fed directly
        s.bind(("127.0.0.1", 0))
        broker = s.getsockname()[1]
    var_dir = tempfile.mkdtemp(prefix="rg-bench-")
    cfg = parse_config({"var_dir": var_dir, "broker": {"url": f"mqtt://127.0.0.1:{broker}"},
                        "dashboard": {"host": "127.0.0.1", "port": port, "guest_role": "viewer"}})  # fmt: skip
    rnd = random.Random(7)
    devs = {}
    for i in range(markers):
        dev_id = f"TRK-{i:05d}"
        lat, lon = CENTER[0] + rnd.uniform(-0.3, 0.3), CENTER[1] + rnd.uniform(-0.3, 0.3)
        devs[dev_id] = DeviceInfo(dev_id, "vehicle", dev_id, "bench", lat, lon,
                                  {"fleet": f"fleet-{i % 6}"})  # fmt: skip
    store = LiveStore(devs)
    stop = threading.Event()
    threading.Thread(
        target=_feed, args=(store, stop, stop_at, truth), name="bench-feeder", daemon=True
    ).start()
    # A local event: the sampler and its GC callback must not take a lock shared with the
    # parent (a cross-process Event hung the parent's set() in one run out of a few).
    on = threading.Event()
    threading.Thread(target=_control, args=(control, on), name="bench-control", daemon=True).start()
    sampler = Sampler(on).start()
    try:
        serve(cfg, stop=stop, redraw_all=redraw_all, store=store)
    finally:
        sampler.stop()
        with open(prof, "w", encoding="utf-8") as f:
            json.dump(sampler.report(), f)
        shutil.rmtree(var_dir, ignore_errors=True)
