"""The embedded broker used when Mosquitto is not installed: real MQTT, clean stop."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading

from bench.servers import free_port, wait_port
from contracts.config import BrokerConfig
from contracts.mqtt import make_client


def test_embedded_broker_relays_qos1_and_stops_on_sigterm():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rongguan.cli", "broker", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_port(port, proc=proc)
        got: list[bytes] = []
        done = threading.Event()
        subscribed = threading.Event()

        def on_message(client, userdata, msg):
            got.append(msg.payload)
            if len(got) == 50:
                done.set()

        client = make_client(BrokerConfig(url=f"mqtt://127.0.0.1:{port}"), "test")
        client.on_message = on_message
        client.on_subscribe = lambda *a: subscribed.set()
        client.connect("127.0.0.1", port)
        client.loop_start()
        client.subscribe("rg/test/#", qos=1)
        assert subscribed.wait(10)
        for i in range(50):
            client.publish("rg/test/x", str(i).encode(), qos=1)
        assert done.wait(20), f"only {len(got)} of 50 messages arrived"
        assert got == [str(i).encode() for i in range(50)]
        client.loop_stop()
        client.disconnect()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
