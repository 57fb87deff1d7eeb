"""InfluxQL reads of Rongguan's history: latest values, ranges, tracks, alarm history.

Reads go to ``/query`` (InfluxQL), which InfluxDB 1.8+, 2.x (v1 compatibility) and 3.x
all serve; influxdb-client has no InfluxQL API, so this module calls it with urllib.
The measurement and tag layout is in docs/influx-schema.md.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import polars as pl

from contracts.config import InfluxConfig
from ingest.frames import SCHEMA
from ingest.store.base import (
    RANGE_SCHEMA,
    TRACK_FIELDS,
    TRACK_SCHEMA,
    Agg,
    StoreError,
    StoreUnavailable,
    alarm_frame,
)

__all__ = ["InfluxReads", "ALARM_MEASUREMENT", "quote_ident", "quote_str"]

#: Alarm transitions: tags alarm_id, device_id, domain, severity, state and, for a storm
#: group's child, parent; field ``doc`` (the event as JSON).
ALARM_MEASUREMENT = "alarm_events"
_NS = 1_000_000_000


def quote_ident(name: str) -> str:
    """An InfluxQL identifier in double quotes."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_str(value: str) -> str:
    """An InfluxQL string literal in single quotes."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class InfluxReads:
    """The query side of the InfluxDB store (``cfg`` names the server and database)."""

    cfg: InfluxConfig

    def query(self, q: str) -> list[dict[str, Any]]:
        """Run InfluxQL statements (``;``-separated); one result dict per statement."""
        data = urllib.parse.urlencode({"db": self.cfg.bucket, "q": q, "epoch": "ns"}).encode()
        req = urllib.request.Request(f"{self.cfg.url}/query", data=data, method="POST")
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
        if self.cfg.token:
            req.add_header("Authorization", f"Token {self.cfg.token}")
        try:
            with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:
                doc = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            body = exc.read()[:300].decode(errors="replace")
            raise StoreError(f"InfluxQL {exc.code}: {body}") from None
        except (OSError, ValueError, http.client.HTTPException) as exc:  # e.g. a cut-off answer
            raise StoreUnavailable(f"InfluxDB at {self.cfg.url}: {exc}") from None
        if "error" in doc:
            raise StoreError(f"InfluxQL: {doc['error']}")
        results = doc.get("results", [])
        for r in results:
            if "error" in r:
                raise StoreError(f"InfluxQL: {r['error']}")
        return results

    def latest(self, kind: str | None = None) -> pl.DataFrame:
        """The last value per (device_id, field): one ``last()`` per field key."""
        src = quote_ident(kind) if kind else "/.*/"
        keys = self.query(f"SHOW FIELD KEYS FROM {src}")
        stmts = [
            (m["name"], key)
            for res in keys
            for m in res.get("series", [])
            if m["name"] != ALARM_MEASUREMENT
            for key, _type in m["values"]
        ]
        frames = [pl.DataFrame(schema=SCHEMA)]
        for i in range(0, len(stmts), 100):  # keep each request's query string modest
            part = stmts[i : i + 100]
            q = ";".join(
                f'SELECT last({quote_ident(k)}) FROM {quote_ident(m)} GROUP BY "device_id"'
                for m, k in part
            )
            for (meas, key), res in zip(part, self.query(q)):
                for s in res.get("series", []):
                    ts, val = zip(*s["values"])
                    n = len(ts)
                    frames.append(
                        pl.DataFrame(
                            {
                                "device_id": [s["tags"]["device_id"]] * n,
                                "kind": [meas] * n,
                                "ts": list(ts),
                                "field": [key] * n,
                                "value": list(val),
                            },
                            schema=SCHEMA,
                            strict=False,
                        )
                    )
        return pl.concat(frames).sort("device_id", "field")

    def range(
        self,
        device_id: str,
        field: str,
        start_ns: int,
        end_ns: int,
        every_s: float | None = None,
        agg: Agg = "mean",
    ) -> pl.DataFrame:
        """One field of one device over [start_ns, end_ns), raw or in epoch-aligned buckets."""
        where = (
            f'WHERE "device_id" = {quote_str(device_id)} '
            f"AND time >= {int(start_ns)} AND time < {int(end_ns)}"
        )
        col = quote_ident(field)
        if every_s is None:
            q = f"SELECT {col} FROM /.*/ {where}"
        else:
            if agg not in ("mean", "max"):
                raise ValueError(f"agg must be 'mean' or 'max', not {agg!r}")
            step = int(every_s * _NS)
            if step <= 0:
                raise ValueError("every_s must be positive")
            q = f"SELECT {agg}({col}) FROM /.*/ {where} GROUP BY time({step}ns) fill(none)"
        rows = [
            (v[0], v[1]) for s in _series(self.query(q)) for v in s["values"] if v[1] is not None
        ]
        return pl.DataFrame(rows, schema=RANGE_SCHEMA, orient="row").sort("ts")

    def track(self, device_id: str, start_ns: int, end_ns: int) -> pl.DataFrame:
        """A vehicle's fixes in time order (rows with lat and lon)."""
        cols = ", ".join(quote_ident(f) for f in TRACK_FIELDS)
        q = (
            f'SELECT {cols} FROM "vehicle" WHERE "device_id" = {quote_str(device_id)} '
            f"AND time >= {int(start_ns)} AND time < {int(end_ns)}"
        )
        rows = [
            tuple(v)
            for s in _series(self.query(q))
            for v in s["values"]
            if v[1] is not None and v[2] is not None
        ]
        return pl.DataFrame(rows, schema=TRACK_SCHEMA, orient="row").sort("ts")

    def alarm_history(self, start_ns: int, end_ns: int) -> pl.DataFrame:
        """Alarm transitions with start_ns <= updated_ns < end_ns, oldest first."""
        q = (
            f'SELECT "doc" FROM {quote_ident(ALARM_MEASUREMENT)} '
            f"WHERE time >= {int(start_ns)} AND time < {int(end_ns)}"
        )
        docs = [json.loads(v[1]) for s in _series(self.query(q)) for v in s["values"]]
        return alarm_frame(docs)

    def alarm_events(self, alarm_id: str) -> pl.DataFrame:
        """Every stored transition of one alarm, oldest first (the ``alarm_id`` tag's index)."""
        q = (
            f'SELECT "doc" FROM {quote_ident(ALARM_MEASUREMENT)} '
            f'WHERE "alarm_id" = {quote_str(alarm_id)}'
        )
        docs = [json.loads(v[1]) for s in _series(self.query(q)) for v in s["values"]]
        return alarm_frame(docs)


def _series(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for r in results for s in r.get("series", [])]
