"""The per-loop registry of shared connections: one object per key, closed by its last user."""

from __future__ import annotations

import asyncio

from drivers.shared import Shared


class _Conn:
    def __init__(self, key: str):
        self.key = key
        self.users = 0


def test_one_object_per_key_until_its_last_user_releases() -> None:
    async def main() -> None:
        reg: Shared[_Conn] = Shared()
        a = reg.acquire("gw-1", lambda: _Conn("gw-1"))
        b = reg.acquire("gw-1", lambda: _Conn("other"))
        c = reg.acquire("gw-2", lambda: _Conn("gw-2"))
        assert a is b and a.users == 2 and c is not a
        assert reg.release(a) is False and reg.mine() == [a, c]
        assert reg.release(a) is True and reg.mine() == [c]
        assert reg.acquire("gw-1", lambda: _Conn("new")).key == "new"

    asyncio.run(main())


def test_kept_object_is_found_again_and_loops_do_not_share() -> None:
    reg: Shared[_Conn] = Shared()

    async def first() -> _Conn:
        conn = reg.acquire("ep", lambda: _Conn("ep"))
        assert reg.release(conn, keep=True) is True and conn.users == 0
        assert reg.acquire("ep", lambda: _Conn("x")) is conn and conn.users == 1
        return conn

    async def second() -> _Conn:
        return reg.acquire("ep", lambda: _Conn("other loop"))

    assert asyncio.run(first()) is not asyncio.run(second())
