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
