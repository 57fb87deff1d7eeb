"""HJ 212 and JT/T 808 devices pushing to plain test servers that parse frames independently.

The servers here share no code with hardware.sim: their CRC, escaping and field parsing
are written from the standards, and the HJ 212 CRC is checked against the example frame
printed in HJ 212-2017 itself.
"""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path

from contracts.ports import free_port
from hardware.inventory import build_inventory
from hardware.sim import jt808_codec
from hardware.sim.city import SimulatedCity
from hardware.sim.deployment import agent_devices
from tests.hardware.conftest import run, wait_for

# The example frame printed in HJ 212-2017 (data segment length 0101, CRC 1C80).
_STANDARD = (
    b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;"
    b"MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n"
)


def _crc212(data: bytes) -> int:
    crc = 0xFFFF
    for b in data:
        crc = ((crc >> 8) & 0xFF) ^ b
        for _ in range(8):
            lsb = crc & 1
            crc >>= 1
            if lsb:
                crc ^= 0xA001
    return crc


def _parse212(line: bytes) -> dict:
    assert line.startswith(b"##") and line.endswith(b"\r\n"), line[:20]
    n = int(line[2:6])
    seg, crc = line[6 : 6 + n], line[6 + n : -2]
    assert len(seg) == n and int(crc, 16) == _crc212(seg), "length or CRC wrong"
    head, cp = seg.decode().split("CP=&&")
    doc = dict(kv.split("=") for kv in head.rstrip(";").split(";"))
    items = {}
    for group in cp.rstrip("&").split(";"):
        for kv in group.split(","):
            k, v = kv.split("=")
            items[k] = v
    return {**doc, "CP": items}


def test_crc_is_the_standards_own() -> None:
    doc = _parse212(_STANDARD)
    assert doc["CN"] == "1062" and doc["CP"] == {"RtdInterval": "30"}
    from hardware.sim.hj212_device import encode_frame, hj212_crc

    seg = _STANDARD[6:107]
    assert hj212_crc(seg) == 0x1C80 and encode_frame(seg.decode()) == _STANDARD


def test_hj212_monitor_pushes_frames_reconnects_and_honours_replies(tmp_path: Path) -> None:
    frames: list[dict] = []
    port = free_port()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            doc = _parse212(line)
            frames.append(doc)
            if int(doc["Flag"]) & 1:  # the device asked for a reply: CN 9014 with its QN
                seg = f"QN={doc['QN']};ST=91;CN=9014;PW={doc['PW']};MN={doc['MN']};Flag=4;CP=&&&&"
                writer.write(b"##%04d%s%04X\r\n" % (len(seg), seg.encode(), _crc212(seg.encode())))
                await writer.drain()

    async def body() -> None:
        inv = build_inventory("tiny", push_devices=True)
        city = SimulatedCity(
            inv,
            agent_listeners={"hj212": ("127.0.0.1", port)},
            push_interval_s=0.2,
            hj212_minute_s=1.0,
            ground_truth=tmp_path / "truth.jsonl",
        )
        endpoints = await city.start()
        server = None
        try:
            await asyncio.sleep(0.3)  # the listener is down: the devices must retry
            server = await asyncio.start_server(handle, "127.0.0.1", port)
            await wait_for(lambda: any(f["CN"] == "2051" for f in frames), 8, "minute frame")
            rt = next(f for f in frames if f["CN"] == "2011")
            assert len(rt["MN"]) == 24 and rt["ST"] == "22" and rt["Flag"] == "5"
            assert {e["mn"] for e in endpoints["hj212"]} >= {rt["MN"]}
            dev = next(e["device_id"] for e in endpoints["hj212"] if e["mn"] == rt["MN"])
            pm10 = float(rt["CP"]["a34002-Rtd"]) * 1000  # mg/m³ on the wire
            assert 40 < pm10 < 200 and rt["CP"]["a34002-Flag"] == "N"
            assert float(rt["CP"]["a34004-Rtd"]) < float(rt["CP"]["a34002-Rtd"])
            mf = next(f for f in frames if f["CN"] == "2051")
            lo, avg, hi = (float(mf["CP"][f"a34002-{s}"]) for s in ("Min", "Avg", "Max"))
            assert lo <= avg <= hi
            city.inject({"kind": "sensor_fault", "device": dev, "duration_s": 30})
            mark = len(frames)
            await wait_for(
                lambda: [
                    f
                    for f in frames[mark:]
                    if f["MN"] == rt["MN"] and f["CN"] == "2011" and f["CP"]["a34002-Flag"] == "D"
                ],
                5,
                "D flag",
            )
            push = city.push
            assert push is not None and sum(d.acked for d in push.hj212) > 0
            assert all(d.connects >= 1 for d in push.hj212)
            cfg = [d for d in agent_devices(inv, endpoints) if d["protocol"] == "hj212"]
            assert cfg and cfg[0]["endpoint"] == f"tcp://127.0.0.1:{port}"
            assert cfg[0]["address"]["mn"] in {e["mn"] for e in endpoints["hj212"]}
        finally:
            await city.stop()
            if server is not None:
                server.close()

    run(body())
    truth = [json.loads(x) for x in (tmp_path / "truth.jsonl").read_text().splitlines()]
    assert truth[0]["kind"] == "sensor_fault" and truth[0]["family"] == "dust.sensor_fault"
    assert truth[0]["end_ns"] - truth[0]["start_ns"] == 30 * 10**9 and truth[0]["sim_start"]


