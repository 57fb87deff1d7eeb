"""A wall-screen session spoken at the Bokeh protocol level: what a browser asks the server
for, without a browser.

A :class:`ProtocolClient` does what the page's BokehJS does to the server: an HTTP GET of
the page (the server creates the session and its document then, exactly as for a browser),
the websocket the page opens (``/ws``, subprotocols ``bokeh`` + the page's session token),
the ACK, a PULL-DOC-REQ and its reply (the whole document), a ``document_ready`` event,
and then every PATCH-DOC the server sends. It only timestamps and sizes the messages and
reads marker 0's position out of the map's updates (so latency is matched on content, not
on timing); it neither applies patches nor renders. So it measures the server's work and
wire output per session, not a browser's decoding, layout or drawing.

Wire layout of one message (Bokeh server protocol, one websocket frame each)::

    text   header   {"msgid", "msgtype", "num_buffers"?, "reqid"?}
    text   metadata {}
    text   content  {...}                    e.g. {"events": [...]} for PATCH-DOC
    ( text {"id": buffer id}  binary payload ) x num_buffers
"""

from __future__ import annotations

import asyncio
import json
import re
import struct
import time
from dataclasses import dataclass, field
from typing import Any

from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import WebSocketClientConnection, websocket_connect

__all__ = ["ProtocolClient", "Message", "client_child"]

_TOKEN = re.compile(r'"token":"([^"]+)"')
# A numeric column's first entry in an update: a slice patch or a whole array, as a buffer.
_COLUMN = (
    r'\["{col}",(?:\[\[\{{"type":"slice","start":(\d+),[^}}]*\}},)?'
    r'\{{"type":"ndarray","array":\{{"type":"bytes","data":\{{"id":"([^"]+)"\}}\}},'
    r'"shape":\[\d+\],"dtype":"float32"'
)
_X, _Y = re.compile(_COLUMN.format(col="x")), re.compile(_COLUMN.format(col="y"))
# What BokehJS sends once the page is rendered (Panel runs its on-load callbacks on it).
_READY = json.dumps(
    {
        "events": [
            {
                "kind": "MessageSent",
                "msg_type": "bokeh_event",
                "msg_data": {
                    "type": "event",
                    "name": "document_ready",
                    "values": {"type": "map", "entries": []},
                },
            }
        ]
    }  # fmt: skip
)
MAX_MESSAGE = 1 << 30  # a whole city's document is several MB; tornado's default is 10 MB


def _nbytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


@dataclass(slots=True)
class Message:
    """One server message as received: arrival time, type, size, and marker 0 if it moved."""

    t: float
    msgtype: str
    nbytes: int
    marker0: tuple[float, float] | None = None
    touches_layer: bool = False


