"""Prometheus text exposition (format 0.0.4) and a tiny /metrics HTTP server on asyncio.

Shared by every service that exposes figures (the edge agent, ingest): each builds a
list of ``(name, type, labels, value)`` figures and hands :func:`render` to
:class:`MetricsServer`. Standard library only, so ``contracts`` stays light.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

__all__ = ["Figure", "render", "MetricsServer"]

log = logging.getLogger(__name__)

#: One sample: metric name, type (counter/gauge), labels, value.
Figure = tuple[str, str, dict[str, str], float]


def _labels(**kv: str) -> str:
    inner = ",".join(
        f'{k}="{v.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34)).replace(chr(10), " ")}"'
        for k, v in kv.items()
    )
    return "{" + inner + "}" if inner else ""


def render(figures: list[tuple[str, str, dict[str, str], float]]) -> str:
    """Prometheus text exposition format 0.0.4 of the figures (one TYPE line per name)."""
    lines: list[str] = []
    typed: set[str] = set()

    def family(f: tuple[str, str, dict[str, str], float]) -> str:
        return f[0].removesuffix("_sum").removesuffix("_count")

    # The exposition format wants every sample of one family together.
    for name, typ, labels, value in sorted(figures, key=family):
        base = name.removesuffix("_sum").removesuffix("_count")
        if base not in typed and name not in typed:
            typed.add(base if base != name else name)
            lines.append(f"# TYPE {base} {'summary' if base != name else typ}")
        lines.append(f"{name}{_labels(**labels)} {float(value)!r}")
    return "\n".join(lines) + "\n"


class MetricsServer:
    """GET /metrics on host:port (plain HTTP/1.0 over asyncio streams, no dependency)."""

    def __init__(self, text: Callable[[], str], port: int, host: str = "127.0.0.1"):
        self.text, self.port, self.host = text, port, host
        self.requests = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Listen (port 0 picks a free port, stored back in ``port``)."""
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            parts = head.split(b"\r\n", 1)[0].split()
            self.requests += 1
            if len(parts) >= 2 and parts[0] == b"GET" and parts[1].split(b"?")[0] == b"/metrics":
                status, body = "200 OK", self.text().encode()
            else:
                status, body = "404 Not Found", b"try /metrics\n"
            writer.write(
                f"HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, OSError):
            pass  # a scraper that hung up or sent garbage: nothing to answer
        except Exception:
            log.exception("metrics request failed")
        finally:
            writer.close()
