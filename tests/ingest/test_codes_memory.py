"""Validating on categorical codes must not keep every name ingest has ever seen.

Polars keeps one mapping of coded names for as long as any categorical is alive. A worker
that held one (a coded inventory did) kept every junk device id it ever refused. Run in
a fresh interpreter: other tests' frames would keep the mapping alive in this one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[2]

_WORKER = """
import time
import polars as pl
from contracts import topics
from contracts.telemetry import TelemetryBatch
from contracts.telemetry_arrow import encode_batch
from ingest.metrics import IngestMetrics
from ingest.prepare import prepare
from ingest.validate import inventory_frame

inventory = inventory_frame({f"DM-{i}": "dust_monitor" for i in range(1000)})  # held
m, now, junk = IngestMetrics(), time.time_ns(), 5000
for group in range(20):
    b = TelemetryBatch(agent="a", seq=group)
    b.device_id = [f"junk-{group}-{i}" for i in range(junk)] + ["DM-1"]
    b.kind = ["dust_monitor"] * (junk + 1)
    b.ts = [now + i for i in range(junk + 1)]
    b.field_name = ["pm10"] * (junk + 1)
    b.value = [1.0] * (junk + 1)
    good = prepare([(topics.telemetry(0, "a"), encode_batch(b), now)], inventory, None, m, None)
    assert good is not None and good.rows() == [("DM-1", "dust_monitor", now + junk, "pm10", 1.0)]
assert m.count("rows_quarantined") == 20 * junk
# The code a new name gets: how many names the mapping holds.
print(pl.Series(["a-new-name"]).cast(pl.Categorical).to_physical()[0])
"""


def test_refused_names_do_not_pile_up_in_the_code_mapping():
    out = subprocess.run(
        [sys.executable, "-c", _WORKER], cwd=_ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    # 100,000 junk ids went through; a mapping that kept them would give a code above that.
    assert int(out.stdout.split()[-1]) < 10_000
