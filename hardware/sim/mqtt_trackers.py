"""MQTT JSON GPS trackers: each truck publishes one fix per interval on trackers/<id>/gps.

All simulated trackers share one paho connection (a tracker gateway), which keeps a
district or city of trucks cheap; every message still carries its own device id and
fix time, exactly as the mqtt_json_tracker profile describes. Trackers are not in step:
each has its own phase (and, given a range, its own interval, e.g. 10–30 s), on the
simulated clock; fix times are the clock's stamps. Publishes are QoS 1 through a bounded
queue: what does not fit, or finds the broker unreachable, is dropped and counted.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
import random
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from contracts.config import BrokerConfig
from contracts.mqtt import make_client
from hardware.profiles import load_profile
from hardware.sim.clock import SimClock
from hardware.sim.trucks import TruckModel

__all__ = ["TrackerPublisher", "tracker_topic", "encode_fix"]

log = logging.getLogger(__name__)


def tracker_topic(device_id: str) -> str:
    """Topic a tracker publishes its fixes on."""
    return f"trackers/{device_id}/gps"


def encode_fix(
    device_id: str, state: dict[str, Any], ts_ms: int, profile_name: str = "mqtt_json_tracker"
) -> bytes:
    """The JSON payload for one fix, member names taken from the profile."""
    prof = load_profile(profile_name)
    doc: dict[str, Any] = {
        prof.id_member or "devId": device_id,
        prof.time.get("member", "ts"): ts_ms,
    }
    for p in prof.points:
        if p.member is None:
            continue
        v = state[p.key]
        if p.type == "bool":
            doc[p.member] = int(bool(v))
        elif p.key in ("lat", "lon"):
            doc[p.member] = round(float(v), 6)
        else:
            doc[p.member] = round(float(v), 1)
    return json.dumps(doc, separators=(",", ":")).encode()


class TrackerPublisher:
    """Steps truck models and publishes each one's fix at QoS 1 on its own schedule."""

    def __init__(
        self,
        trucks: list[TruckModel],
        broker: BrokerConfig,
        interval_s: float | tuple[float, float],
        is_offline: Callable[[str], bool],
        clock: SimClock | None = None,
        max_queued: int = 50_000,
    ):
        self.trucks = trucks
        self.broker = broker
        self.clock = clock if clock is not None else SimClock()
        lo, hi = interval_s if isinstance(interval_s, tuple) else (interval_s, interval_s)
        if not 0 < lo <= hi:
            raise ValueError(f"tracker interval must be > 0 (lo <= hi), got {interval_s!r}")
        rngs = [random.Random(f"tracker/{t.veh.id}") for t in trucks]
        #: device id -> its report interval, simulated seconds
        self.intervals = {t.veh.id: r.uniform(lo, hi) for t, r in zip(trucks, rngs, strict=True)}
        self._phase = [r.random() for r in rngs]
        self.interval_s = (lo + hi) / 2
        self.is_offline = is_offline
        self.max_queued = max_queued
        self.published = 0  # handed to paho
        self.acked = 0  # PUBACK received
        self.failed = 0  # refused by paho (queue full): dropped
        self.dropped = 0  # fixes not sent while the broker was unreachable
        self.late_s = 0.0  # worst lag of a fix behind its schedule, simulated seconds
        self.client: mqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self) -> None:
        """Connect to the broker (in paho's network thread) and start publishing."""
        loop = asyncio.get_running_loop()
        client = make_client(self.broker, "rongguan-sim-trackers")
        client.max_queued_messages_set(self.max_queued)

        def on_connect(
            c: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None
        ) -> None:
            if not rc.is_failure:
                loop.call_soon_threadsafe(self._connected.set)
            else:
                log.warning("tracker gateway: broker refused connection: %s", rc)

        def on_disconnect(
            c: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any = None
        ) -> None:
            loop.call_soon_threadsafe(self._connected.clear)

        def on_publish(c: mqtt.Client, userdata: Any, mid: int, rc: Any, props: Any) -> None:
            self.acked += 1  # only paho's network thread writes it

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        client.on_publish = on_publish
        client.connect_async(self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s)
        client.loop_start()  # paho reconnects by itself when the broker comes back
        self.client = client
        self._task = asyncio.create_task(self._run(), name="sim-trackers")

    async def wait_connected(self, timeout_s: float = 10.0) -> bool:
        """Wait for the broker connection; False on timeout."""
        try:
            await asyncio.wait_for(self._connected.wait(), timeout_s)
            return True
        except TimeoutError:
            return False

    async def stop(self) -> None:
        """Stop publishing and disconnect."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self.client is not None:
            self.client.disconnect()
            await asyncio.to_thread(self.client.loop_stop)

    def publish(self, truck: TruckModel, now: float) -> None:
        """Step one truck to simulated time ``now`` and publish its fix if it is online."""
        truck.step(now)
        if self.is_offline(truck.veh.id) or self.client is None:
            return
        if not self._connected.is_set():
            # paho would queue without limit while disconnected; drop and count instead.
            self.dropped += 1
            return
        ts_ms = int(self.clock.stamp(now) * 1000)
        payload = encode_fix(truck.veh.id, truck.state(now), ts_ms, truck.veh.profile)
        info = self.client.publish(tracker_topic(truck.veh.id), payload, qos=1)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            self.published += 1
        else:
            self.failed += 1

    def publish_all(self, now: float) -> None:
        """Step every truck to simulated time ``now`` and publish the fixes of those online."""
        for truck in self.trucks:
            self.publish(truck, now)

    async def _run(self) -> None:
        await self.wait_connected(timeout_s=30.0)
        clock = self.clock
        start = clock.now()
        due = [
            (start + phase * self.intervals[t.veh.id], i)
            for i, (t, phase) in enumerate(zip(self.trucks, self._phase, strict=True))
        ]
        heapq.heapify(due)
        while due:
            now = clock.now()
            while due and due[0][0] <= now:
                at, i = heapq.heappop(due)
                truck = self.trucks[i]
                self.late_s = max(self.late_s, now - at)
                self.publish(truck, now)
                nxt = at + self.intervals[truck.veh.id]
                if nxt <= now:  # a whole interval behind: skip ahead rather than burst
                    nxt = now + self.intervals[truck.veh.id]
                heapq.heappush(due, (nxt, i))
            # Wake for the next fix, but not more than ~50 times a second.
            wake = max(clock.wall_of(due[0][0]), clock.wall() + 0.02)
            await asyncio.sleep(wake - clock.wall())
