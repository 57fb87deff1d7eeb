"""The agent's own telemetry (kind agent), and what ingest's validation makes of it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from contracts.config import ConfigError, parse_config
from contracts.telemetry import DeviceKind, TelemetryBatch
from contracts.telemetry_arrow import encode_batch
from edge_agent.selfmon import FIELDS, agent_rows, rss_mb
from ingest.frames import decode_frame
from ingest.validate import validate

METRICS = {
    "devices": {"A": {"state": "online"}, "B": {"state": "offline"}, "C": {"state": "online"}},
    "polls_ok": 10,
    "polls_failed": 2,
    "buffer_depth": 3,
    "buffer_oldest_age_s": 1.5,
    "batches_dropped": 0,
    "broker_connected": False,
    "reloads_applied": 1,
}


def _cfg(
    tmp_path: Path, agent_id: str = "gw-1", device_id: str = "DM-1", kind: str = "dust_monitor"
):
    dev = {"id": device_id, "kind": kind, "protocol": "modbus", "profile": "modbus_dust_monitor",
           "endpoint": "modbus://127.0.0.1:5020"}  # fmt: skip
    return parse_config({"var_dir": str(tmp_path), "agents": [{"id": agent_id, "devices": [dev]}]})


def test_agent_rows_carry_the_agents_figures() -> None:
    rows = agent_rows("gw-1", METRICS, now_ns=123)
    got = {r.field: r.value for r in rows}
    assert {r.device_id for r in rows} == {"gw-1"} and {r.kind for r in rows} == {"agent"}
    assert {r.ts for r in rows} == {123} and set(got) <= set(FIELDS)
    assert got["devices"] == 3 and got["devices_online"] == 2 and got["devices_offline"] == 1
    assert got["buffer_depth"] == 3 and got["broker_connected"] == 0 and got["reloads_applied"] == 1
    assert got["rss_mb"] > 1 and abs(got["rss_mb"] - rss_mb()) < 50


def test_ingest_accepts_agent_rows_with_the_inventory_of_the_config(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path)
    batch = TelemetryBatch(agent="gw-1", seq=1)
    batch.extend(agent_rows("gw-1", METRICS))
    frame = decode_frame(encode_batch(batch))
    now = time.time_ns()
    good, bad = validate(frame, cfg.inventory(), now)
    assert bad.height == 0 and good.height == len(batch)
    assert cfg.inventory() == {"DM-1": "dust_monitor", "gw-1": "agent"}
    # an inventory of field devices alone quarantines them: ingest must use cfg.inventory()
    devices_only = {d: str(dev.kind) for d, (_a, dev) in cfg.devices().items()}
    _good, bad = validate(frame, devices_only, now)
    assert set(bad["reason"]) == {"unknown_device"}


def test_agent_is_no_kind_for_a_field_device_and_ids_do_not_clash(tmp_path: Path) -> None:
    assert DeviceKind("agent") is DeviceKind.AGENT
    with pytest.raises(ConfigError, match="kind of an agent's own telemetry"):
        _cfg(tmp_path, kind="agent")
    with pytest.raises(ConfigError, match="duplicate agent and device ids: gw-1"):
        _cfg(tmp_path, device_id="gw-1")
