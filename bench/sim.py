"""Simulator capacity: pushing devices (HJ 212, JT/T 808) one process serves at nominal rates.

For each size, a child process runs that size's HJ 212 monitors and JT/T 808 terminals
(one TCP connection each, reporting every 20 s as in the field) against a sink listener in
this process that parses nothing and replies as a platform would. The child's CPU and
memory come from /proc (no psutil); the baseline is the same child with no devices, run
in the same bench, so the figures are the devices' own cost.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import struct
import time
from typing import Any

from hardware.sim.hj212_device import hj212_crc

__all__ = ["run"]

_INTERVAL_S = 20.0
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _child(size: str, hj: int, jt: int, seconds: float, q: Any) -> None:
    from hardware.inventory import build_inventory
    from hardware.sim.city import SimulatedCity

    async def main() -> dict[str, int]:
        inv = build_inventory(size)
        # Only the pushing devices: the Modbus/OPC-UA servers are benchmarked on their own.
        push = type(inv)(
            size,
            inv.seed,
            [],
            [d for d in inv.dust_monitors if d.mn] if hj else [],
            [v for v in inv.vehicles if v.phone] if jt else [],
        )
        city = SimulatedCity(
            push,
            agent_listeners={"hj212": ("127.0.0.1", hj), "jt808": ("127.0.0.1", jt)},
            push_interval_s=_INTERVAL_S,
        )
        await city.start()
        q.put(("started", _cpu_s(os.getpid())))
        await asyncio.sleep(seconds)
        counters = city.push.counters() if city.push else {}
        await city.stop()
        return counters

    q.put(("done", asyncio.run(main())))


async def _sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    # Replies just enough for the devices to proceed: HJ 212 9014 and JT/T 808 0x8100/0x8001.
    buf = b""
    while chunk := await reader.read(65536):
        buf += chunk
        if buf.startswith(b"##"):
            *lines, buf = buf.split(b"\r\n")
            for line in lines:
                qn = line.split(b"QN=", 1)[1][:17]
                mn = line.split(b"MN=", 1)[1][:24]
                seg = b"QN=%s;ST=91;CN=9014;PW=123456;MN=%s;Flag=4;CP=&&&&" % (qn, mn)
                writer.write(b"##%04d%s%04X\r\n" % (len(seg), seg, hj212_crc(seg)))
        else:
            *frames, buf = buf.split(b"\x7e")
            for f in filter(None, frames):
                raw = f.replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")
                msg_id, props = struct.unpack(">HH", raw[:4])
                v19 = bool(props & 0x4000)
                head = raw[4:15] if v19 else raw[4:10]
                serial = raw[15:17] if v19 else raw[10:12]
                body = serial + b"\x00OK" if msg_id == 0x0100 else serial + raw[:2] + b"\x00"
                out_id = 0x8100 if msg_id == 0x0100 else 0x8001
                hdr = struct.pack(">HH", out_id, len(body) | (0x4000 if v19 else 0)) + head
                pkt = hdr + b"\x00\x00" + body
                x = 0
                for b in pkt:
                    x ^= b
                pkt += bytes([x])
                writer.write(
                    b"\x7e"
                    + pkt.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")
                    + b"\x7e"
                )
        await writer.drain()


async def _measure(size: str, seconds: float, devices: bool) -> dict[str, Any]:
    servers = [await asyncio.start_server(_sink, "127.0.0.1", 0, backlog=4096) for _ in range(2)]
    hj, jt = (s.sockets[0].getsockname()[1] for s in servers)
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    proc = ctx.Process(
        target=_child, args=(size, hj if devices else 0, jt if devices else 0, seconds, q)
    )
    t0 = time.monotonic()
    proc.start()
    while q.empty():
        await asyncio.sleep(0.05)
    _, cpu0 = q.get()
    t_start = time.monotonic()
    rss = 0.0
    while q.empty():
        await asyncio.sleep(0.5)
        if time.monotonic() - t_start < seconds:
            rss = max(rss, _rss_mb(proc.pid))
            cpu1 = _cpu_s(proc.pid)
    elapsed = time.monotonic() - t_start
    _, counters = q.get()
    proc.join(10)
    for s in servers:
        s.close()
    return {
        "startup_s": round(t_start - t0, 2),
        "cpu_pct": round(100 * (cpu1 - cpu0) / elapsed, 2),
        "rss_mb": round(rss, 1),
        "counters": counters,
    }


def run(sizes: tuple[str, ...] = ("district", "city"), seconds: float = 20.0) -> dict:
    """Pushing devices served per size at nominal rates, with CPU and memory vs a no-device baseline."""
    from hardware.inventory import PUSH_SIZES

    async def main() -> dict:
        out: dict[str, Any] = {"interval_s": _INTERVAL_S, "seconds": seconds}
        out["baseline"] = await _measure("tiny", seconds, devices=False)
        for size in sizes:
            hj, jt = PUSH_SIZES[size]
            m = await _measure(size, seconds, devices=True)
            c = m["counters"]
            sent = c.get("hj212_frames", 0) + c.get("jt808_reports", 0)  # data, not logins
            nominal = (hj + jt) * seconds / _INTERVAL_S
            m.update(
                hj212_devices=hj,
                jt808_devices=jt,
                frames_per_s=round(sent / seconds, 1),
                nominal_frames_per_s=round((hj + jt) / _INTERVAL_S, 1),
                achieved_vs_nominal=round(sent / max(1.0, nominal), 2),
                cpu_pct_over_baseline=round(m["cpu_pct"] - out["baseline"]["cpu_pct"], 2),
                rss_mb_over_baseline=round(m["rss_mb"] - out["baseline"]["rss_mb"], 1),
            )
            out[size] = m
        return out

    return asyncio.run(main())


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
