"""Helpers for dashboard tests: a config, a recording subscriber, sample messages."""

from __future__ import annotations

import threading
import time
from typing import Any

from contracts.alarms import AlarmEvent, Severity
from contracts.config import BrokerConfig, DeploymentConfig, parse_config
from contracts.mqtt import make_client
from contracts.telemetry import TelemetryBatch, TelemetryRow
from hardware.geo import DISTRICTS_FILE

NOW = time.time_ns()


def config(broker: BrokerConfig, var_dir: str, port: int = 5006) -> DeploymentConfig:
    """A small deployment: two cabinets, a dust monitor and a truck on agent-7."""
    dev = lambda i, kind, proto, prof, ep, **kw: {
        "id": i,
        "kind": kind,
        "protocol": proto,  # noqa: E731
        "profile": prof,
        "endpoint": ep,
        **kw,
    }
    return parse_config({
        "var_dir": var_dir,
        "broker": {"url": broker.url},
        "agents": [{"id": "agent-7", "devices": [
            dev("LC-0001", "lighting_cabinet", "opcua", "opcua_lighting_cabinet", "opc.tcp://127.0.0.1:1",
                name="人民南路1号箱", location={"lat": 30.65, "lon": 104.06}, attrs={"road": "人民南路"}),
            dev("LC-0002", "lighting_cabinet", "opcua", "opcua_lighting_cabinet", "opc.tcp://127.0.0.1:1",
                name="蜀都大道2号箱", location={"lat": 30.67, "lon": 104.02}, attrs={"road": "蜀都大道"}),
            dev("DM-0001", "dust_monitor", "modbus", "modbus_dust_monitor", "modbus://127.0.0.1:1",
                name="天府新区工地", location={"lat": 30.55, "lon": 104.07}),
            dev("TRK-0001", "vehicle", "mqtt_tracker", "mqtt_json_tracker", "trackers/TRK-0001/gps",
                attrs={"plate": "川A12345", "fleet": "建渣车队"}),
        ]}],
        "geofences": [
            {"id": "BZ-1", "kind": "banned_zone", "name": "春熙路禁行区",
             "polygon": [[104.07, 30.65], [104.09, 30.65], [104.08, 30.67]]},
            {"id": "RT-1", "kind": "approved_route", "name": "核准路线A",
             "line": [[104.07, 30.60], [104.10, 30.62]]},
        ],
        "dashboard": {"host": "127.0.0.1", "port": port, "guest_role": "viewer",
                      "basemap": str(DISTRICTS_FILE), "users": [
            {"name": "engineer", "password": "engineer-pw", "role": "lighting_engineer"},
            {"name": "operator", "password": "operator-pw", "role": "operator"},
        ]},
    })  # fmt: skip


def batch(seq: int = 1, ts: int | None = None, **over: Any) -> TelemetryBatch:
    """A batch with cabinet, dust and truck rows."""
    t = NOW if ts is None else ts
    rows = {
        ("LC-0001", "lighting_cabinet"): {
            "circuit1_on": 1.0,
            "circuit1_current": 3.2,
            "circuit2_on": 1.0,
            "circuit2_current": 0.0,
            "voltage_l1": 221.0,
            "door_open": 0.0,
        },
        ("LC-0002", "lighting_cabinet"): {
            "circuit1_on": 0.0,
            "circuit1_current": 0.0,
            "voltage_l1": 219.5,
        },
        ("DM-0001", "dust_monitor"): {"pm10": 180.0, "pm25": 60.0},
        ("TRK-0001", "vehicle"): {"lat": 30.70, "lon": 104.10, "speed": 32.0, "heading": 90.0},
    }
    b = TelemetryBatch(agent="agent-7", seq=seq)
    for (dev, kind), fields in rows.items():
        for name, value in fields.items():
            b.append(TelemetryRow(dev, kind, t, name, over.get(f"{dev}.{name}", value)))
    return b


def alarm(alarm_id: str = "A-1", **kw: Any) -> AlarmEvent:
    """A door-open alarm on LC-0002 filed as a case."""
    doc = dict(alarm_id=alarm_id, rule_id="door_open", domain="lighting", device_id="LC-0002",
               subject="LC-0002", field="door_open", severity=Severity.MAJOR, raised_ns=NOW,
               message="箱门打开 door open", case_no="CD-2026-000123", case_status="filed")  # fmt: skip
    doc.update(kw)
    return AlarmEvent(**doc)


class Recorder:
    """A real MQTT subscriber that records (topic, payload) it receives."""

    def __init__(self, broker: BrokerConfig, topic: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._subscribed = threading.Event()
        self._client = make_client(broker, "rg-test-recorder")
        self._client.on_connect = lambda c, *_a: c.subscribe(topic, qos=1)
        self._client.on_subscribe = lambda *_a: self._subscribed.set()
        self._client.on_message = lambda _c, _u, m: self.messages.append((m.topic, m.payload))
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        assert self._subscribed.wait(10), "recorder did not subscribe"

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def publish(broker: BrokerConfig, items: list[tuple[str, bytes, bool]]) -> None:
    """Publish (topic, payload, retain) at QoS 1 and wait until the broker has them."""
    c = make_client(broker, "rg-test-pub")
    c.connect(broker.host, broker.port)
    c.loop_start()
    try:
        for topic, payload, retain in items:
            c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)
    finally:
        c.disconnect()
        c.loop_stop()


def wait_for(what: str, check: Any, timeout_s: float = 10.0) -> Any:
    """Poll ``check`` until truthy or the deadline passes."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def storm(n: int = 6, parent_id: str = "G-1", **kw: Any) -> list[AlarmEvent]:
    """A cable-theft storm on LC-0001: a parent (filed as a case) and ``n - 1`` children,
    one per circuit, as the rules' alarm book groups them."""
    kids = [f"{parent_id}.{i}" for i in range(2, n + 1)]
    common = dict(rule_id="lighting.cable_theft", device_id="LC-0001", severity=Severity.CRITICAL,
                  message="接触器闭合但回路电流骤降，疑似电缆被盗", case_no="CD-2026-000200",
                  case_status="dispatched")  # fmt: skip
    extra = {"device_name": "人民南路1号箱"}
    out = [alarm(parent_id, subject="LC-0001/circuit1_current", field="circuit1_current",
                 extra={**extra, "children": kids}, **common, **kw)]  # fmt: skip
    for i, kid in enumerate(kids, start=2):
        out.append(alarm(kid, subject=f"LC-0001/circuit{i}_current", field=f"circuit{i}_current",
                         raised_ns=NOW + i * 10**9, extra={**extra, "parent": parent_id},
                         **common))  # fmt: skip
    return out
