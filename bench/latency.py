"""End-to-end latency: a fault injected at a simulated device until a wall screen's data shows it.

Runs ``rongguan demo`` as a subprocess (simulators, broker, agent, ingest with rules,
dashboard) with a scenario that opens cabinet doors (path: OPC-UA subscription or Modbus
poll → agent batch → MQTT → ingest → rules → alarm → dashboard → marker turns "alarm") and
raises dust episodes (path: Modbus poll → agent → MQTT → dashboard → PM10 marker colour).
Injections rotate over every cabinet and polled dust monitor, so no subject is hit often
enough to count as flapping (a flapping alarm is held raised and its marker would not
change). A headless page records, from Bokeh's own change signals, when each marker
changed; the injection times come from the simulator's ground-truth file; a subscriber on
the demo's broker (``bench._latency_probe``) splits each latency into stages.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench._latency_probe import STAGES, Probe, stages
from bench._latency_witness import Witness
from contracts.ports import free_port, wait_port

__all__ = ["run"]

_FIRST_S, _EVERY_S, _ON_S = 40, 5, 4  # first after the dashboard is up
_RED = "#fa5252"  # PM10 ≥ 200 µg/m³ (the episode's 420) is drawn in the top class
_HOOK = """(ids) => {
  window.__rg = [];
  for (const name of ['rg-cabinets', 'rg-dust']) {
    const doc = Bokeh.documents.find(d => d.get_model_by_name(name));
    const m = doc.get_model_by_name(name);
    const last = {};
    const note = () => {
      const d = m.data;
      for (let i = 0; i < d.id.length; i++) {
        if (!ids.includes(d.id[i])) continue;
        const v = d.state ? d.state[i] : d.colour[i];
        if (last[d.id[i]] !== v) { last[d.id[i]] = v; window.__rg.push([Date.now() / 1000, d.id[i], v]); }
      }
    };
    note();
    m.patching.connect(note); m.streaming.connect(note); m.properties.data.change.connect(note);
  }
}"""


def _subjects(size: str) -> tuple[list[str], list[str]]:
    """Cabinets and polled dust monitors of the demo's inventory (same seed as the demo)."""
    from hardware.inventory import build_inventory

    inv = build_inventory(size)
    dust = [d.id for d in inv.dust_monitors if d.profile.startswith("modbus")]
    return [c.id for c in inv.cabinets], dust


def _scenario(path: Path, seconds: int, cabinets: list[str], dust: list[str]) -> int:
    faults = []
    for i, at in enumerate(range(_FIRST_S, _FIRST_S + seconds, _EVERY_S)):
        faults.append({"at_s": at, "kind": "door_open", "device": cabinets[i % len(cabinets)],
                       "duration_s": _ON_S})  # fmt: skip
        faults.append({"at_s": at, "kind": "dust_episode", "device": dust[i % len(dust)],
                       "pm10": 420, "duration_s": _ON_S})  # fmt: skip
    path.write_text(yaml.safe_dump({"name": "latency", "faults": faults}), encoding="utf-8")
    return len(faults)


def _truth(gt: Path) -> list[dict]:
    if not gt.exists():
        return []
    return [json.loads(x) for x in gt.read_text(encoding="utf-8").splitlines() if x]


def _pct(xs: list[float], q: float) -> float | None:
    return round(sorted(xs)[min(len(xs) - 1, int(len(xs) * q))]) if xs else None


def _intervals(cfg_path: Path) -> dict[str, Any]:
    """Poll/report intervals and batching the demo ran with, per device kind."""
    cfg = yaml.safe_load(cfg_path.read_text(encoding="utf-8"))
    from contracts.config import DashboardConfig

    push = cfg.get("dashboard", {}).get("push_interval_s", DashboardConfig().push_interval_s)
    out: dict[str, Any] = {"dashboard_push_interval_s": push}
    for agent in cfg.get("agents", []):
        out["agent_batch"] = agent.get("batch")
        for d in agent.get("devices", []):
            out.setdefault(f"{d.get('kind')}_interval_s", d.get("interval_s"))
    return out


_PATHS: dict[str, tuple[str, str, Any]] = {
    "door_open": ("door_open_to_alarm_marker", "door_open", lambda v: v >= 0.5),
    "dust_episode": ("dust_to_pm10_colour", "pm10", lambda v: v >= 200),
}


