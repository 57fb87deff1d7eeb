"""A city served in parts: every device exactly once, one clock, faults where their device is."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asyncua import Client

from contracts.config import BrokerConfig
from hardware.inventory import build_inventory
from hardware.sim.city import SimulatedCity
from hardware.sim.faults import FaultError
from tests.hardware.conftest import run


def test_parts_share_out_every_kind_and_play_their_own_faults(tmp_path: Path) -> None:
    inv = build_inventory("district")
    scenario = tmp_path / "s.yaml"
    scenario.write_text(
        "faults:\n  - {at_s: 1, kind: door_open, device: LC-0001}\n"
        "  - {at_s: 1, kind: door_open, device: LC-0002}\n"
    )
    parts = [SimulatedCity(inv, part=(i, 3), scenario=scenario) for i in range(3)]
    served = [d for p in parts for d in (*p.cabinets, *p.dust, *p.trucks)]
    assert sorted(served) == sorted(inv.device_ids())  # each device once
    for p in parts:  # a like share of each kind, not all cabinets in one part
        assert len(p.cabinets) in (len(inv.cabinets) // 3, len(inv.cabinets) // 3 + 1)
        assert len(p.trucks) in (len(inv.vehicles) // 3, len(inv.vehicles) // 3 + 1)
    owners = [[f["device"] for _, f in p.timeline] for p in parts]
    assert sorted(d for o in owners for d in o) == ["LC-0001", "LC-0002"]
    assert all(p.serves(d) for p, o in zip(parts, owners, strict=True) for d in o)
    other = next(p for p in parts if not p.serves("LC-0001"))
    with pytest.raises(FaultError, match="another part"):
        other.inject({"kind": "door_open", "device": "LC-0001"})
    with pytest.raises(ValueError, match="part must be"):
        SimulatedCity(inv, part=(3, 3))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.servers
def test_simulate_cli_serves_a_city_as_processes_on_one_clock(
    tmp_path: Path, mqtt_broker: BrokerConfig
) -> None:
    out = tmp_path / "endpoints.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rongguan.cli", "simulate", "--size", "tiny",
         "--processes", "2", "--start", "2026-12-21T21:00", "--speed", "60",
         "--mqtt-url", mqtt_broker.url, "--endpoints-json", str(out)],
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not out.exists():
            assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "no endpoints after 120 s"
            time.sleep(0.1)
        doc = json.loads(out.read_text())
        inv = build_inventory("tiny")
        assert sorted(d["id"] for d in doc["devices"]) == sorted(inv.device_ids())
        assert doc["parts"] == 2 and len(set(doc["pids"])) == 2
        assert doc["clock"]["speed"] == 60 and doc["clock"]["stamps"] == "sim"
        assert doc["clock"]["start"] == "2026-12-21T21:00:00+08:00"
        opcua = doc["endpoints"]["opcua"]
        assert len(opcua) == 2  # one cabinet in each part, each on its own endpoint

        async def stamps() -> list[float]:
            out = []
            for e in opcua:
                async with Client(e["endpoint"], timeout=10) as client:
                    idx = await client.get_namespace_index(e["namespace"])
                    node = client.get_node(f"ns={idx};s={e['devices'][0]}.VoltageL1")
                    stamp = (await node.read_data_value()).SourceTimestamp
                    out.append(stamp.replace(tzinfo=UTC).timestamp())
            return out

        assert len({c["anchor"] for c in doc["clocks"]}) == 1  # one clock for every part
        stamped = run(stamps(), timeout_s=60)
        start = datetime.fromisoformat(doc["clock"]["start"]).timestamp()
        sim_now = start + (time.time() - doc["clock"]["anchor"]) * 60
        assert all(start <= t <= sim_now for t in stamped), (start, stamped, sim_now)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert proc.returncode == 0
    assert not any(_alive(pid) for pid in doc["pids"])  # the parts went with it
