"""The command line: every subcommand has help, unknown benchmarks are refused, the demo
refuses a broker or store it cannot reach before starting anything."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench.servers import free_port
from rongguan.cli import build_parser, main

COMMANDS = [
    "demo",
    "simulate",
    "agent",
    "ingest",
    "rules",
    "dashboard",
    "check-config",
    "bench",
    "broker",
    "lighting",
    "decode",
]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_subcommand_has_help(command: str, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args([command, "--help"])
    assert info.value.code == 0
    assert "usage: rongguan " + command in capsys.readouterr().out


def test_installed_entry_point_runs():
    out = subprocess.run(
        [sys.executable, "-m", "rongguan.cli", "--help"], capture_output=True, text=True, check=True
    )
    for command in COMMANDS:
        assert command in out.stdout


def test_unknown_benchmark_lists_the_known_ones(capsys: pytest.CaptureFixture[str]):
    assert main(["bench", "no-such-bench"]) == 2
    assert "encode" in capsys.readouterr().out


def test_service_with_broken_config_exits_2(tmp_path, capsys: pytest.CaptureFixture[str]):
    bad = tmp_path / "bad.yaml"
    bad.write_text("broker: {url: 'ftp://x'}\n")
    assert main(["agent", "-c", str(bad)]) == 2
    assert "broker.url" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["ingest", "rules"])
def test_a_partition_the_config_does_not_have_exits_2(
    command: str, capsys: pytest.CaptureFixture[str]
):
    # configs/ingest.yaml has one partition: a worker for partition 3 would store nothing
    config = Path(__file__).resolve().parents[2] / "configs" / "ingest.yaml"
    assert main([command, "-c", str(config), "--partition", "3"]) == 2
    assert "--partition 3 is outside 0..0" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["backtest", "evaluate"])
def test_pass_through_commands_have_help(command: str, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert f"rongguan {command}" in capsys.readouterr().out


def _demo(tmp_path, *option: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "rongguan.cli", "demo", "--var-dir", str(tmp_path / "v"), *option]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_demo_refuses_an_unreachable_broker_before_starting_anything(tmp_path):
    port = free_port()  # nobody listens there: the connection is refused
    out = _demo(tmp_path, "--mqtt-url", f"mqtt://127.0.0.1:{port}")
    assert out.returncode == 2, out.stderr
    assert f"cannot reach the MQTT broker at 127.0.0.1:{port} (connection refused)" in out.stderr
    assert not (tmp_path / "v").exists()  # nothing started, nothing wiped


def test_demo_refuses_an_unreachable_influxdb_before_starting_anything(tmp_path, mosquitto):
    port = free_port()
    out = _demo(tmp_path, "--mqtt-url", mosquitto.url, "--influx-url", f"http://127.0.0.1:{port}")
    assert out.returncode == 2, out.stderr
    assert f"cannot reach InfluxDB at 127.0.0.1:{port} (connection refused)" in out.stderr
    assert not (tmp_path / "v").exists()


class _NotInflux(BaseHTTPRequestHandler):
    """An HTTP server that is not InfluxDB: no /ping."""

    def do_GET(self) -> None:  # noqa: N802
        self.send_error(404)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def http_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotInflux)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_preflight_names_a_server_that_does_not_speak_the_protocol(http_server):
    from rongguan.preflight import PreflightError, check_influx, check_mqtt

    with pytest.raises(PreflightError, match=r"no MQTT answer to CONNECT.*MQTT broker\?"):
        check_mqtt(f"mqtt://127.0.0.1:{http_server}")
    with pytest.raises(PreflightError, match=r"GET /ping answered HTTP 404"):
        check_influx(f"http://127.0.0.1:{http_server}")


def test_preflight_passes_real_servers(mosquitto, influx_server):
    from rongguan.preflight import check_demo

    assert check_demo(mosquitto.url, influx_server.url, "any-token") is None
    influx_server.stop_influxd()  # nginx still answers, for a store that is down
    try:
        why = check_demo(mosquitto.url, influx_server.url, "")
    finally:
        influx_server.start_influxd()
    assert why is not None and "GET /ping answered HTTP 502" in why


def test_preflight_reports_a_refusing_broker_and_a_bad_url():
    from rongguan.preflight import check_demo

    # a stand-in that answers CONNECT with CONNACK "not authorized" (return code 5)
    server = socket.create_server(("127.0.0.1", 0))
    got: list[bytes] = []

    def answer() -> None:
        conn, _ = server.accept()
        with conn:
            got.append(conn.recv(64))
            conn.sendall(b"\x20\x02\x00\x05")

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    port = server.getsockname()[1]
    try:
        why = check_demo(f"mqtt://127.0.0.1:{port}", None)
    finally:
        t.join(30)
        server.close()
    assert why == (
        f"cannot reach the MQTT broker at 127.0.0.1:{port} "
        "(the broker refused the connection: not authorized)"
    )
    assert got and got[0][0] == 0x10 and b"\x00\x04MQTT\x04" in got[0]  # MQTT 3.1.1 CONNECT
    assert "mqtt://HOST[:PORT]" in (check_demo("ftp://x", None) or "")
    assert "http(s)://HOST:PORT" in (check_demo(None, "127.0.0.1:8086") or "")