@dataclass
class ProtocolClient:
    """One headless wall session at the protocol level (see the module docstring)."""

    base_url: str
    layer_name: str = "rg-trucks"
    messages: list[Message] = field(default_factory=list)
    layer_id: str | None = None
    layer_rows: int = 0
    errors: list[str] = field(default_factory=list)
    _ws: WebSocketClientConnection | None = field(default=None, init=False, repr=False)
    _n: int = field(default=0, init=False, repr=False)  # message ids sent

    async def _read(self) -> str | bytes:
        assert self._ws is not None
        frame = await self._ws.read_message()
        if frame is None:
            raise ConnectionError(
                f"websocket closed: {self._ws.close_code} {self._ws.close_reason}"
            )
        return frame

    async def _message(self) -> tuple[dict[str, Any], str, dict[str, bytes], int]:
        """(header, content, buffers by id, bytes on the wire) of the next message."""
        header_s, metadata, content = await self._read(), await self._read(), await self._read()
        if not (
            isinstance(header_s, str) and isinstance(metadata, str) and isinstance(content, str)
        ):
            raise ValueError("protocol error: header, metadata and content must be text frames")
        header = json.loads(header_s)
        size = _nbytes(header_s) + _nbytes(metadata) + _nbytes(content)
        buffers: dict[str, bytes] = {}
        for _ in range(header.get("num_buffers", 0)):
            buf_header, payload = await self._read(), await self._read()
            if not (isinstance(buf_header, str) and isinstance(payload, bytes)):
                raise ValueError("protocol error: a buffer is a text header then binary data")
            buffers[json.loads(buf_header)["id"]] = payload
            size += _nbytes(buf_header) + len(payload)
        return header, content, buffers, size

    async def _send(self, msgtype: str, content: str = "{}") -> str:
        assert self._ws is not None
        self._n += 1
        msgid = f"c{self._n}"
        for frame in (json.dumps({"msgid": msgid, "msgtype": msgtype}), "{}", content):
            await self._ws.write_message(frame)
        return msgid

    async def open(self) -> None:
        """GET the page, open its websocket, pull the document, say it is ready."""
        page = await AsyncHTTPClient().fetch(self.base_url + "/", request_timeout=600)
        found = _TOKEN.search(page.body.decode("utf-8"))
        if not found:
            raise ValueError("no session token in the page: not a Bokeh server page?")
        ws_url = "ws" + self.base_url.removeprefix("http") + "/ws"
        self._ws = await websocket_connect(
            ws_url, subprotocols=["bokeh", found.group(1)], max_message_size=MAX_MESSAGE
        )
        header, _, _, _ = await self._message()
        if header["msgtype"] != "ACK":
            raise ValueError(f"expected ACK, got {header['msgtype']}")
        reqid = await self._send("PULL-DOC-REQ")
        while True:  # the reply can follow other messages
            header, content, buffers, _ = await self._message()
            if header.get("reqid") == reqid:
                break
        if header["msgtype"] != "PULL-DOC-REPLY":
            raise ValueError(f"pull failed: {header['msgtype']}: {content[:200]}")
        self._find_layer(json.loads(content)["doc"], buffers)
        await self._send("PATCH-DOC", _READY)

    def _find_layer(self, doc: dict[str, Any], buffers: dict[str, bytes]) -> None:
        stack: list[Any] = [doc]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                attrs = node.get("attributes")
                if isinstance(attrs, dict) and attrs.get("name") == self.layer_name:
                    self.layer_id = node["id"]
                    for col, val in attrs["data"]["entries"]:
                        if col == "x":
                            self.layer_rows = int(val["shape"][0]) if "shape" in val else len(val)
                    return
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
        raise ValueError(f"no model named {self.layer_name!r} in the document")

    def _marker0(
        self, content: str, buffers: dict[str, bytes]
    ) -> tuple[bool, tuple[float, float] | None]:
        """Whether the message updates the layer, and marker 0's (x, y) when it carries them."""
        at = content.find(f'"model":{{"id":"{self.layer_id}"}},"attr":"data"')
        if at < 0:
            return False, None
        x, y = _X.search(content, at), _Y.search(content, at)
        if not x or not y or (x.group(1) or "0") != "0" or (y.group(1) or "0") != "0":
            return True, None
        try:
            return True, (struct.unpack_from("<f", buffers[x.group(2)])[0],
                          struct.unpack_from("<f", buffers[y.group(2)])[0])  # fmt: skip
        except (KeyError, struct.error):
            return True, None

    async def listen(self, positions: int | None = None) -> None:
        """Record every message until cancelled, or until ``positions`` updates carrying
        marker 0's position have arrived."""
        while positions is None or sum(1 for m in self.messages if m.marker0) < positions:
            header, content, buffers, size = await self._message()
            t = time.time()
            touches, pos = (False, None)
            if header["msgtype"] == "PATCH-DOC":
                touches, pos = self._marker0(content, buffers)
            self.messages.append(Message(t, header["msgtype"], size, pos, touches))

    def close(self) -> None:
        """Close the websocket (the server then releases the session)."""
        if self._ws is not None:
            self._ws.close()
            self._ws = None


async def _run(base_url: str, n: int, conn: Any) -> None:
    clients = [ProtocolClient(base_url) for _ in range(n)]
    listening = []
    for c in clients:  # one after the other, as screens coming up; each pulls a whole city
        await c.open()
        listening.append(asyncio.ensure_future(c.listen()))
    conn.send(("ready", [c.layer_rows for c in clients]))
    recv = asyncio.get_running_loop().run_in_executor
    await recv(None, conn.recv)  # the parent says stop
    for task in listening:
        task.cancel()
    done = await asyncio.gather(*listening, return_exceptions=True)
    for c, r in zip(clients, done):
        if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError):
            c.errors.append(repr(r))
    conn.send(("done", [
        {"layer_rows": c.layer_rows, "errors": c.errors,
         "messages": [(m.t, m.msgtype, m.nbytes, m.marker0, m.touches_layer) for m in c.messages]}
        for c in clients
    ]))  # fmt: skip
    # Sockets stay open until the parent has stopped the server: a server writing to screens
    # that went away first logs errors that are not the benchmark's.
    await recv(None, conn.recv)
    for c in clients:
        c.close()


def client_child(base_url: str, n: int, conn: Any) -> None:
    """Child process: ``n`` protocol sessions; says ("ready", rows per session) on ``conn``
    once all are open, records until the parent sends anything, then sends ("done",
    records) and closes the sessions when the parent sends anything again."""
    try:
        asyncio.run(_run(base_url, n, conn))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the run
        conn.send(("error", repr(exc)))
