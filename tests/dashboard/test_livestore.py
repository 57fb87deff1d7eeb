"""The live store fed directly with decoded messages (no broker)."""

from __future__ import annotations

import json

from contracts.commands import Command, CommandAck, CommandAction, CommandState
from contracts.config import BrokerConfig
from dashboard.kpi import compute_kpis
from dashboard.livestore import LiveStore, devices_from_config
from tests.dashboard._helpers import NOW, alarm, batch, config


def _store(tmp_path, **kw) -> LiveStore:
    return LiveStore(devices_from_config(config(BrokerConfig(), str(tmp_path))), **kw)


def test_latest_values_positions_and_changes(tmp_path):
    s = _store(tmp_path)
    v0 = s.version
    s.apply_batch_payload(batch().encode())
    ch = s.changes_since(v0)
    assert ch is not None and ch.devices == {"LC-0001", "LC-0002", "DM-0001", "TRK-0001"}
    assert s.device("LC-0001").values["circuit1_current"] == 3.2
    assert s.device("TRK-0001").position() == (30.70, 104.10)
    assert s.device("DM-0001").position() == (30.55, 104.07)  # configured location
    assert s.device("LC-0001").agent == "agent-7"
    # Nothing new: empty changes at the same version.
    assert not s.changes_since(ch.version)


def test_late_rows_do_not_overwrite_newer_values(tmp_path):
    s = _store(tmp_path)
    s.apply_batch(batch(ts=NOW, **{"DM-0001.pm10": 50.0}))
    s.apply_batch(batch(ts=NOW - 10**9, **{"DM-0001.pm10": 999.0}))
    assert s.device("DM-0001").values["pm10"] == 50.0


def test_change_log_is_bounded_and_old_sessions_resync(tmp_path):
    s = _store(tmp_path, max_changes=3)
    for i in range(5):
        s.apply_batch(batch(seq=i, ts=NOW + i))
    assert s.stats()["log"] == 3
    assert s.changes_since(0) is None  # fell behind: must re-read everything
    assert s.changes_since(s.version - 1) is not None


def test_bad_input_is_counted_not_raised(tmp_path):
    s = _store(tmp_path)
    s.apply_batch_payload(b"garbage")
    s.apply_alarm("A-9", b"{not json")
    s.apply_ack(b"[]")
    s.apply_availability("LC-0001", b"nope")
    st = s.stats()
    assert (st["bad_batches"], st["bad_alarms"], st["bad_acks"], st["bad_availability"]) == (
        1,
        1,
        1,
        1,
    )


def test_unknown_devices_are_kept_and_counted_and_device_count_bounded(tmp_path):
    s = LiveStore({}, max_devices=2)
    s.apply_batch(batch())
    st = s.stats()
    assert st["devices"] == 2 and st["unknown_devices"] == 2 and st["devices_refused"] > 0


def test_alarms_retained_and_removed_by_empty_payload(tmp_path):
    s = _store(tmp_path)
    s.apply_alarm("A-1", alarm().encode())
    v = s.version
    assert s.alarms()[0].case_no == "CD-2026-000123"
    s.apply_alarm("A-1", b"")
    assert s.alarms() == [] and s.changes_since(v).alarms == {"A-1"}


def test_availability(tmp_path):
    s = _store(tmp_path)
    s.apply_availability("LC-0001", json.dumps({"state": "offline"}).encode())
    assert s.device("LC-0001").availability == "offline"


def test_command_progress_follows_acks_and_stays_terminal(tmp_path):
    s = _store(tmp_path)
    cmd = Command(
        device_id="LC-0001", action=CommandAction.SWITCH_CIRCUIT, params={"circuit": 1, "on": False}
    )
    s.add_command(cmd, "agent-7")
    for st in (
        CommandState.SENT,
        CommandState.ACKNOWLEDGED,
        CommandState.CONFIRMED,
        CommandState.FAILED,
    ):
        s.apply_ack(CommandAck(command_id=cmd.command_id, device_id="LC-0001", state=st).encode())
    p = s.command(cmd.command_id)
    assert p.state == "confirmed" and [x for x, _ in p.steps] == [
        "issued",
        "sent",
        "acknowledged",
        "confirmed",
    ]
    s.apply_ack(
        CommandAck(command_id="other", device_id="LC-0001", state=CommandState.SENT).encode()
    )
    assert s.stats()["unknown_acks"] == 1


def test_kpis(tmp_path):
    s = _store(tmp_path)
    s.apply_batch(batch())
    s.apply_alarm("A-1", alarm().encode())
    k = compute_kpis(s.devices(), s.alarms(), NOW)
    assert k.circuits_on == 2 and k.lamp_on_rate == 0.5  # circuit 2 is on but draws nothing
    assert k.dust_exceedances == 1 and k.trucks_on_duty == 1
    assert k.alarms["major"] == 1 and k.online["lighting_cabinet"] == (2, 2)
