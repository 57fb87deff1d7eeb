"""The shared MQTT client says clearly when the broker cannot be reached, and keeps trying."""

from __future__ import annotations

import logging
import time

import pytest

from bench.servers import free_port
from contracts.config import BrokerConfig
from contracts.mqtt import make_client


def test_unreachable_broker_is_logged_with_its_url(caplog: pytest.LogCaptureFixture):
    port = free_port()  # nothing listens here
    broker = BrokerConfig(url=f"mqtt://127.0.0.1:{port}")
    client = make_client(broker, "probe")
    caplog.set_level(logging.WARNING, logger="rongguan.mqtt")
    client.connect_async(broker.host, broker.port)
    client.loop_start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not caplog.records:
            time.sleep(0.05)
    finally:
        client.loop_stop()
    assert caplog.records, "no warning about the unreachable broker"
    msg = caplog.records[0].getMessage()
    assert f"cannot connect to the MQTT broker mqtt://127.0.0.1:{port}" in msg
    assert msg.startswith("probe: ")