def _unescape808(data: bytes) -> bytes:
    return data.replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")


def _split808(raw: bytes) -> tuple[int, str, int, bytes, bool]:
    """(msg id, phone, serial, body, is_2019) after unescaping and checking the XOR."""
    x = 0
    for b in raw[:-1]:
        x ^= b
    assert x == raw[-1], "check code"
    msg_id, props = struct.unpack(">HH", raw[:4])
    if props & 0x4000:
        phone, serial, start = raw[5:15].hex(), struct.unpack(">H", raw[15:17])[0], 17
    else:
        phone, serial, start = raw[4:10].hex(), struct.unpack(">H", raw[10:12])[0], 12
    body = raw[start:-1]
    assert len(body) == props & 0x3FF
    return msg_id, phone, serial, body, bool(props & 0x4000)


def _reply808(msg_id: int, phone: str, is_2019: bool, body: bytes) -> bytes:
    if is_2019:
        head = struct.pack(">HHB", msg_id, len(body) | 0x4000, 1) + bytes.fromhex(phone)
    else:
        head = struct.pack(">HH", msg_id, len(body)) + bytes.fromhex(phone)
    raw = head + b"\x00\x07" + body
    x = 0
    for b in raw:
        x ^= b
    raw += bytes([x])
    return b"\x7e" + raw.replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02") + b"\x7e"


def _location(body: bytes) -> dict:
    alarm, status, lat, lon, _alt, speed, _dir = struct.unpack(">IIIIHHH", body[:22])
    t = body[22:28].hex()
    extra, i = {}, 28
    while i < len(body):
        extra[body[i]] = body[i + 2 : i + 2 + body[i + 1]]
        i += 2 + body[i + 1]
    return {"alarm": alarm, "status": status, "lat": lat / 1e6, "lon": lon / 1e6, "time": t,
            "speed": speed / 10, "extra": extra}  # fmt: skip


def test_codec_escapes_flags_inside_frames() -> None:
    frame = jt808_codec.encode(0x0200, "013900001001", 0x7E7D, b"\x7e\x7d\x01\x7e")
    inner = frame[1:-1]
    assert b"\x7e" not in inner
    msg_id, phone, serial, body, _ = _split808(_unescape808(inner))
    assert (msg_id, phone, serial, body) == (0x0200, "013900001001", 0x7E7D, b"\x7e\x7d\x01\x7e")


