"""``rongguan bench NAME``: run one benchmark from ``bench/``.

Every benchmark measures its baseline in the same run and returns a dict of figures;
the last line printed is that dict as one JSON object.
"""

from __future__ import annotations

import importlib
import json
import sys

__all__ = ["BENCHMARKS", "run_bench"]

#: name -> (module in bench/, what it measures)
BENCHMARKS = {
    "encode": (
        "bench.encode",
        "line-protocol encoding: polars expressions vs influxdb-client Point",
    ),
    "ingest": (
        "bench.ingest",
        "ingest: MQTT-to-InfluxDB (configured store, gzip, 2 workers) vs raw /write (~6 min)",
    ),
    "rules": ("bench.rules", "rules engine: numba vs Python reference vs polars (~2 min)"),
    "poll": (
        "bench.poll",
        "polling: Modbus vs pymodbus, OPC-UA 10,000 items, memory district/city (~13 min)",
    ),
    "agent": ("bench.agent", "agent at scale: OPC-UA 10,000 items, memory district/city (~12 min)"),
    "sim": (
        "bench.sim",
        "simulator capacity per process and kind (OPC-UA, Modbus, MQTT, HJ 212, JT/T 808) (~8 min)",
    ),
    "latency": ("bench.latency", "end to end: device change to wall screen, p50/p95 (~2 min)"),
    "dashboard": (
        "bench.dashboard",
        "20 wall sessions x 15,000 moving markers: patching vs redrawing (~2 min)",
    ),
}


def run_bench(name: str) -> int:
    """Run the named benchmark; print its figures, JSON last."""
    if name == "list" or name not in BENCHMARKS:
        for n, (_, what) in BENCHMARKS.items():
            print(f"{n:12s} {what}")
        return 0 if name == "list" else 2
    module = importlib.import_module(BENCHMARKS[name][0])
    result = module.run()
    result = {"benchmark": name, **result}
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run_bench(sys.argv[1] if len(sys.argv) > 1 else "list"))
