"""A synthetic city fleet for the ingest benchmark: agent batches and frames, made fast.

Device ``j`` has kind ``KINDS[j % 3]`` and reports the five fields of its kind; a batch
of ``rows_per_batch`` rows covers ``rows_per_batch / 5`` devices of one agent. Row ``i``
of batch ``seq`` has ``ts = t0 + seq * rows_per_batch + i`` (ns), so every row of a run
is a distinct point and the database's count proves every row arrived once.
"""

from __future__ import annotations

import json
import time

import numpy as np
import polars as pl
import pyarrow as pa

from contracts.telemetry import TelemetryBatch
from contracts.telemetry_arrow import encode_batch
from ingest.frames import SCHEMA

__all__ = ["Fleet", "FIELDS", "POOL_ROWS_PER_S", "ROWS_PER_DEVICE"]

#: Plausible mid-range values per kind and field (they pass ingest's range checks).
FIELDS: dict[str, dict[str, float]] = {
    "lighting_cabinet": {
        "voltage_l1": 221.0,
        "current_l1": 12.5,
        "active_power": 6.1,
        "circuit1_current": 3.2,
        "circuit1_on": 1.0,
    },
    "dust_monitor": {"pm25": 35.0, "pm10": 82.0, "tsp": 120.0, "noise": 55.0, "wind_speed": 3.1},
    "vehicle": {"lat": 30.66, "lon": 104.06, "speed": 38.0, "heading": 181.0, "cover_open": 0.0},
}
ROWS_PER_DEVICE = 5
#: Rows/s that the rows the benchmark builds before it starts the clock suffice for (the
#: ceiling's line protocol, the publisher's batches): more than InfluxDB takes on 2 cores.
POOL_ROWS_PER_S = 1_000_000
_KINDS = list(FIELDS)
_NAMES = [f for k in _KINDS for f in FIELDS[k]]


class Fleet:
    """Deterministic batches for ``devices`` devices (same output in every process)."""

    def __init__(self, devices: int, rows_per_batch: int, t0: int | None = None) -> None:
        self.devices = devices
        self.rows_per_batch = rows_per_batch
        self.per_batch = rows_per_batch // ROWS_PER_DEVICE
        self.agents = max(1, devices // self.per_batch)
        # An hour ago, on a whole hour: inside ingest's late-row window, same in every process.
        self.t0 = t0 if t0 is not None else (time.time_ns() // 3_600_000_000_000 - 1) * 3600 * 10**9
        self._field = [i % ROWS_PER_DEVICE for i in range(rows_per_batch)]
        self._xs = [self._values(a) for a in range(self.agents)]
        self._prefix = [self._agent_prefix(a) for a in range(self.agents)]
        self._v2: dict[int, pa.Table] = {}

    def device_id(self, j: int) -> str:
        """The id of device ``j``."""
        return f"{('LC', 'DM', 'TRK')[j % 3]}-{j:05d}"

    def first_field(self, j: int) -> str:
        """The first field device ``j`` reports."""
        return next(iter(FIELDS[_KINDS[j % 3]]))

    def vehicle_id(self) -> str:
        """A vehicle of the first agent."""
        return self.device_id(2)

    def inventory(self) -> dict[str, str]:
        """device_id -> kind for every device."""
        return {self.device_id(j): _KINDS[j % 3] for j in range(self.agents * self.per_batch)}

    def _devices(self, agent: int) -> list[int]:
        base = agent * self.per_batch
        return [base + i // ROWS_PER_DEVICE for i in range(self.rows_per_batch)]

    def _values(self, agent: int) -> list[float]:
        devs = self._devices(agent)
        names = [list(FIELDS[_KINDS[j % 3]])[fi] for j, fi in zip(devs, self._field)]
        return [
            FIELDS[_KINDS[j % 3]][nm] + (i % 7) * 0.1 * (FIELDS[_KINDS[j % 3]][nm] > 2)
            for i, (j, nm) in enumerate(zip(devs, names))
        ]

    def _agent_prefix(self, agent: int) -> tuple[str, str]:
        devs = list(range(agent * self.per_batch, (agent + 1) * self.per_batch))
        d = [i // ROWS_PER_DEVICE for i in range(self.rows_per_batch)]
        f = [_NAMES.index(list(FIELDS[_KINDS[devs[di] % 3]])[fi]) for di, fi in zip(d, self._field)]
        head = f'{{"v":1,"agent":"bench-{agent}","seq":'
        body = (
            ',"sent_ns":0,"devices":'
            + json.dumps([[self.device_id(j), _KINDS[j % 3]] for j in devs])
            + ',"fields":'
            + json.dumps(_NAMES)
            + ',"d":'
            + json.dumps(d)
            + ',"f":'
            + json.dumps(f)
            + ',"x":'
            + json.dumps(self._xs[agent])
            + ',"t":['
        )
        return head, body

    def payload(self, seq: int) -> bytes:
        """Batch ``seq`` in the agents' wire format (JSON), built by string templating."""
        head, body = self._prefix[seq % self.agents]
        start = self.t0 + seq * self.rows_per_batch
        t = ",".join(map(str, range(start, start + self.rows_per_batch)))
        return f"{head}{seq}{body}{t}]}}".encode()

    def payload_v2(self, seq: int) -> bytes:
        """Batch ``seq`` in wire v2 (Arrow IPC, what agents publish): the same rows."""
        agent = seq % self.agents
        if agent not in self._v2:
            frame = self.frame(agent)
            b = TelemetryBatch(agent=f"bench-{agent}", seq=0)
            b.device_id, b.kind = frame["device_id"].to_list(), frame["kind"].to_list()
            b.ts, b.field_name = frame["ts"].to_list(), frame["field"].to_list()
            b.value = frame["value"].to_list()
            table = pa.ipc.open_stream(encode_batch(b)).read_all()
            self._v2[agent] = table.drop_columns(["ts"])
        table = self._v2[agent]
        start = self.t0 + seq * self.rows_per_batch
        ts = pa.array(np.arange(start, start + self.rows_per_batch, dtype=np.int64))
        meta = {**table.schema.metadata, b"seq": str(seq).encode()}
        table = table.add_column(2, pa.field("ts", pa.int64()), ts).replace_schema_metadata(meta)
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()

    def frame(self, seq: int) -> pl.DataFrame:
        """Batch ``seq`` as a telemetry frame (the same rows as :meth:`payload`)."""
        agent = seq % self.agents
        devs = self._devices(agent)
        start = self.t0 + seq * self.rows_per_batch
        return pl.DataFrame(
            {
                "device_id": [self.device_id(j) for j in devs],
                "kind": [_KINDS[j % 3] for j in devs],
                "ts": range(start, start + self.rows_per_batch),
                "field": [list(FIELDS[_KINDS[j % 3]])[fi] for j, fi in zip(devs, self._field)],
                "value": self._xs[agent],
            },
            schema=SCHEMA,
        )
