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
