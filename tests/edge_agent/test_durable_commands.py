"""Commands: idempotent across restarts, TTL checked again before the device, audit on disk.

The executor is driven with a stand-in supervisor (the logic under test is the
executor's); the restart test at the end runs two real agents one after the other on
the same buffer file against the simulated city and a real Mosquitto.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from contracts.commands import Command, CommandAck, CommandAction, CommandState
from contracts.config import DeviceConfig
from edge_agent.buffer import DiskBuffer
from edge_agent.command_log import CommandLog
from edge_agent.commands import CommandExecutor

S = CommandState


class FakeSupervisor:
    """Executes switch commands; ``gate`` (when set) holds each one until released."""

    def __init__(self) -> None:
        self.device = DeviceConfig(
            id="LC-T1",
            kind="lighting_cabinet",
            protocol="modbus",
            profile="modbus_lighting_controller",
            endpoint="modbus://127.0.0.1:1",
        )
        self.executed: list[dict[str, Any]] = []
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()

    async def execute(self, action: CommandAction, params: dict[str, Any]) -> dict[str, float]:
        self.executed.append(params)
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        return {f"circuit{params['circuit']}_on": 1.0 if params["on"] else 0.0}


class Harness:
    """An executor on a buffer file, as an agent builds it (the log on the buffer's thread);
    ``restart()`` builds a new one."""

    def __init__(self, path: Path):
        self.path = path
        self.sup = FakeSupervisor()
        self.acks: list[CommandAck] = []
        self._changed = asyncio.Event()
        self.restart()

    def restart(self) -> None:
        self.buffer = DiskBuffer(self.path, 100)
        self.log = CommandLog(self.buffer.db, "agent-c", io=self.buffer.io)
        self.ex = CommandExecutor(
            "agent-c", {"LC-T1": self.sup}, self._ack, lambda rows: None, self.log
        )  # type: ignore[dict-item]
        self.ex.recover()

    def _ack(self, ack: CommandAck) -> None:
        self.acks.append(ack)
        self._changed.set()

    def states(self, cid: str) -> list[CommandState]:
        return [a.state for a in self.acks if a.command_id == cid]

    async def until_states(self, cid: str, want: list[CommandState]) -> None:
        """Wait (on the acks, not the clock) until ``cid`` has had the acks ``want``."""
        while self.states(cid) != want:
            assert len(self.states(cid)) < len(want), self.states(cid)
            self._changed.clear()
            await asyncio.wait_for(self._changed.wait(), 30)

    async def settle(self) -> None:
        await self.ex.wait_idle(10)
        await self.buffer.call(lambda: None)  # the log's writes queued before are done


def _cmd(**kw: Any) -> Command:
    base = {"device_id": "LC-T1", "action": CommandAction.SWITCH_CIRCUIT,
            "params": {"circuit": 1, "on": True}, "issued_by": "eng-7", "role": "lighting_engineer",
            "reason": "night test"}  # fmt: skip
    return Command(**{**base, **kw})


def test_redelivery_after_restart_gets_the_recorded_state_and_no_second_execution(tmp_path):
    async def main() -> None:
        h = Harness(tmp_path / "buf.db")
        cmd = _cmd()
        h.ex.on_message(cmd.encode())
        await h.settle()
        assert h.states(cmd.command_id) == [S.RECEIVED, S.SENT, S.ACKNOWLEDGED, S.CONFIRMED]
        h.buffer.close()
        h.restart()  # a new process: nothing in memory
        h.acks.clear()
        h.ex.on_message(cmd.encode())
        await h.settle()
        assert h.states(cmd.command_id) == [S.CONFIRMED]  # the recorded state, once
        assert len(h.sup.executed) == 1 and h.ex.counters["duplicates"] == 1
        trail = h.log.trail(cmd.command_id)
        assert [t["state"] for t in trail] == [
            "received", "sent", "acknowledged", "confirmed", "duplicate"]  # fmt: skip
        assert {(t["issued_by"], t["role"], t["reason"], t["action"]) for t in trail} == {
            ("eng-7", "lighting_engineer", "night test", "switch_circuit")
        }
        assert trail[0]["params"] == '{"circuit": 1, "on": true}' and trail[0]["agent"] == "agent-c"
        assert all(t["ts_ns"] > 0 for t in trail)

    asyncio.run(main())


def test_ttl_is_checked_again_right_before_the_device(tmp_path, monkeypatch):
    # The clock is the test's: a command expires when the test says so, not after a margin.
    expired: set[str] = set()
    monkeypatch.setattr(Command, "expired", lambda self, now_ns=None: self.command_id in expired)

    async def main() -> None:
        h = Harness(tmp_path / "buf.db")
        h.sup.gate = asyncio.Event()
        first = _cmd()
        h.ex.on_message(first.encode())
        await h.sup.started.wait()  # the device is busy with the first command
        late = _cmd(params={"circuit": 2, "on": True}, ttl_s=1.0)
        h.ex.on_message(late.encode())
        await h.until_states(late.command_id, [S.RECEIVED])  # valid on arrival
        expired.add(late.command_id)  # ... and it expires while it waits its turn
        h.sup.gate.set()
        await h.settle()
        assert h.states(first.command_id)[-1] == S.CONFIRMED
        assert h.states(late.command_id) == [S.RECEIVED, S.EXPIRED]
        assert h.sup.executed == [{"circuit": 1, "on": True}]  # the late one never reached it
        assert [t["state"] for t in h.log.trail(late.command_id)] == ["received", "expired"]

    asyncio.run(main())


def test_a_quick_repeat_is_a_duplicate_while_the_first_is_still_being_taken(tmp_path):
    async def main() -> None:
        h = Harness(tmp_path / "buf.db")
        cmd = _cmd()
        h.ex.on_message(cmd.encode())
        h.ex.on_message(cmd.encode())  # before the first one's log lookup has come back
        await h.settle()
        assert len(h.sup.executed) == 1 and h.ex.counters["duplicates"] == 1

    asyncio.run(main())


def test_a_command_cut_short_by_a_kill_is_closed_as_failed_not_retried(tmp_path):
    async def main() -> None:
        h = Harness(tmp_path / "buf.db")
        h.sup.gate = asyncio.Event()  # never released: the "process" dies mid-command
        cmd = _cmd()
        h.ex.on_message(cmd.encode())
        await h.sup.started.wait()
        assert h.states(cmd.command_id) == [S.RECEIVED, S.SENT]
        for t in list(h.ex._tasks):
            t.cancel()
        h.buffer.close()
        h.acks.clear()
        h.restart()  # closes it at start
        await h.settle()
        assert h.states(cmd.command_id) == [S.FAILED]
        assert "restarted" in h.acks[0].detail and h.ex.counters["interrupted"] == 1
        h.ex.on_message(cmd.encode())  # redelivered: answered, not executed again
        await h.settle()
        assert h.states(cmd.command_id) == [S.FAILED, S.FAILED]
        assert len(h.sup.executed) == 1

    asyncio.run(main())


def test_rejections_and_garbage_are_audited_too(tmp_path):
    async def main() -> None:
        h = Harness(tmp_path / "buf.db")
        bad = _cmd(params={"circuit": 99, "on": True})
        h.ex.on_message(bad.encode())
        h.ex.on_message(b'{"command_id": "g1", "device_id": "LC-T1"}')
        await h.settle()
        assert [t["state"] for t in h.log.trail(bad.command_id)] == ["rejected"]
        assert h.log.trail(bad.command_id)[0]["issued_by"] == "eng-7"
        assert [t["state"] for t in h.log.trail("g1")] == ["rejected"]

    asyncio.run(main())


def test_the_log_is_bounded_by_count_and_age_and_counts_what_it_forgets(tmp_path):
    db = sqlite3.connect(tmp_path / "log.db", isolation_level=None)
    log = CommandLog(db, "agent-c", max_ids=3, max_audit=4)
    for i in range(5):
        log.record(CommandAck(command_id=f"c{i}", device_id="LC-T1", state=S.CONFIRMED))
    log.prune()
    kept = [r[0] for r in db.execute("SELECT command_id FROM command_state ORDER BY command_id")]
    assert kept == ["c2", "c3", "c4"] and log.counters["ids_pruned"] == 2
    assert db.execute("SELECT COUNT(*) FROM command_audit").fetchone()[0] == 4
    assert log.counters["audit_pruned"] == 1
    old = CommandLog(db, "agent-c", max_age_s=0.0)  # everything is older than 0 s
    assert old.counters["ids_pruned"] == 3 and old.get("c4") is None


def test_a_failing_disk_is_counted_and_the_command_still_runs(tmp_path):
    async def main() -> None:
        h = Harness(tmp_path / "buf.db")
        h.buffer.db.execute("PRAGMA query_only=1")  # every write now fails
        cmd = _cmd()
        h.ex.on_message(cmd.encode())
        await h.settle()
        assert h.states(cmd.command_id)[-1] == S.CONFIRMED
        assert h.log.counters["log_errors"] >= 4
        h.ex.on_message(cmd.encode())  # still idempotent within the run (memory)
        await h.settle()
        assert len(h.sup.executed) == 1

    asyncio.run(main())


@pytest.mark.servers
def test_a_real_agent_restarted_on_its_file_does_not_execute_a_redelivery(mqtt_broker, tmp_path):
    from tests.edge_agent.test_agent import _run, until

    cmd: dict[str, Command] = {}

    async def first(agent, city, watcher, devices):
        dev = next(d for d in devices if d["kind"] == "lighting_cabinet")
        cmd["c"] = _cmd(device_id=dev["id"], params={"circuit": 1, "on": True})
        watcher.send(cmd["c"])
        await until(lambda: S.CONFIRMED in watcher.states(cmd["c"].command_id), 20, "confirmed")

    async def second(agent, city, watcher, devices):
        watcher.send(cmd["c"])  # sent again after the restart (a retry, a redelivery)
        await until(lambda: watcher.states(cmd["c"].command_id), 20, "the answer")
        assert watcher.states(cmd["c"].command_id) == [S.CONFIRMED]
        m = agent.metrics()
        assert m["commands_duplicates"] == 1 and m["commands_sent"] == 0
        log = agent._commands.log
        trail = await agent._outbox.buffer.call(log.trail, cmd["c"].command_id)
        assert [t["state"] for t in trail][-1] == "duplicate" and len(trail) == 5

    _run(mqtt_broker, tmp_path, first)
    _run(mqtt_broker, tmp_path, second)
