"""Benchmarks: every registered one exists, and a run ends with one JSON object."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import pytest

from rongguan.bench import BENCHMARKS


@pytest.mark.parametrize("name", sorted(BENCHMARKS))
def test_registered_benchmark_has_a_run_function(name: str):
    module = importlib.import_module(BENCHMARKS[name][0])
    assert callable(module.run)


def test_encode_benchmark_prints_figures_and_ratio_as_last_json_line():
    out = subprocess.run(
        [sys.executable, "-m", "rongguan.cli", "bench", "encode"],
        capture_output=True, text=True, check=True, timeout=300,
    )  # fmt: skip
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["benchmark"] == "encode"
    assert doc["identical_output"] is True
    assert doc["speedup_vs_point"] > 1


def test_poll_benchmark_covers_modbus_opcua_and_memory(monkeypatch: pytest.MonkeyPatch):
    """A short real Modbus run; the OPC-UA and memory parts come from ``bench.agent``
    (its own ~12-minute run is stubbed here: only the wiring is checked)."""
    from bench import agent, poll

    parts = {"opcua": {"monitored_items": 10_005}, "memory_district": {}, "memory_city": {}}
    monkeypatch.setattr(agent, "run", lambda: dict(parts))
    doc = poll.run(rounds=3, repeats=1)
    assert set(parts) <= set(doc)
    modbus = doc["modbus"]
    assert modbus["agent"]["requests"] == modbus["plain_plan"]["requests"] > 0
    assert modbus["fewer_requests_ratio"] >= 5
    # every shipped Modbus profile needs >= 5x fewer requests than one per point
    assert min(modbus["request_reduction_by_profile"].values()) >= 5
    assert set(modbus["request_reduction_by_profile"]) >= {"modbus_lighting_controller"}
