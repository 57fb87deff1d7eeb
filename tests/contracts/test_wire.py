"""Wire contracts: telemetry batches, commands, alarms and topics round-trip and reject junk."""

from __future__ import annotations

import math

import pytest

from contracts import topics
from contracts.alarms import AlarmEvent, Severity
from contracts.commands import Command, CommandAck, CommandAction, CommandState
from contracts.telemetry import BatchError, TelemetryBatch, TelemetryRow


def _batch() -> TelemetryBatch:
    b = TelemetryBatch(agent="agent-1", seq=7, sent_ns=5)
    b.extend(
        [
            TelemetryRow("LC-0001", "lighting_cabinet", 10, "circuit1_current", 3.5),
            TelemetryRow("LC-0001", "lighting_cabinet", 10, "circuit1_on", 1.0),
            TelemetryRow("DM-0001", "dust_monitor", 11, "pm10", math.nan),
            TelemetryRow("TRK-0001", "vehicle", 12, "speed", None),
            TelemetryRow("DM-0001", "dust_monitor", 13, "pm10", 88.0),
        ]
    )
    return b


def test_batch_round_trip_keeps_rows_and_turns_non_finite_into_null():
    b = _batch()
    got = TelemetryBatch.decode(b.encode())
    assert (got.agent, got.seq, got.sent_ns) == ("agent-1", 7, 5)
    assert [r for r in got.rows() if r.field != "pm10" or r.ts != 11] == [
        r for r in b.rows() if r.field != "pm10" or r.ts != 11
    ]
    assert got.rows()[2].value is None
    assert got.columns()["device_id"] == ["LC-0001", "LC-0001", "DM-0001", "TRK-0001", "DM-0001"]


def test_batch_dictionary_encodes_devices_and_fields():
    import json

    doc = json.loads(_batch().encode())
    assert doc["devices"] == [
        ["LC-0001", "lighting_cabinet"],
        ["DM-0001", "dust_monitor"],
        ["TRK-0001", "vehicle"],
    ]
    assert doc["d"] == [0, 0, 1, 2, 1]
    assert doc["fields"] == ["circuit1_current", "circuit1_on", "pm10", "speed"]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"v": 9}', "unsupported wire version 9"),
        (b'{"v": 1, "agent": "a"}', "missing or bad member"),
        (
            b'{"v":1,"agent":"a","seq":1,"devices":[],"fields":[],"d":[0],"f":[],"t":[],"x":[]}',
            "column lengths differ",
        ),
        (
            b'{"v":1,"agent":"a","seq":1,"devices":[["D","k"]],"fields":["f"],"d":[1],"f":[0],"t":[1],"x":[1]}',
            "outside 0..0",
        ),
        (
            b'{"v":1,"agent":"a","seq":1,"devices":[["D","k"]],"fields":["f"],"d":[-1],"f":[0],"t":[1],"x":[1]}',
            "index -1",
        ),
        (
            b'{"v":1,"agent":"a","seq":1,"devices":[["D","k"]],"fields":["f"],"d":[0],"f":[0],"t":[1],"x":["hot"]}',
            "bad column content",
        ),
    ],
)
def test_bad_batches_are_rejected_with_a_reason(payload: bytes, reason: str):
    with pytest.raises(BatchError, match=reason):
        TelemetryBatch.decode(payload)


def test_command_and_ack_round_trip_and_expiry():
    cmd = Command(
        device_id="LC-0001",
        action=CommandAction.SWITCH_CIRCUIT,
        params={"circuit": 2, "on": True},
        issued_by="engineer",
        role="lighting_engineer",
        reason="维修",
        ttl_s=5,
    )
    assert Command.decode(cmd.encode()) == cmd
    assert not cmd.expired(cmd.issued_ns + 4_000_000_000)
    assert cmd.expired(cmd.issued_ns + 6_000_000_000)
    ack = CommandAck(
        command_id=cmd.command_id,
        device_id="LC-0001",
        state=CommandState.CONFIRMED,
        readback={"circuit2_on": 1.0},
    )
    assert CommandAck.decode(ack.encode()).readback == {"circuit2_on": 1.0}
    with pytest.raises(ValueError):
        Command.decode(b'{"device_id": "x", "action": "explode"}')


def test_alarm_round_trip():
    a = AlarmEvent(
        alarm_id="a1",
        rule_id="r",
        domain="dust",
        device_id="DM-0001",
        subject="DM-0001",
        field="pm10",
        severity=Severity.MAJOR,
        raised_ns=1,
        case_no="CD-1",
    )
    assert AlarmEvent.decode(a.encode()) == a


def test_topics_and_partitions():
    assert topics.telemetry(3, "agent-1") == "rg/v1/tele/3/agent-1"
    assert topics.telemetry_filter() == "rg/v1/tele/+/+"
    assert topics.telemetry_filter(2) == "rg/v1/tele/2/+"
    assert topics.command("agent-1") == "rg/v1/cmd/agent-1"
    parts = [topics.partition_of(f"DM-{i:04d}", 4) for i in range(400)]
    assert set(parts) == {0, 1, 2, 3}
    assert min(parts.count(p) for p in range(4)) > 60  # spread, not lumped
    assert topics.partition_of("DM-0001", 4) == topics.partition_of("DM-0001", 4)
    assert topics.partition_of("anything", 1) == 0
