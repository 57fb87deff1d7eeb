"""Helpers for the ingest integration tests: a small city config, wire-v1 documents built
by hand (so members can have the wrong type), a publisher, and reading back a store."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Iterable

from contracts.config import BrokerConfig, DeploymentConfig, InfluxConfig, StoreConfig
from contracts.mqtt import make_client
from ingest.store import open_store
from ingest.store.influx import InfluxStore

S = 1_000_000_000
DUST = [f"DM-{i}" for i in range(1, 5)]
TRUCKS = [f"TRK-{i:04d}" for i in range(1, 7)]
TRACKER_FILTER = "trackers/+/gps"

#: (device_id, field, ts, value) of one stored row.
Row = tuple[str, str, int, float]


def city_cfg(
    tmp_path, broker: BrokerConfig, influx: InfluxConfig | None, **over
) -> DeploymentConfig:
    """Dust monitors and trucks under one agent; ``over`` sets top-level sections."""
    modbus = {"protocol": "modbus", "profile": "modbus_dust_monitor"}
    devices = [
        {"id": d, "kind": "dust_monitor", "endpoint": "modbus://127.0.0.1:1", **modbus}
        for d in DUST
    ]
    devices += [
        {
            "id": t,
            "kind": "vehicle",
            "protocol": "mqtt_tracker",
            "profile": "mqtt_json_tracker",
            "endpoint": f"trackers/{t}/gps",
        }
        for t in TRUCKS
    ]
    doc = {
        "var_dir": str(tmp_path),
        "broker": broker.model_dump(),
        "store": StoreConfig(influx=influx).model_dump(),
        "agents": [{"id": "agent-1", "devices": devices}],
        **over,
    }
    return DeploymentConfig.model_validate(doc)


def v1_doc(rows: Iterable[tuple], seq: int = 1) -> bytes:
    """A wire-v1 batch of (device_id, kind, ts, field, value) with members taken as given."""
    devs: dict[tuple, int] = {}
    fields: dict[str, int] = {}
    d, f, t, x = [], [], [], []
    for dev, kind, ts, field, value in rows:
        d.append(devs.setdefault((dev, kind), len(devs)))
        f.append(fields.setdefault(field, len(fields)))
        t.append(ts)
        x.append(value)
    doc = {"v": 1, "agent": "agent-1", "seq": seq, "sent_ns": time.time_ns()}
    doc |= {"devices": [list(k) for k in devs], "fields": list(fields)}
    doc |= {"d": d, "f": f, "t": t, "x": x}
    return json.dumps(doc).encode()


def publish(broker: BrokerConfig, messages: list[tuple[str, bytes]]) -> None:
    """Publish (topic, payload) at QoS 1 in order, waiting for every PUBACK."""
    client = make_client(broker, "test-pub")
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, p, qos=1) for topic, p in messages]
        for info in infos:
            info.wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()


def stored(cfg: DeploymentConfig, pairs: Iterable[tuple[str, str]], t0: int, t1: int) -> list[Row]:
    """Every stored row of the (device, field) pairs in [t0, t1], from the history store."""
    store = open_store(cfg, read_only=cfg.store.influx is None)
    try:
        out: list[Row] = []
        for dev, field in sorted(set(pairs)):
            for ts, value in store.range(dev, field, t0, t1).rows():
                out.append((dev, field, ts, value))
        return out
    finally:
        store.close()


def pm10_count(influx: InfluxConfig) -> int:
    """How many dust_monitor pm10 points InfluxDB holds (0 before the first)."""
    store = InfluxStore(influx)
    try:
        res = store.query('SELECT count("pm10") FROM "dust_monitor"')
    finally:
        store.close()
    return res[0]["series"][0]["values"][0][1] if "series" in res[0] else 0


def scrape(port: int) -> dict[str, float]:
    """GET /metrics over real HTTP; sample (name with labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out
