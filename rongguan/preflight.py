"""Reachability checks the demo makes before starting anything: the broker and the store.

A broker or store that is down should cost the user seconds and one clear sentence, not
minutes of children waiting on each other.
"""

from __future__ import annotations

import os
import socket
import struct
import urllib.error
import urllib.request
from urllib.parse import urlsplit

__all__ = ["PreflightError", "check_mqtt", "check_influx", "check_demo", "TIMEOUT_S"]

#: seconds for each step (connect, answer): generous, a loaded broker still answers in time
TIMEOUT_S = 10.0

_CONNACK_CODES = {
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class PreflightError(Exception):
    """A part the demo needs cannot be reached; the message says which, where and why."""


def _host_port(url: str, schemes: tuple[str, ...], default: int, form: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url)
        if parts.scheme in schemes and parts.hostname:
            return parts.hostname, parts.port or default
    except ValueError:  # a port out of range or not a number
        pass
    raise PreflightError(f"{url!r} is not a URL of the form {form}")


def _connect_packet(client_id: str, keepalive_s: int = 10) -> bytes:
    """An MQTT 3.1.1 CONNECT with a clean session and no credentials.

    ``10 LL | 00 04 'MQTT' | 04 | 02 | KA KA | 00 NN client-id`` (LL < 128 here).
    """
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02" + struct.pack("!H", keepalive_s)
    body += struct.pack("!H", len(cid)) + cid
    return bytes([0x10, len(body)]) + body


def _recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def check_mqtt(url: str, timeout_s: float = TIMEOUT_S) -> None:
    """Connect to the broker at ``url`` and exchange CONNECT/CONNACK; raise if it fails."""
    host, port = _host_port(url, ("mqtt", "tcp"), 1883, "mqtt://HOST[:PORT]")
    where = f"the MQTT broker at {host}:{port}"
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except OSError as exc:
        raise PreflightError(f"cannot reach {where} ({_reason(exc)})") from exc
    with sock:
        try:
            sock.settimeout(timeout_s)
            sock.sendall(_connect_packet(f"rg-preflight-{os.getpid()}"))
            ack = _recv_exactly(sock, 4)
        except TimeoutError:
            ack = None
        except OSError as exc:
            raise PreflightError(f"cannot reach {where} ({_reason(exc)})") from exc
        if ack is None or len(ack) < 4 or ack[0] != 0x20 or ack[1] != 2:
            got = (
                f"nothing within {timeout_s:g} s"
                if ack is None
                else (f"got {ack.hex(' ')}" if ack else "the connection closed")
            )
            raise PreflightError(
                f"cannot reach {where} (no MQTT answer to CONNECT: {got}; is it an MQTT broker?)"
            )
        if ack[3] != 0:
            why = _CONNACK_CODES.get(ack[3], f"return code {ack[3]}")
            raise PreflightError(f"cannot reach {where} (the broker refused the connection: {why})")
        try:
            sock.sendall(b"\xe0\x00")  # DISCONNECT: a clean goodbye, no will message
        except OSError:
            pass  # it answered CONNECT: reachable is all this check is about


def check_influx(url: str, token: str = "", timeout_s: float = TIMEOUT_S) -> None:
    """GET ``url``/ping (InfluxDB 1.8+, 2.x and 3.x serve it); raise unless it answers 2xx."""
    default = 443 if url.startswith("https:") else 80
    host, port = _host_port(url, ("http", "https"), default, "http(s)://HOST:PORT")
    where = f"InfluxDB at {host}:{port}"
    req = urllib.request.Request(url.rstrip("/") + "/ping", method="GET")
    if token:
        req.add_header("Authorization", f"Token {token}")
    try:
        # directly, as influxdb-client connects (it ignores the *_proxy variables)
        with _DIRECT.open(req, timeout=timeout_s) as resp:
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise PreflightError(f"cannot reach {where} ({_reason(reason)})") from exc
    if status in (401, 403):
        raise PreflightError(f"cannot use {where} (GET /ping: HTTP {status}; check --influx-token)")
    if not 200 <= status < 300:
        raise PreflightError(f"cannot reach {where} (GET /ping answered HTTP {status})")


def check_demo(mqtt_url: str | None, influx_url: str | None, influx_token: str = "") -> str | None:
    """Why the demo cannot start with these external parts, or None (None given: nothing)."""
    try:
        if mqtt_url:
            check_mqtt(mqtt_url)
        if influx_url:
            check_influx(influx_url, influx_token)
    except PreflightError as exc:
        return str(exc)
    return None


def _reason(exc: object) -> str:
    """A short human reason for a socket error ("connection refused", "timed out")."""
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve the host name: {exc.strerror or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
