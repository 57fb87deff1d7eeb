"""Loopback ports of the child processes the demo, the simulator and benchmarks start."""

from __future__ import annotations

import socket
import subprocess
import time

__all__ = ["free_port", "wait_port"]


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_port(
    port: int,
    timeout_s: float = 15.0,
    proc: subprocess.Popen | None = None,
    what: str = "process",
) -> None:
    """Wait until something accepts connections on the loopback ``port``.

    Raises RuntimeError when ``proc`` (the process that should open it, called ``what``)
    exits first, or after ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"{what} exited with code {proc.returncode} before port {port} opened"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not open port {port} within {timeout_s:.0f} s")
