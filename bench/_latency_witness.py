"""The latency benchmark's witness at the devices: when a simulated device itself first showed
an injected fault, read straight from its OPC-UA or Modbus server.

The simulator records a fault in its ground truth when it injects it, but a device only
serves the new value once the simulator has stepped it; latency counts from the device.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from contracts.config import DeviceConfig

__all__ = ["Witness"]

_EVERY_S = 0.02  # read period while a device is watched
_GIVE_UP_S = 5.0


class Witness:
    """Tails the ground-truth file and, per injection, reads the device until it shows it."""

    def __init__(
        self,
        gt: Path,
        devices: dict[str, dict[str, Any]],
        hits: dict[str, tuple[str, Callable[[float], bool]]],
    ) -> None:
        """``devices``: id -> device config dict; ``hits``: fault kind -> (field, predicate)."""
        self.gt = gt
        self.devices = devices
        self.hits = hits
        self.shown: dict[tuple[str, int], float] = {}  # (device, injection ts_ns) -> when
        self.errors = 0  # reads that failed (the injection then has no device time)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._main, name="latency-witness", daemon=True)

    def start(self) -> Witness:
        """Start tailing in a thread of its own."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop and join."""
        self._stop.set()
        self._thread.join(30)

    def _main(self) -> None:
        # asyncua warns about every session's timeout it negotiates: not the bench's news.
        logging.getLogger("asyncua").setLevel(logging.ERROR)
        asyncio.run(self._tail())

    async def _tail(self) -> None:
        seen = 0
        tasks: list[asyncio.Task] = []
        while not self._stop.is_set():
            lines = self.gt.read_text(encoding="utf-8").splitlines() if self.gt.exists() else []
            for line in lines[seen:]:
                f = json.loads(line)
                if f["kind"] in self.hits and f["device"] in self.devices:
                    tasks.append(asyncio.create_task(self._watch(f)))
            seen = len(lines)
            await asyncio.sleep(_EVERY_S)
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _watch(self, fault: dict[str, Any]) -> None:
        from drivers import create_driver

        dev_id, since_ns = fault["device"], int(fault["ts_ns"])
        fld, hit = self.hits[fault["kind"]]
        doc = dict(self.devices[dev_id])
        doc["address"] = {**(doc.get("address") or {}), "mode": "poll"}  # plain reads for OPC-UA
        driver = create_driver(DeviceConfig.model_validate(doc))
        # The change happened after the last read that still showed the old value began (or
        # after the injection when the first read shows it): an estimate never later than
        # the change, so the latency is never understated.
        before = since_ns / 1e9
        try:
            await driver.connect()
            deadline = time.time() + _GIVE_UP_S
            while time.time() < deadline and not self._stop.is_set():
                t = time.time()
                rows = await driver.read()
                value = next((r.value for r in rows if r.field == fld), None)
                if value is not None and hit(value):
                    self.shown[(dev_id, since_ns)] = before
                    return
                before = t
                await asyncio.sleep(_EVERY_S)
        except Exception:  # noqa: BLE001 - counted; the injection is then timed from the truth
            self.errors += 1
        finally:
            try:
                await driver.close()
            except Exception:  # noqa: BLE001 - closing a failed driver
                pass
