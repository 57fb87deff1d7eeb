"""The dashboard benchmark's protocol client: it reads marker 0 out of Bokeh's own wire
format, and against a real dashboard server it gets a session, the document and patches."""

from __future__ import annotations

import asyncio
import functools
import http.server
import multiprocessing as mp
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from bokeh.document import Document
from bokeh.models import ColumnDataSource
from bokeh.protocol import Protocol

from bench._dash_client import ProtocolClient
from bench._dash_server import serve_child
from bench.dashboard import _latencies
from bench.servers import free_port, wait_port


def _wire(events: list) -> tuple[str, dict[str, bytes]]:
    """Content and buffers of a PATCH-DOC exactly as the server would send them."""
    msg = Protocol().create("PATCH-DOC", events)
    return msg.content_json, {b.id: b.to_bytes() for b in msg.buffers}


def _doc() -> tuple[ColumnDataSource, ColumnDataSource, list]:
    xs = np.array([104.5, 104.6, 104.7], np.float32)
    ys = np.array([30.5, 30.6, 30.7], np.float32)
    trucks = ColumnDataSource({"x": xs, "y": ys, "id": ["a", "b", "c"]}, name="rg-trucks")
    other = ColumnDataSource({"x": xs, "y": ys}, name="rg-cabinets")
    doc = Document()
    doc.add_root(trucks)
    doc.add_root(other)
    events: list = []
    doc.on_change(events.append)
    return trucks, other, events


def _client(trucks: ColumnDataSource) -> ProtocolClient:
    c = ProtocolClient("http://unused")
    c.layer_id = trucks.id
    return c


def test_marker0_read_from_a_slice_patch():
    trucks, _, events = _doc()
    new_x, new_y = np.array([103.25, 103.5], np.float32), np.array([31.25, 31.5], np.float32)
    trucks.patch({"x": [(slice(0, 2), new_x)], "y": [(slice(0, 2), new_y)]})
    assert _client(trucks)._marker0(*_wire(events)) == (True, (103.25, 31.25))


def test_marker0_read_from_a_whole_layer_redraw():
    trucks, _, events = _doc()
    trucks.data = {"x": np.array([101.5, 1.0], np.float32), "y": np.array([29.5, 2.0], np.float32),
                   "id": ["a", "b"]}  # fmt: skip
    assert _client(trucks)._marker0(*_wire(events)) == (True, (101.5, 29.5))


def test_patch_without_marker0_counts_as_an_update_without_a_position():
    trucks, _, events = _doc()
    trucks.patch({"x": [(slice(1, 3), np.array([1.0, 2.0], np.float32))],
                  "y": [(slice(1, 3), np.array([3.0, 4.0], np.float32))]})  # fmt: skip
    assert _client(trucks)._marker0(*_wire(events)) == (True, None)


def test_another_layer_is_not_the_trucks():
    trucks, other, events = _doc()
    other.patch({"x": [(slice(0, 1), np.array([1.0], np.float32))],
                 "y": [(slice(0, 1), np.array([2.0], np.float32))]})  # fmt: skip
    assert _client(trucks)._marker0(*_wire(events)) == (False, None)


def test_latency_matches_the_position_not_the_nearest_write():
    truth = [(10.0, 104.0, 30.0), (11.0, 104.0002, 30.0002), (12.0, 104.0004, 30.0004)]
    # Marker 0 at the first write's position, arriving after the third write: 2.5 s late.
    assert _latencies([(12.5, 104.0, 30.0)], truth) == [2500.0]
    # A position no write produced is not a latency sample.
    assert _latencies([(12.5, 104.1, 30.1)], truth) == []


def test_a_page_without_a_session_token_is_refused(tmp_path: Path):
    (tmp_path / "index.html").write_text("<html>no bokeh here</html>", encoding="utf-8")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        client = ProtocolClient(f"http://127.0.0.1:{httpd.server_address[1]}")
        with pytest.raises(ValueError, match="no session token"):
            asyncio.run(client.open())
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(params=[False, True], ids=["patch", "redraw_all"])
def dashboard(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A real dashboard process with 50 moving trucks (the benchmark's server, small)."""
    ctx = mp.get_context("spawn")
    port, truth = free_port(), tmp_path / "truth"
    _, control = ctx.Pipe()
    args = (port, 50, request.param, 1e12, str(truth), control, str(tmp_path / "prof"))
    proc = ctx.Process(target=serve_child, args=args, daemon=True)
    proc.start()
    try:
        wait_port(port, timeout_s=120)
        yield f"http://127.0.0.1:{port}", truth
    finally:
        proc.terminate()
        proc.join(30)


async def _first_positions(client: ProtocolClient, n: int) -> list[tuple[float, float]]:
    await client.open()
    try:
        await client.listen(positions=n)
    finally:
        client.close()
    return [m.marker0 for m in client.messages if m.marker0]


def test_protocol_client_gets_a_session_the_document_and_patches(dashboard: tuple[str, Path]):
    url, truth = dashboard
    client = ProtocolClient(url)
    positions = asyncio.run(asyncio.wait_for(_first_positions(client, 3), timeout=180))
    assert client.layer_rows == 50  # the whole layer came with the document pull
    types = {m.msgtype for m in client.messages}
    assert "OK" in types and "ERROR" not in types  # document_ready was accepted
    assert all(m.touches_layer for m in client.messages if m.marker0)
    assert len(set(positions)) == len(positions)  # marker 0 moves every write
    # Each position received is one the feeder wrote (float32 on the wire). The feeder logs
    # a write before making the next, so every position but the last is logged by now.
    written = [tuple(float(v) for v in line.split()[2:]) for line in truth.read_text().splitlines()]
    for x, y in positions[:-1]:
        assert any(abs(x - wx) + abs(y - wy) < 4e-5 for wx, wy in written), (x, y, written[-3:])
