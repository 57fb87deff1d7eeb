"""Real servers for benchmarks and tests: Mosquitto, and InfluxDB 1.6.7 behind nginx.

Each server runs as a child process on free loopback ports with its files in a temporary
directory. The OS packages only carry InfluxDB 1.6.7, which lacks the v2 write path, so
nginx rewrites ``/api/v2/write?bucket=B&precision=P`` to ``/write?db=B&precision=p``: the
product's real influxdb-client write path lands in a real InfluxDB.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from contracts.ports import free_port, wait_port

# free_port and wait_port come from contracts.ports (tests import them from here too).
__all__ = ["free_port", "wait_port", "Mosquitto", "InfluxBehindNginx", "ServerError"]


class ServerError(RuntimeError):
    """A test server could not be started; the message carries its log."""


def _need(binary: str) -> str:
    path = shutil.which(binary) or next(
        (p for p in (f"/usr/sbin/{binary}", f"/usr/bin/{binary}") if Path(p).exists()), None
    )
    if path is None:
        raise ServerError(f"{binary} not found: run the README's test command, which installs it")
    return path


def _stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@dataclass
class Mosquitto:
    """A real Mosquitto broker on a free loopback port; can be stopped and restarted."""

    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen | None = None
    #: mosquitto.conf settings over the defaults (e.g. a tight ``max_queued_messages``).
    settings: dict[str, object] = field(default_factory=dict)

    def start(self) -> Mosquitto:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        settings = {
            "allow_anonymous": "true",
            "persistence": "false",
            "max_queued_messages": 100000,
            "log_dest": "stderr",
            **self.settings,
        }
        lines = [f"listener {self.port} 127.0.0.1", *(f"{k} {v}" for k, v in settings.items())]
        conf.write_text("\n".join(lines) + "\n")
        log = open(self.workdir / "mosquitto.log", "ab")
        self.proc = subprocess.Popen([_need("mosquitto"), "-c", str(conf)], stdout=log, stderr=log)
        wait_port(self.port, proc=self.proc, what="mosquitto")
        return self

    def stop(self) -> None:
        _stop(self.proc)

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"


_INFLUXD_CONF = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{dir}/meta"
[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  query-log-enabled = false
[coordinator]
[retention]
  enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = false
  log-enabled = false
[continuous_queries]
  enabled = false
"""

_NGINX_CONF = """\
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 256; }}
http {{
  access_log off;
  # one line per write: how it was encoded and how many bytes crossed the wire
  log_format writes '$http_content_encoding $request_length';
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  client_max_body_size 64m;
  client_body_buffer_size 64m;  # workers run unprivileged: keep bodies off the temp dir
  proxy_max_temp_file_size 0;  # ... and answers too (large query answers were cut off)
  map $arg_precision $v1_precision {{ ns n; us u; ms ms; s s; default n; }}
  server {{
    listen 127.0.0.1:{port};
    location = /api/v2/write {{
      access_log {dir}/writes.log writes;
      rewrite ^ /write?db=$arg_bucket&precision=$v1_precision? break;
      proxy_set_header Authorization "";
      proxy_pass http://127.0.0.1:{influx_port};
    }}
    location / {{
      proxy_set_header Authorization "";
      proxy_pass http://127.0.0.1:{influx_port};
    }}
  }}
}}
"""


@dataclass
class InfluxBehindNginx:
    """influxd 1.6.7 plus nginx rewriting the v2 write path; ``url`` is nginx's address."""

    workdir: Path
    port: int = field(default_factory=free_port)
    influx_port: int = field(default_factory=free_port)
    rpc_port: int = field(default_factory=free_port)
    influxd: subprocess.Popen | None = None
    nginx: subprocess.Popen | None = None

    def start(self) -> InfluxBehindNginx:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.start_influxd()
        conf = self.workdir / "nginx.conf"
        conf.write_text(
            _NGINX_CONF.format(dir=self.workdir, port=self.port, influx_port=self.influx_port)
        )
        log = open(self.workdir / "nginx.log", "ab")
        self.nginx = subprocess.Popen(
            [_need("nginx"), "-c", str(conf), "-p", str(self.workdir)], stdout=log, stderr=log
        )
        wait_port(self.port, proc=self.nginx, what="nginx")
        return self

    def start_influxd(self) -> None:
        """Start (or restart) influxd on its fixed port; its data survives restarts."""
        conf = self.workdir / "influxdb.conf"
        conf.write_text(
            _INFLUXD_CONF.format(
                dir=self.workdir, http_port=self.influx_port, rpc_port=self.rpc_port
            )
        )
        log = open(self.workdir / "influxd.log", "ab")
        self.influxd = subprocess.Popen(
            [_need("influxd"), "-config", str(conf)], stdout=log, stderr=log
        )
        wait_port(self.influx_port, timeout_s=30, proc=self.influxd, what="influxd")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.influx_port}/ping", timeout=2)
                return
            except OSError:
                time.sleep(0.1)
        raise ServerError("influxd did not answer /ping")

    def stop_influxd(self) -> None:
        _stop(self.influxd)

    def stop(self) -> None:
        _stop(self.nginx)
        _stop(self.influxd)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def query(self, db: str, q: str) -> dict:
        """Run InfluxQL through nginx and return the parsed JSON answer."""
        import json

        params = urllib.parse.urlencode({"db": db, "q": q, "epoch": "ns"})
        with urllib.request.urlopen(f"{self.url}/query?{params}", timeout=10) as resp:
            return json.loads(resp.read())

    def create_database(self, db: str) -> None:
        """CREATE DATABASE through /query (POST, as InfluxDB requires for writes of schema)."""
        data = urllib.parse.urlencode({"q": f'CREATE DATABASE "{db}"'}).encode()
        urllib.request.urlopen(f"{self.url}/query", data=data, timeout=10).read()
