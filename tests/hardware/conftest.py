"""Helpers for the simulator tests: run a tiny simulated city inside one test's event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["run", "wait_for"]


def run(coro: Awaitable[Any], timeout_s: float = 30.0) -> Any:
    """Run one coroutine to completion in a fresh loop, with a hard time limit."""
    return asyncio.run(asyncio.wait_for(coro, timeout_s))  # type: ignore[arg-type]


async def wait_for(pred: Callable[[], Any], timeout_s: float = 5.0, what: str = "condition") -> Any:
    """Poll ``pred`` until it returns something truthy, or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)