def _measure(
    truth: list[dict], events: list[list[Any]], since: float, probe: Probe, witness: Witness
) -> dict:
    """Per injection after ``since`` (the page watching): latency from the device's change to
    the page's data, and its stages (ms)."""
    out: dict[str, dict[str, list[float]]] = {
        k: {"total": [], "from_injection": []} for k, _, _ in _PATHS.values()
    }
    for f in truth:
        t, dev = f["ts_ns"] / 1e9, f["device"]
        if t < since or f["kind"] not in _PATHS:
            continue
        key, fld, hit = _PATHS[f["kind"]]
        want = "alarm" if f["kind"] == "door_open" else _RED
        shown = next((e[0] for e in events if e[1] == dev and e[2] == want and e[0] >= t), None)
        device = witness.shown.get((dev, f["ts_ns"]))
        if shown is None or device is None or shown - t > _EVERY_S * 2:
            continue  # not seen in time (n below vs watched injections)
        out[key]["total"].append((shown - device) * 1000)
        out[key]["from_injection"].append((shown - t) * 1000)
        row = probe.first_row(dev, fld, device, hit)
        alarm = probe.first_alarm(dev, "lighting.door_open", device) if fld == "door_open" else None
        for stage, ms in (stages(t, device, row, alarm, shown) or {}).items():
            out[key].setdefault(stage, []).append(ms)
    result: dict[str, Any] = {}
    for key, series in out.items():
        xs, inj = series.pop("total"), series.pop("from_injection")
        result[key] = {"n": len(xs), "p50_ms": _pct(xs, 0.5), "p95_ms": _pct(xs, 0.95),
                       "max_ms": round(max(xs)) if xs else None,
                       "from_injection_p50_ms": _pct(inj, 0.5),
                       "from_injection_p95_ms": _pct(inj, 0.95),
                       "stages_mean_ms": {s: round(statistics.fmean(series[s]))
                                          for s in STAGES if series.get(s)},
                       "stages_p95_ms": {s: _pct(series[s], 0.95)
                                         for s in STAGES if series.get(s)}}  # fmt: skip
    return result


def run(
    seconds: int = 120, poll_s: float = 0.5, batch_delay_s: float = 0.1, size: str = "district"
) -> dict:
    """Inject faults for ``seconds`` into a demo of ``size`` and time them to a wall page's data.

    ``poll_s`` and ``batch_delay_s`` set the agent's poll interval and batching delay,
    which bound the latency from below.
    """
    from playwright.sync_api import sync_playwright

    from contracts.config import BrokerConfig

    tmp = Path(tempfile.mkdtemp(prefix="rg-latency-"))
    scen = tmp / "scenario.yaml"
    cabinets, dust = _subjects(size)
    n_faults = _scenario(scen, seconds, cabinets, dust)
    port = free_port()
    var = tmp / "var"
    cmd = [sys.executable, "-m", "rongguan.cli", "demo", "--size", size, "--port", str(port),
           "--scenario", str(scen), "--var-dir", str(var),
           "--poll-s", str(poll_s), "--batch-delay-s", str(batch_delay_s)]  # fmt: skip
    log = open(tmp / "demo.log", "ab")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, start_new_session=True)
    events: list[list[Any]] = []
    watching = time.time()
    gt = var / "ground-truth.jsonl"
    probe: Probe | None = None
    witness: Witness | None = None
    try:
        wait_port(port, 180, proc, "demo")
        cfg = yaml.safe_load((var / "deployment.yaml").read_text(encoding="utf-8"))
        probe = Probe(BrokerConfig(**cfg["broker"]), set(cabinets) | set(dust)).start()
        devices = {d["id"]: d for a in cfg["agents"] for d in a["devices"]}
        hits = {kind: (fld, hit) for kind, (_, fld, hit) in _PATHS.items()}
        witness = Witness(gt, {i: devices[i] for i in cabinets + dust}, hits).start()
        with sync_playwright() as p:
            exe = shutil.which("chromium") or shutil.which("chromium-browser")
            browser = p.chromium.launch(executable_path=exe, headless=True,
                                        args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
            page = browser.new_page(viewport={"width": 1920, "height": 1080})
            page.goto(f"http://127.0.0.1:{port}/", timeout=120_000)
            page.wait_for_function(
                "() => window.Bokeh && Bokeh.documents.some(d => d.get_model_by_name('rg-dust'))",
                timeout=120_000,
            )
            page.evaluate(_HOOK, cabinets + dust)
            watching = time.time()
            # Until every injection happened and the last one has had time to show.
            deadline = watching + _FIRST_S + seconds + 4 * _EVERY_S
            while time.time() < deadline:
                truth = _truth(gt)
                if len(truth) >= n_faults and time.time() - truth[-1]["ts_ns"] / 1e9 > 2 * _EVERY_S:
                    break
                page.wait_for_timeout(1000)
            events = page.evaluate("() => window.__rg")
            browser.close()
    finally:
        for part in (witness, probe):  # before the demo goes: its servers are still there
            if part is not None:
                part.stop()
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    truth = _truth(gt)
    assert probe is not None and witness is not None
    result: dict[str, Any] = {"size": size, "seconds": seconds, "injections": len(truth),
                              "watched_injections": sum(f["ts_ns"] / 1e9 >= watching
                                                        for f in truth)}  # fmt: skip
    result |= _measure(truth, events, watching, probe, witness)
    result["probe_bad_payloads"], result["witness_errors"] = probe.bad, witness.errors
    result["intervals"] = _intervals(var / "deployment.yaml")
    result["stages"] = (
        "latency counts from the device showing the fault (read straight from its simulated "
        "server); sim_apply: injection → the device shows it (the simulator's own step, not "
        "counted); device_to_agent: → the agent's read (poll phase, or OPC-UA publishing); "
        "agent_batch: read → batch sent (max_delay_s); broker_hop: sent → a subscriber; "
        "ingest_rules: row at the broker → its alarm at the broker; dashboard: at the broker "
        "→ the page's data (feed, marker cache, session push, websocket, BokehJS)"
    )
    shutil.rmtree(tmp, ignore_errors=True) if os.environ.get("RG_KEEP") is None else None
    return result


if __name__ == "__main__":
    print(json.dumps(run(*(int(a) for a in sys.argv[1:2])), indent=2))
