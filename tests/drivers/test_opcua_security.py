"""OPC-UA Basic256Sha256 Sign / SignAndEncrypt with client certificates generated here, a
server trust store that refuses an unknown client, and user name / password."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cryptography.x509.oid import ExtendedKeyUsageOID

from drivers import BadConfig, DriverError
from drivers.opcua import OpcUaDriver
from hardware.sim.opcua_server import ServerSecurity
from tests.drivers._opcua import CabinetServer, make_cert

SERVER_URI = "urn:freeopcua:python:server"  # asyncua's default server application URI


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pki")
    trusted = root / "trusted"
    trusted.mkdir()
    srv_cert, srv_key = make_cert(root, "server", SERVER_URI, ExtendedKeyUsageOID.SERVER_AUTH)
    cli_cert, cli_key = make_cert(
        root, "agent", "urn:rongguan:agent:test", ExtendedKeyUsageOID.CLIENT_AUTH
    )
    bad_cert, bad_key = make_cert(
        root, "stranger", "urn:rongguan:stranger", ExtendedKeyUsageOID.CLIENT_AUTH
    )
    (trusted / "agent.der").write_bytes(cli_cert.read_bytes())
    return {
        "trusted": trusted,
        "server_cert": srv_cert,
        "server_key": srv_key,
        "cert": cli_cert,
        "key": cli_key,
        "bad_cert": bad_cert,
        "bad_key": bad_key,
    }


def _server(pki: dict[str, Path]) -> CabinetServer:
    sec = ServerSecurity(
        pki["server_cert"], pki["server_key"], pki["trusted"], users={"rg-agent": "s3cret!"}
    )
    return CabinetServer(security=sec)


def _address(pki: dict[str, Path], mode: str, **extra: object) -> dict[str, object]:
    return {
        "security": mode,
        "certificate": str(pki["cert"]),
        "private_key": str(pki["key"]),
        "server_certificate": str(pki["server_cert"]),
        "username": "rg-agent",
        "password_env": "RG_TEST_OPCUA_PW",
        "publishing_interval_ms": 50,
        **extra,
    }


def test_sign_and_encrypt_and_sign_with_user_get_data(
    pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RG_TEST_OPCUA_PW", "s3cret!")

    async def main() -> None:
        srv = await _server(pki).start()
        try:
            for mode in ("Basic256Sha256_SignAndEncrypt", "Basic256Sha256_Sign"):
                drv = OpcUaDriver(srv.device(0, **_address(pki, mode)))
                await drv.connect()
                assert drv.subscribed
                rows = []
                for _ in range(100):
                    rows += await drv.read()
                    if {"voltage_l1", "circuit1_on"} <= {r.field for r in rows}:
                        break
                    await asyncio.sleep(0.05)
                assert {"voltage_l1", "circuit1_on"} <= {r.field for r in rows}, mode
                await drv.close()
        finally:
            await srv.stop()

    asyncio.run(asyncio.wait_for(main(), 40))


def test_untrusted_certificate_wrong_password_and_no_security_are_refused(
    pki: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RG_TEST_OPCUA_PW", "s3cret!")
    monkeypatch.setenv("RG_TEST_OPCUA_BAD", "guess")

    async def refused(drv: OpcUaDriver) -> str:
        with pytest.raises(DriverError) as err:
            await drv.connect()
        assert drv._client is None  # nothing left half-open
        return str(err.value)

    async def main() -> None:
        srv = await _server(pki).start()
        try:
            mode = "Basic256Sha256_SignAndEncrypt"
            stranger = _address(
                pki, mode, certificate=str(pki["bad_cert"]), private_key=str(pki["bad_key"])
            )
            msg = await refused(OpcUaDriver(srv.device(0, **stranger)))
            assert "Untrusted" in msg, msg
            wrong_pw = _address(pki, mode, password_env="RG_TEST_OPCUA_BAD")
            msg = await refused(OpcUaDriver(srv.device(0, **wrong_pw)))
            assert "IdentityToken" in msg or "UserAccessDenied" in msg, msg
            await refused(OpcUaDriver(srv.device(0)))  # no security offered by the server
        finally:
            await srv.stop()

    asyncio.run(asyncio.wait_for(main(), 40))


def test_security_config_errors_are_named(pki: dict[str, Path], tmp_path: Path) -> None:
    srv = CabinetServer()
    with pytest.raises(BadConfig, match="address.security"):
        OpcUaDriver(srv.device(0, security="Basic128"))
    with pytest.raises(BadConfig, match="needs address.certificate"):
        OpcUaDriver(srv.device(0, security="Basic256Sha256_Sign"))
    with pytest.raises(BadConfig, match="no such file"):
        OpcUaDriver(
            srv.device(
                0,
                security="Basic256Sha256_Sign",
                certificate=str(tmp_path / "missing.der"),
                private_key=str(pki["key"]),
            )
        )
    with pytest.raises(BadConfig, match="RG_TEST_UNSET_VAR"):
        OpcUaDriver(srv.device(0, username="u", password_env="RG_TEST_UNSET_VAR"))
    with pytest.raises(BadConfig, match="mode"):
        OpcUaDriver(srv.device(0, mode="push"))
