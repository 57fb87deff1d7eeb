"""The platform side of the simulator benchmark: a broker, TCP sinks and a subscriber.

The sinks parse only enough to answer as a platform would (HJ 212 CN 9014 replies,
JT/T 808 0x8100 registration and 0x8001 general replies) and count what arrives by
command; the subscriber counts tracker fixes delivered by a real Mosquitto.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from contracts.config import BrokerConfig
from contracts.mqtt import make_client
from hardware.sim.hj212_device import hj212_crc

__all__ = ["Sinks", "Subscriber", "start_mosquitto"]


def start_mosquitto(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A Mosquitto from the OS packages on a free loopback port: (process, mqtt:// url)."""
    exe = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")
    if exe is None:
        raise RuntimeError("mosquitto not found (apt install mosquitto)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 100000\nlog_dest none\n"
    )
    proc = subprocess.Popen([exe, "-c", str(conf)])
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return proc, f"mqtt://127.0.0.1:{port}"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"mosquitto did not listen on {port}") from None
            time.sleep(0.05)


class Sinks:
    """HJ 212 and JT/T 808 listeners on free loopback ports, counting frames."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.ports: dict[str, int] = {}
        self._last_qn: dict[bytes, bytes] = {}
        self._writers: set[asyncio.StreamWriter] = set()
        self._servers: list[asyncio.Server] = []

    @classmethod
    async def start(cls) -> Sinks:
        """Listen for both protocols."""
        self = cls()
        for proto in ("hj212", "jt808"):
            srv = await asyncio.start_server(self._handle, "127.0.0.1", 0, backlog=4096)
            self._servers.append(srv)
            self.ports[proto] = srv.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        """Close the listeners and every connection; the handlers end on their own."""
        for srv in self._servers:
            srv.close()
        for w in list(self._writers):
            w.close()
        while self._writers:
            await asyncio.sleep(0.01)

    def _count(self, key: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = b""
        self._writers.add(writer)
        try:
            while chunk := await reader.read(65536):
                buf += chunk
                buf = (
                    self._hj212(buf, writer) if buf.startswith(b"##") else self._jt808(buf, writer)
                )
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    def _hj212(self, buf: bytes, writer: asyncio.StreamWriter) -> bytes:
        *lines, rest = buf.split(b"\r\n")
        for line in lines:
            qn = line.split(b"QN=", 1)[1][:17]
            mn = line.split(b"MN=", 1)[1][:24]
            if self._last_qn.get(mn) == qn:  # a retransmission: the reply was late
                self._count("hj212_repeated")
            else:
                self._last_qn[mn] = qn
                self._count("hj212_" + line.split(b"CN=", 1)[1][:4].decode())
            seg = b"QN=%s;ST=91;CN=9014;PW=123456;MN=%s;Flag=4;CP=&&&&" % (qn, mn)
            writer.write(b"##%04d%s%04X\r\n" % (len(seg), seg, hj212_crc(seg)))
        return rest

    def _jt808(self, buf: bytes, writer: asyncio.StreamWriter) -> bytes:
        *frames, rest = buf.split(b"\x7e")
        for f in filter(None, frames):
            raw = f.replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")
            msg_id, props = struct.unpack(">HH", raw[:4])
            self._count(f"jt808_{msg_id:04x}")
            v19 = bool(props & 0x4000)
            head = raw[4:15] if v19 else raw[4:10]
            serial = raw[15:17] if v19 else raw[10:12]
            body = serial + b"\x00OK" if msg_id == 0x0100 else serial + raw[:2] + b"\x00"
            out_id = 0x8100 if msg_id == 0x0100 else 0x8001
            pkt = struct.pack(">HH", out_id, len(body) | (0x4000 if v19 else 0)) + head
            pkt += b"\x00\x00" + body
            x = 0
            for byte in pkt:
                x ^= byte
            pkt += bytes([x])
            writer.write(
                b"\x7e" + pkt.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02") + b"\x7e"
            )
        return rest


class Subscriber:
    """Counts messages on ``trackers/+/gps`` (QoS 1) in paho's network thread."""

    def __init__(self, url: str):
        self.received = 0
        self._subscribed = threading.Event()
        client = make_client(BrokerConfig(url=url), "rongguan-bench-sub")

        def on_connect(c: Any, userdata: Any, flags: Any, rc: Any, props: Any = None) -> None:
            c.subscribe("trackers/+/gps", qos=1)

        def on_subscribe(c: Any, userdata: Any, mid: Any, rcs: Any, props: Any = None) -> None:
            self._subscribed.set()

        def on_message(c: Any, userdata: Any, msg: Any) -> None:
            self.received += 1  # only paho's thread writes it

        client.on_connect, client.on_subscribe, client.on_message = (
            on_connect,
            on_subscribe,
            on_message,
        )
        broker = BrokerConfig(url=url)
        client.connect(broker.host, broker.port)
        client.loop_start()
        self.client = client
        if not self._subscribed.wait(30):
            raise TimeoutError("benchmark subscriber: no SUBACK in 30 s")

    def stop(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()
