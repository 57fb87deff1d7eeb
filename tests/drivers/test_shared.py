"""The per-loop registry of shared connections: one object per key, closed by its last user."""

from __future__ import annotations

import asyncio
import time

from drivers.shared import Shared


class _Conn:
    def __init__(self, key: str):
        self.key = key
        self.users = 0

    def counters(self) -> dict[str, int]:
        return {"events": 1}


def test_one_object_per_key_until_its_last_user_releases() -> None:
    async def main() -> None:
        reg: Shared[_Conn] = Shared("test", register=False)
        a = reg.acquire("gw-1", lambda: _Conn("gw-1"))
        b = reg.acquire("gw-1", lambda: _Conn("other"))
        c = reg.acquire("gw-2", lambda: _Conn("gw-2"))
        assert a is b and a.users == 2 and c is not a
        assert reg.release(a) is False and reg.mine() == [a, c]
        assert reg.release(a) is True and reg.mine() == [c]
        assert reg.acquire("gw-1", lambda: _Conn("new")).key == "new"
        assert reg.retired == {"events": 1}  # the closed one's counters are kept

    asyncio.run(main())


def test_kept_object_is_found_again_and_loops_do_not_share() -> None:
    reg: Shared[_Conn] = Shared("test", register=False)

    async def first() -> _Conn:
        conn = reg.acquire("ep", lambda: _Conn("ep"))
        assert reg.release(conn, keep=True) is True and conn.users == 0
        assert reg.acquire("ep", lambda: _Conn("x")) is conn and conn.users == 1
        return conn

    async def second() -> _Conn:
        return reg.acquire("ep", lambda: _Conn("other loop"))

    assert asyncio.run(first()) is not asyncio.run(second())


def test_a_gateway_answering_twice_is_counted_once_per_extra_answer() -> None:
    """A real TCP gateway (asyncio server) sends every answer twice: reads still succeed,
    each duplicate counts as a stray answer, kept in the totals after the bus closes."""
    from drivers.modbus import bus as buses
    from drivers.modbus.mbap import frame, split
    from drivers.shared import totals

    async def gateway(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buf = b""
        while data := await reader.read(4096):
            buf += data
            messages, used = split(buf)
            buf = buf[used:]
            for tid, unit, pdu in messages:
                count = int.from_bytes(pdu[3:5], "big")
                answer = frame(tid, unit, bytes([pdu[0], 2 * count]) + b"\x00\x07" * count)
                writer.write(answer + answer)
                await writer.drain()

    async def main() -> None:
        server = await asyncio.start_server(gateway, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        before = totals().get("modbus_stray_answers", 0)
        bus = buses.acquire("127.0.0.1", port, 5.0)
        for _ in range(3):
            assert await bus.read("holding", 0, 2, 1, 5.0, "test") == [7, 7]
        deadline = time.monotonic() + 10
        while bus.stray < 3 and time.monotonic() < deadline:  # the last one is on its way
            await asyncio.sleep(0.01)
        buses.release(bus)
        server.close()
        assert totals()["modbus_stray_answers"] - before == 3

    asyncio.run(asyncio.wait_for(main(), 30))
