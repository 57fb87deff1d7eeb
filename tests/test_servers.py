"""The test servers themselves: the v2 write path really lands in InfluxDB."""

from __future__ import annotations

from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS

from bench.servers import InfluxBehindNginx
from contracts.config import InfluxConfig


def test_v2_write_api_lands_in_influxdb_1x(influx: InfluxConfig, influx_server: InfluxBehindNginx):
    with InfluxDBClient(url=influx.url, token=influx.token, org=influx.org) as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            influx.bucket, influx.org, "probe,device_id=X value=1.5 1700000000000000000"
        )
    got = influx_server.query(influx.bucket, 'SELECT "value" FROM "probe"')
    assert got["results"][0]["series"][0]["values"] == [[1700000000000000000, 1.5]]