def test_jt808_terminals_register_authenticate_report_and_send_blind_area_late() -> None:
    seen: list[tuple[str, int, bytes, bool]] = []
    port = free_port()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = b""
        while chunk := await reader.read(4096):
            buf += chunk
            *frames, buf = buf.split(b"\x7e")
            for f in filter(None, frames):
                msg_id, phone, serial, body, v19 = _split808(_unescape808(f))
                seen.append((phone, msg_id, body, v19))
                if msg_id == 0x0100:
                    rep = struct.pack(">HB", serial, 0) + b"AUTH" + phone[-4:].encode()
                    writer.write(_reply808(0x8100, phone, v19, rep))
                else:
                    writer.write(
                        _reply808(0x8001, phone, v19, struct.pack(">HHB", serial, msg_id, 0))
                    )
            await writer.drain()

    async def body() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        inv = build_inventory("tiny", push_devices=True)
        city = SimulatedCity(
            inv, agent_listeners={"jt808": ("127.0.0.1", port)}, push_interval_s=0.25
        )
        endpoints = await city.start()
        try:
            phones = {e["device_id"]: e["phone"] for e in endpoints["jt808"]}
            assert {e["header"] for e in endpoints["jt808"]} == {2013, 2019}
            trk = "TRK-1001"
            await wait_for(lambda: sum(s[1] == 0x0200 for s in seen) >= 6, 5, "reports")
            city.inject({"kind": "cover_open", "device": trk, "duration_s": 30})
            city.inject({"kind": "blind_area", "device": trk, "duration_s": 1.5})
            mark = len(seen)
            await wait_for(lambda: [s for s in seen[mark:] if s[1] == 0x0704], 6, "0x0704 batch")
        finally:
            await city.stop()
            server.close()
        mine = [s for s in seen if s[0].endswith(phones[trk][-12:])]
        assert [s[1] for s in mine[:2]] == [0x0100, 0x0102]  # register, then authenticate
        assert mine[1][2] == b"AUTH" + phones[trk][-4:].encode()
        assert any(s[3] for s in seen) and any(not s[3] for s in seen)  # both headers seen
        reports = [_location(s[2]) for s in mine if s[1] == 0x0200]
        assert all(30.3 < r["lat"] < 31.0 and 103.7 < r["lon"] < 104.5 for r in reports)
        assert all(0x01 in r["extra"] and len(r["extra"][0x01]) == 4 for r in reports)
        assert reports[-1]["status"] & (1 << 12)  # cover open: status bit 12
        i = next(i for i, s in enumerate(mine) if s[1] == 0x0704)
        count, kind = struct.unpack(">HB", mine[i][2][:3])
        assert kind == 1 and count >= 3  # blind-area supplement
        items, j = [], 3
        for _ in range(count):
            (n,) = struct.unpack(">H", mine[i][2][j : j + 2])
            items.append(_location(mine[i][2][j + 2 : j + 2 + n]))
            j += 2 + n
        live = _location(mine[i - 1][2])  # the live fix went first: the batch is late
        assert mine[i - 1][1] == 0x0200 and all(it["time"] <= live["time"] for it in items)
        assert [it["time"] for it in items] == sorted(it["time"] for it in items)

    run(body())


def test_hj212_monitor_drops_off_the_network_and_comes_back() -> None:
    closed: list[str] = []  # MN of each connection that ended
    frames: list[dict] = []
    port = free_port()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mn = ""
        while line := await reader.readline():
            doc = _parse212(line)
            mn = doc["MN"]
            frames.append(doc)
            seg = f"QN={doc['QN']};ST=91;CN=9014;PW={doc['PW']};MN={mn};Flag=4;CP=&&&&"
            writer.write(b"##%04d%s%04X\r\n" % (len(seg), seg.encode(), _crc212(seg.encode())))
            await writer.drain()
        closed.append(mn)

    async def body() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        inv = build_inventory("tiny", push_devices=True)
        city = SimulatedCity(
            inv, agent_listeners={"hj212": ("127.0.0.1", port)}, push_interval_s=0.2
        )
        endpoints = await city.start()
        try:
            dev, mn = endpoints["hj212"][0]["device_id"], endpoints["hj212"][0]["mn"]
            await wait_for(lambda: any(f["MN"] == mn for f in frames), 10, "first frame")
            city.inject({"kind": "device_offline", "device": dev, "duration_s": 1.5})
            await wait_for(lambda: mn in closed, 10, "the connection to close")
            mark = len(frames)
            await wait_for(lambda: any(f["MN"] == mn for f in frames[mark:]), 15, "it back")
            assert city.push is not None
            assert next(d for d in city.push.hj212 if d.mn == mn).connects >= 2
        finally:
            await city.stop()
            server.close()

    run(body())
