"""One way to make a paho-mqtt client from the broker config, for every service."""

from __future__ import annotations

import uuid

import paho.mqtt.client as mqtt

from contracts.config import BrokerConfig

__all__ = ["make_client"]


def make_client(
    broker: BrokerConfig,
    client_id: str,
    *,
    will: tuple[str, bytes] | None = None,
    clean_start: bool = True,
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
    )
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    # paho's packet ids are 16 bits: never let more than this many QoS>0 messages be in flight.
    client.max_inflight_messages_set(broker.max_inflight)
    client.max_queued_messages_set(0)
    if will is not None:
        client.will_set(will[0], will[1], qos=1, retain=True)
    client.reconnect_delay_set(min_delay=1, max_delay=15)
    return client
