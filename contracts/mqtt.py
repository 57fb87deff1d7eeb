"""One way to make a paho-mqtt client from the broker config, for every service."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt

from contracts.config import BrokerConfig

__all__ = ["make_client"]

log = logging.getLogger("rongguan.mqtt")
_FAIL_LOG_EVERY_S = 30.0


def make_client(
    broker: BrokerConfig,
    client_id: str,
    *,
    will: tuple[str, bytes] | None = None,
    clean_start: bool = True,
    manual_ack: bool = False,
) -> mqtt.Client:
    """A MQTT 3.1.1 client (not yet connected) with auth, a bounded in-flight window and
    an optional retained last will ``(topic, payload)``.

    The client id gets a short random suffix unless it is meant to resume a session.
    """
    cid = client_id if not clean_start else f"{client_id}-{uuid.uuid4().hex[:6]}"
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=cid,
        protocol=mqtt.MQTTv311,
        clean_session=clean_start,
        manual_ack=manual_ack,  # the caller PUBACKs received QoS 1 messages itself (client.ack)
    )
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    # paho's packet ids are 16 bits: never let more than this many QoS>0 messages be in flight.
    client.max_inflight_messages_set(broker.max_inflight)
    client.max_queued_messages_set(0)
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    client.reconnect_delay_set(min_delay=1, max_delay=15)
    client.on_connect_fail = _connect_fail_logger(broker.url, client_id)
    return client


def _connect_fail_logger(url: str, client_id: str) -> Any:
    """An on_connect_fail callback: say the broker is unreachable, then at most every 30 s."""
    state = {"last": 0.0, "count": 0}

    def on_connect_fail(client: mqtt.Client, userdata: Any) -> None:
        state["count"] += 1
        now = time.monotonic()
        if now - state["last"] >= _FAIL_LOG_EVERY_S:
            state["last"] = now
            log.warning(
                "%s: cannot connect to the MQTT broker %s (%d attempt(s)); retrying",
                client_id,
                url,
                state["count"],
            )

    return on_connect_fail
