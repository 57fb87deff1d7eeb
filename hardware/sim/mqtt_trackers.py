"""MQTT JSON GPS trackers: each truck publishes one fix per interval on trackers/<id>/gps.

All simulated trackers share one paho connection (a tracker gateway), which keeps a
district or city of trucks cheap; every message still carries its own device id and
fix time, exactly as the mqtt_json_tracker profile describes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt

from contracts.config import BrokerConfig
from contracts.mqtt import make_client
from hardware.profiles import load_profile
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
    """Steps truck models and publishes their fixes at QoS 1 every ``interval_s``."""

    def __init__(
        self,
        trucks: list[TruckModel],
        broker: BrokerConfig,
        interval_s: float,
        is_offline: Callable[[str], bool],
    ):
        self.trucks = trucks
        self.broker = broker
        self.interval_s = interval_s
        self.is_offline = is_offline
        self.published = 0
        self.failed = 0
        self.dropped = 0  # fixes not sent while the broker was unreachable
        self.client: mqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    async def start(self) -> None:
        """Connect to the broker (in paho's network thread) and start publishing."""
        loop = asyncio.get_running_loop()
        client = make_client(self.broker, "rongguan-sim-trackers")

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

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
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

    def publish_all(self, now: float) -> None:
        """Step every truck to ``now`` and publish the fixes of those online."""
        ts_ms = int(now * 1000)
        for truck in self.trucks:
            truck.step(now)
            if self.is_offline(truck.veh.id) or self.client is None:
                continue
            if not self._connected.is_set():
                # paho would queue without limit while disconnected; drop and count instead.
                self.dropped += 1
                continue
            payload = encode_fix(truck.veh.id, truck.state(now), ts_ms, truck.veh.profile)
            info = self.client.publish(tracker_topic(truck.veh.id), payload, qos=1)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                self.published += 1
            else:
                self.failed += 1

    async def _run(self) -> None:
        await self.wait_connected(timeout_s=30.0)
        next_at = time.monotonic()
        while True:
            self.publish_all(time.time())
            next_at += self.interval_s
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
