"""Command executor: validate, execute through the device's supervisor, read back, ack.

Each command gets its acks on ``cmd-ack/<agent>``::

    RECEIVED → SENT → ACKNOWLEDGED (device accepted) → CONFIRMED (read-back matches)
                                                     ↘ FAILED
    REJECTED (not ours, unsupported, bad params) and EXPIRED (older than its TTL) end it early.

Commands are idempotent by id, across restarts too: a repeat gets the latest ack again
(from memory, or from the persistent :class:`~edge_agent.command_log.CommandLog`) and is
not executed twice. The TTL is checked on arrival and again right before the command is
handed to the device. Every step is written to the command log's audit table and logged
on the ``rongguan.audit`` logger. A command a previous run left unfinished (killed while
it ran) is closed as FAILED at start, never retried: whether the device acted is unknown.

Each ack is published once its row is committed in the command log (on the buffer's own
thread, off the event loop); a command is handed to the device only once its SENT state
is on disk. Arrivals are taken one at a time, so a quick repeat is seen as a duplicate.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from contracts import clock  # read-back rows are data: the deployment's clock
from contracts.commands import Command, CommandAck, CommandState
from contracts.telemetry import TelemetryRow
from drivers import DriverError, WriteRejected
from drivers.registry import check_command
from edge_agent.command_log import CommandLog
from edge_agent.supervisor import DeviceSupervisor

__all__ = ["CommandExecutor", "RECENT_IDS"]

audit = logging.getLogger("rongguan.audit")
log = logging.getLogger(__name__)

RECENT_IDS = 1024  # command ids remembered for idempotency


class CommandExecutor:
    """Carries out commands for the devices one agent owns."""

    def __init__(
        self,
        agent_id: str,
        supervisors: dict[str, DeviceSupervisor],
        publish_ack: Callable[[CommandAck], None],
        on_readback: Callable[[list[TelemetryRow]], None],
        command_log: CommandLog | None = None,
    ):
        self.agent_id = agent_id
        self.supervisors = supervisors
        self._publish_ack = publish_ack
        self._on_readback = on_readback
        self.log = command_log
        self._recent: OrderedDict[str, CommandAck] = OrderedDict()
        self._tasks: set[asyncio.Task[None]] = set()
        self._intake = asyncio.Lock()  # dedupe and accept one arrival at a time
        # One command at a time per device, queued here so the TTL is checked after the wait.
        self._device_locks: dict[str, asyncio.Lock] = {}
        self.counters = {state.value: 0 for state in CommandState}
        self.counters.update({"bad_payloads": 0, "duplicates": 0, "interrupted": 0})

    def recover(self) -> None:
        """Close the commands a previous run left unfinished as FAILED (acked and audited)."""
        if self.log is None:
            return
        for ack in self.log.unfinished():
            self.counters["interrupted"] += 1
            self._ack(
                ack.command_id,
                ack.device_id,
                CommandState.FAILED,
                f"agent restarted while the command was {ack.state.value}; outcome unknown, "
                "not retried",
            )

    def _ack(
        self,
        cmd_id: str,
        device_id: str,
        state: CommandState,
        detail: str = "",
        readback: dict[str, Any] | None = None,
        cmd: Command | None = None,
    ) -> asyncio.Future[Any]:
        """Record the ack, then publish it; the future is done once it is published."""
        ack = CommandAck(
            command_id=cmd_id,
            device_id=device_id,
            state=state,
            detail=detail,
            readback=readback or {},
        )
        self._recent[cmd_id] = ack
        self._recent.move_to_end(cmd_id)
        while len(self._recent) > RECENT_IDS:
            self._recent.popitem(last=False)
        self.counters[state.value] += 1
        who = (
            f" by={cmd.issued_by} role={cmd.role} reason={cmd.reason!r} action={cmd.action} params={json.dumps(cmd.params)}"
            if cmd
            else ""
        )
        audit.info(
            "command=%s agent=%s device=%s state=%s detail=%r%s",
            cmd_id,
            self.agent_id,
            device_id,
            state.value,
            detail,
            who,
        )
        if self.log is None:
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            self._publish_ack(ack)
            return done
        recorded = self.log.later(self.log.record, ack, cmd)
        if recorded.done():  # no thread of its own: recorded already
            self._publish_ack(ack)
        else:  # callbacks run in registration order: published before an awaiter resumes
            recorded.add_done_callback(lambda _f: self._publish_ack(ack))
        return recorded

    def on_message(self, payload: bytes) -> None:
        """Entry point from MQTT: decode, then dedupe, validate and execute in a task."""
        try:
            cmd = Command.decode(payload)
        except (ValidationError, ValueError, TypeError) as exc:
            self.counters["bad_payloads"] += 1
            self._reject_garbage(payload, exc)
            return
        task = asyncio.get_running_loop().create_task(self._handle(cmd))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, cmd: Command) -> None:
        async with self._intake:
            accepted = await self._accept(cmd)
        if accepted is not None:
            await self._execute(cmd, *accepted)

    async def _accept(self, cmd: Command) -> tuple[DeviceSupervisor, dict[str, float]] | None:
        """Dedupe and validate; the supervisor and expected read-back when it is to run."""
        seen = self._recent.get(cmd.command_id)
        if seen is None and self.log is not None:
            seen = await self.log.later(self.log.get, cmd.command_id)  # seen before a restart
        if seen is not None:
            self.counters["duplicates"] += 1
            audit.info(
                "command=%s duplicate (state %s), not executed again", cmd.command_id, seen.state
            )
            if self.log is not None:
                detail = f"redelivered; answered with its recorded state {seen.state.value}"
                await self.log.later(
                    self.log.audit, cmd.command_id, cmd.device_id, "duplicate", detail, cmd
                )
            self._publish_ack(seen)
            return None
        sup = self.supervisors.get(cmd.device_id)
        if sup is None:
            await self._ack(
                cmd.command_id,
                cmd.device_id,
                CommandState.REJECTED,
                f"device {cmd.device_id!r} is not owned by agent {self.agent_id}",
                cmd=cmd,
            )
            return None
        if cmd.expired():
            await self._ack(
                cmd.command_id,
                cmd.device_id,
                CommandState.EXPIRED,
                f"older than its ttl of {cmd.ttl_s} s",
                cmd=cmd,
            )
            return None
        try:
            expected = check_command(sup.device, cmd.action, cmd.params)
        except ValueError as exc:
            await self._ack(cmd.command_id, cmd.device_id, CommandState.REJECTED, str(exc), cmd=cmd)
            return None
        await self._ack(cmd.command_id, cmd.device_id, CommandState.RECEIVED, cmd=cmd)
        return sup, expected

    def _reject_garbage(self, payload: bytes, exc: Exception) -> None:
        """Ack REJECTED when the payload at least names a command id; log it either way."""
        try:
            doc = json.loads(payload)
            cmd_id, device_id = str(doc["command_id"]), str(doc.get("device_id", ""))
        except Exception:
            audit.warning(
                "agent=%s unreadable command payload (%d bytes): %s",
                self.agent_id,
                len(payload),
                str(exc).splitlines()[0],
            )
            return
        self._ack(
            cmd_id,
            device_id,
            CommandState.REJECTED,
            f"malformed command: {str(exc).splitlines()[0]}",
        )

    async def _execute(
        self, cmd: Command, sup: DeviceSupervisor, expected: dict[str, float]
    ) -> None:
        lock = self._device_locks.setdefault(cmd.device_id, asyncio.Lock())
        async with lock:
            await self._run(cmd, sup, expected)

    async def _run(self, cmd: Command, sup: DeviceSupervisor, expected: dict[str, float]) -> None:
        cid, dev = cmd.command_id, cmd.device_id
        if cmd.expired():  # it may have waited behind other commands for this device
            detail = f"older than its ttl of {cmd.ttl_s} s before it could be sent"
            await self._ack(cid, dev, CommandState.EXPIRED, detail, cmd=cmd)
            return
        await self._ack(
            cid, dev, CommandState.SENT, f"{cmd.action} {json.dumps(cmd.params)}", cmd=cmd
        )
        try:
            readback = await sup.execute(cmd.action, cmd.params)
        except WriteRejected as exc:
            await self._ack(cid, dev, CommandState.FAILED, f"device refused: {exc}", cmd=cmd)
            return
        except DriverError as exc:
            await self._ack(cid, dev, CommandState.FAILED, f"{type(exc).__name__}: {exc}", cmd=cmd)
            return
        except Exception as exc:  # never let a driver bug leave a command without an answer
            log.exception("command %s failed unexpectedly", cid)
            await self._ack(
                cid, dev, CommandState.FAILED, f"internal error: {type(exc).__name__}", cmd=cmd
            )
            return
        await self._ack(cid, dev, CommandState.ACKNOWLEDGED, "device accepted the command", cmd=cmd)
        mismatch = {k: (v, readback.get(k)) for k, v in expected.items() if readback.get(k) != v}
        if mismatch:
            detail = "; ".join(
                f"{k} read back {got!r}, expected {want!r}" for k, (want, got) in mismatch.items()
            )
            await self._ack(cid, dev, CommandState.FAILED, detail, readback=readback, cmd=cmd)
            return
        await self._ack(
            cid, dev, CommandState.CONFIRMED, "read back matches", readback=readback, cmd=cmd
        )
        now = clock.now_ns()
        self._on_readback(
            [TelemetryRow(dev, sup.device.kind, now, k, float(v)) for k, v in readback.items()]
        )

    async def wait_idle(self, timeout_s: float) -> None:
        """Let commands in progress finish (used on stop)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)
