"""The agent's own check of the server: a trust store of server certificates (accepted /
refused with a clear, counted error) and the pinned certificate, with Basic256Sha256
SignAndEncrypt against the simulator's real asyncua server."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from drivers import BadConfig, DeviceUnavailable
from drivers.opcua import OpcUaDriver
from drivers.opcua import session as sessions
from drivers.opcua.security import UntrustedServer
from hardware.sim.opcua_server import ServerSecurity
from tests.drivers._opcua import CabinetServer, make_cert

SERVER_URI = "urn:freeopcua:python:server"  # asyncua's default server application URI
MODE = "Basic256Sha256_SignAndEncrypt"
SERVER = ExtendedKeyUsageOID.SERVER_AUTH


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pki")
    srv_cert, srv_key = make_cert(root, "server", SERVER_URI, SERVER)
    impostor, _ = make_cert(root, "impostor", SERVER_URI, SERVER)  # same URI, other key
    cli_cert, cli_key = make_cert(
        root, "agent", "urn:rongguan:agent:test", ExtendedKeyUsageOID.CLIENT_AUTH
    )
    return {
        "server_cert": srv_cert,
        "server_key": srv_key,
        "impostor": impostor,
        "cert": cli_cert,
        "key": cli_key,
    }


def _folder(tmp: Path, *certs: Path) -> Path:
    folder = tmp / "trusted-servers"
    folder.mkdir(exist_ok=True)
    for cert in certs:
        shutil.copy(cert, folder / cert.name)
    return folder


def _device(srv: CabinetServer, pki: dict[str, Path], **extra: object) -> OpcUaDriver:
    address = {
        "security": MODE,
        "certificate": str(pki["cert"]),
        "private_key": str(pki["key"]),
        "publishing_interval_ms": 50,
        **extra,
    }
    return OpcUaDriver(srv.device(0, **address))


async def _data(drv: OpcUaDriver) -> set[str]:
    assert drv.changed is not None
    fields: set[str] = set()
    while "voltage_l1" not in fields:
        await asyncio.wait_for(drv.changed.wait(), 10)
        fields |= {r.field for r in await drv.read()}
    return fields


def test_server_in_the_trust_store_is_accepted_and_a_stranger_refused(
    pki: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sessions, "RETRY_GAP_S", 0.0)  # retry at once after the refusal

    async def main() -> None:
        sec = ServerSecurity(pki["server_cert"], pki["server_key"])
        srv = await CabinetServer(security=sec).start()
        try:
            # The folder trusts another server only: this one is refused before any user
            # credential is sent, with a reason that names the certificate and the folder.
            folder = _folder(tmp_path, pki["impostor"])
            drv = _device(srv, pki, trusted_servers=str(folder))
            with pytest.raises(UntrustedServer) as err:
                await drv.connect()
            msg = str(err.value)
            assert "BadCertificateUntrusted" in msg and str(folder) in msg, msg
            assert "CN=server" in msg, msg
            assert isinstance(err.value, DeviceUnavailable)  # the supervisor retries
            assert drv.stats()["untrusted_servers"] == 1 and drv._client is None
            # The operator trusts it: the next connect reads the folder again and succeeds.
            _folder(tmp_path, pki["server_cert"])
            await drv.connect()
            assert drv.subscribed and "voltage_l1" in await _data(drv)
            assert drv.stats()["untrusted_servers"] == 1
            await drv.close()
        finally:
            await srv.stop()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_pinned_certificate_and_trust_store_together(
    pki: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sessions, "RETRY_GAP_S", 0.0)

    async def main() -> None:
        sec = ServerSecurity(pki["server_cert"], pki["server_key"])
        srv = await CabinetServer(security=sec).start()
        try:
            folder = str(_folder(tmp_path, pki["server_cert"]))
            ok = _device(
                srv, pki, server_certificate=str(pki["server_cert"]), trusted_servers=folder
            )
            await ok.connect()
            assert "voltage_l1" in await _data(ok)
            await ok.close()
            # Pinned to another certificate: the server cannot be talked to, trusted or not.
            pinned = _device(
                srv, pki, server_certificate=str(pki["impostor"]), trusted_servers=folder
            )
            with pytest.raises(UntrustedServer) as err:
                await pinned.connect()
            msg = str(err.value)
            assert "is not the pinned server_certificate" in msg and "impostor" in msg, msg
            assert pinned.stats()["untrusted_servers"] == 1 and pinned._client is None
        finally:
            await srv.stop()

    asyncio.run(asyncio.wait_for(main(), 60))


def test_trust_store_config_errors_are_named(pki: dict[str, Path], tmp_path: Path) -> None:
    srv = CabinetServer()
    with pytest.raises(BadConfig, match="trusted_servers needs a security mode"):
        OpcUaDriver(srv.device(0, trusted_servers=str(tmp_path)))
    with pytest.raises(BadConfig, match="no such folder"):
        _device(srv, pki, trusted_servers=str(tmp_path / "missing"))
