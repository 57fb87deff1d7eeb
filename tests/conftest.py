"""Shared fixtures: real Mosquitto and InfluxDB servers for integration tests."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.servers import InfluxBehindNginx, Mosquitto
from contracts.config import BrokerConfig, InfluxConfig

_db_counter = itertools.count(1)


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    """A real Mosquitto for the whole session."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield broker
    broker.stop()


@pytest.fixture
def mqtt_broker(mosquitto: Mosquitto) -> BrokerConfig:
    """Broker config pointing at the session's real Mosquitto (restarted if a test stopped it)."""
    if mosquitto.proc is None or mosquitto.proc.poll() is not None:
        mosquitto.start()
    return BrokerConfig(url=mosquitto.url)


@pytest.fixture(scope="session")
def influx_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxBehindNginx]:
    """A real influxd 1.6.7 behind the nginx v2-write rewrite, for the whole session."""
    server = InfluxBehindNginx(tmp_path_factory.mktemp("influx")).start()
    yield server
    server.stop()


@pytest.fixture
def influx_db(influx_server: InfluxBehindNginx) -> str:
    """A fresh, existing database (bucket) name for one test."""
    if influx_server.influxd is None or influx_server.influxd.poll() is not None:
        influx_server.start_influxd()
    name = f"rg_test_{next(_db_counter)}"
    influx_server.create_database(name)
    return name


@pytest.fixture
def influx(influx_server: InfluxBehindNginx, influx_db: str) -> InfluxConfig:
    """Influx config (v2 write API through nginx) with a fresh bucket."""
    return InfluxConfig(url=influx_server.url, token="test-token", org="rongguan", bucket=influx_db)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout's root directory."""
    return Path(__file__).resolve().parent.parent
