"""OPC-UA settings of one device, resolved once from its DeviceConfig and profile.

``DeviceConfig.address`` keys (all optional)::

    namespace             namespace URI of the device's nodes (default: the profile's)
    node_prefix           string node ids are "<prefix>.<node>" (default: the device id)
    mode                  "subscribe" (default) or "poll"; a server that refuses
                          subscriptions falls back to polling by itself (counted)
    publishing_interval_ms  subscription publishing interval (default: interval_s, ≤ 1000)
    sampling_interval_ms  server-side sampling of each monitored item (default: = publishing)
    queue_size            values queued per item between publishes (default 1: latest only)
    deadband              absolute deadband for numeric items (default 0: every change)
    deadband_percent      percent deadband (needs an EURange on the server; wins over deadband)
    keepalive_count       publishing intervals without data before the server sends a
                          keep-alive (default 10); the session counts as lost after
                          1.5 × keepalive_count × publishing interval without any publish
    security              "None" (default), "Basic256Sha256_Sign" or
                          "Basic256Sha256_SignAndEncrypt"
    certificate           client certificate file (DER or PEM), needed with security
    private_key           client private key file (PEM), needed with security
    private_key_password_env  environment variable holding the key's password, if any
    server_certificate    the server's certificate file (pinned); without it the
                          certificate the server announces in its endpoints is used
    trusted_servers       folder of trusted server certificates (*.der / *.pem, or the
                          CAs that issued them): a server whose certificate is not
                          trusted there is refused (``untrusted_servers``). Without it
                          (and without a pin) any server certificate is accepted
    username              user name for a UserName identity token
    password_env          environment variable holding the password (never the password
                          itself in the config file)

Example::

    address: {security: Basic256Sha256_SignAndEncrypt, certificate: pki/agent.der,
              private_key: pki/agent.pem, trusted_servers: pki/trusted-servers,
              username: rg-agent, password_env: RG_OPCUA_PASSWORD, deadband: 0.5}
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from contracts.config import DeviceConfig
from drivers.base import BadConfig
from hardware.profiles import Point, Profile, load_profile

__all__ = ["OpcUaSettings", "SecuritySettings", "SECURITY_MODES", "settings_for"]

SECURITY_MODES = ("None", "Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt")


@dataclass(frozen=True)
class SecuritySettings:
    """Message security, client certificate and user identity of a session."""

    mode: str = "None"
    certificate: str | None = None
    private_key: str | None = None
    private_key_password: str | None = None
    server_certificate: str | None = None
    trusted_servers: str | None = None  # folder of trusted server certificates
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class OpcUaSettings:
    """Endpoint, namespace, node prefix, points and subscription parameters of one device."""

    endpoint: str
    namespace: str
    prefix: str  # string node ids are "<prefix>.<node>"; the device object is "<prefix>"
    timeout_s: float
    profile: Profile
    points: tuple[Point, ...]
    methods: dict[str, str]
    mode: str = "subscribe"
    publishing_ms: float = 1000.0
    sampling_ms: float = 1000.0
    queue_size: int = 1
    deadband: float = 0.0
    deadband_percent: float = 0.0
    keepalive_count: int = 10
    security: SecuritySettings = SecuritySettings()


def _number(device: DeviceConfig, key: str, default: float, low: float = 0.0) -> float:
    value = device.address.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
        raise BadConfig(f"{device.id}: address.{key} must be a number >= {low}, got {value!r}")
    return float(value)


def _text(device: DeviceConfig, key: str) -> str | None:
    value = device.address.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise BadConfig(f"{device.id}: address.{key} must be a non-empty string")
    return value


def _env(device: DeviceConfig, key: str) -> str | None:
    name = _text(device, key)
    if name is None:
        return None
    if name not in os.environ:
        raise BadConfig(f"{device.id}: address.{key}: environment variable {name} is not set")
    return os.environ[name]


def _security(device: DeviceConfig) -> SecuritySettings:
    mode = device.address.get("security", "None")
    if mode not in SECURITY_MODES:
        raise BadConfig(f"{device.id}: address.security {mode!r}: expected one of {SECURITY_MODES}")
    cert, key = _text(device, "certificate"), _text(device, "private_key")
    if mode != "None" and (cert is None or key is None):
        raise BadConfig(f"{device.id}: security {mode} needs address.certificate and private_key")
    for path in (cert, key, _text(device, "server_certificate")):
        if mode != "None" and path is not None and not os.path.isfile(path):
            raise BadConfig(f"{device.id}: no such file {path!r}")
    trusted = _text(device, "trusted_servers")
    if trusted is not None and mode == "None":
        raise BadConfig(f"{device.id}: address.trusted_servers needs a security mode")
    if trusted is not None and not os.path.isdir(trusted):
        raise BadConfig(f"{device.id}: address.trusted_servers: no such folder {trusted!r}")
    username = _text(device, "username")
    password = _env(device, "password_env")
    if username is None and password is not None:
        raise BadConfig(f"{device.id}: address.password_env without address.username")
    return SecuritySettings(
        mode=mode,
        certificate=cert,
        private_key=key,
        private_key_password=_env(device, "private_key_password_env"),
        server_certificate=_text(device, "server_certificate"),
        trusted_servers=trusted,
        username=username,
        password=password,
    )


def settings_for(device: DeviceConfig) -> OpcUaSettings:
    """Resolve endpoint, namespace, points and subscription/security; BadConfig names the problem."""
    if urlsplit(device.endpoint).scheme != "opc.tcp" or not urlsplit(device.endpoint).hostname:
        raise BadConfig(f"{device.id}: endpoint {device.endpoint!r}: expected opc.tcp://HOST:PORT")
    try:
        profile = load_profile(device.profile)
    except KeyError as exc:
        raise BadConfig(f"{device.id}: {exc.args[0]}") from None
    if profile.protocol != "opcua":
        raise BadConfig(
            f"{device.id}: profile {profile.name!r} is for {profile.protocol}, not opcua"
        )
    namespace = device.address.get("namespace") or profile.namespace
    if not namespace or not isinstance(namespace, str):
        raise BadConfig(f"{device.id}: no OPC-UA namespace in address.namespace or the profile")
    prefix = device.address.get("node_prefix", device.id)
    if not isinstance(prefix, str) or not prefix:
        raise BadConfig(f"{device.id}: address.node_prefix must be a non-empty string")
    points = tuple(profile.expanded())
    for p in points:
        if not p.node:
            raise BadConfig(f"{device.id}: point {p.key!r} of {profile.name!r} has no node")
    mode: Any = device.address.get("mode", "subscribe")
    if mode not in ("subscribe", "poll"):
        raise BadConfig(f"{device.id}: address.mode {mode!r}: expected 'subscribe' or 'poll'")
    publishing = _number(device, "publishing_interval_ms", min(device.interval_s, 1.0) * 1000, 10)
    return OpcUaSettings(
        endpoint=device.endpoint,
        namespace=namespace,
        prefix=prefix,
        timeout_s=device.timeout_s,
        profile=profile,
        points=points,
        methods=dict(profile.methods),
        mode=mode,
        publishing_ms=publishing,
        sampling_ms=_number(device, "sampling_interval_ms", publishing),
        queue_size=int(_number(device, "queue_size", 1, 1)),
        deadband=_number(device, "deadband", 0.0),
        deadband_percent=_number(device, "deadband_percent", 0.0),
        keepalive_count=int(_number(device, "keepalive_count", 10, 1)),
        security=_security(device),
    )
