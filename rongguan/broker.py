"""The demo's MQTT broker: Mosquitto when the OS has it, otherwise an embedded amqtt."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
from pathlib import Path

__all__ = ["mosquitto_path", "start_broker_process", "serve_embedded"]


def mosquitto_path() -> str | None:
    """Where Mosquitto is installed, if it is."""
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if Path(p).exists()), None
    )


def start_broker_process(
    port: int, workdir: Path, log, which: str = "auto"
) -> tuple[subprocess.Popen, str]:
    """Start a broker on loopback ``port``; returns the process and which broker it is.

    ``which``: "mosquitto", "embedded", or "auto" (Mosquitto when installed).
    """
    binary = mosquitto_path() if which != "embedded" else None
    if which == "mosquitto" and binary is None:
        raise RuntimeError(
            "Mosquitto is not installed (apt-get install mosquitto), use --broker embedded"
        )
    if binary:
        conf = workdir / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 100000\n"
        )
        return subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=log), "mosquitto"
    cmd = [sys.executable, "-m", "rongguan.cli", "broker", "--port", str(port)]
    return subprocess.Popen(cmd, stdout=log, stderr=log), "embedded amqtt"


async def serve_embedded(port: int, stop: asyncio.Event) -> None:
    """Serve MQTT 3.1.1 on loopback with amqtt until ``stop`` is set."""
    from amqtt.broker import Broker

    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }
    broker = Broker(config)
    await broker.start()
    try:
        await stop.wait()
    finally:
        await broker.shutdown()
