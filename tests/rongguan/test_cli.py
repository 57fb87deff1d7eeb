"""The command line: every subcommand has help, unknown benchmarks are refused."""

from __future__ import annotations

import subprocess
import sys

import pytest

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


@pytest.mark.parametrize("command", ["backtest", "evaluate"])
def test_pass_through_commands_have_help(command: str, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert f"rongguan {command}" in capsys.readouterr().out
