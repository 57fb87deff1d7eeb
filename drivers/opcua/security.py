"""Session security of the OPC-UA driver: Basic256Sha256 with a client certificate, users,
and the client's own check of the server's certificate (pin and/or trust store).

Who checks what::

    server_certificate (pin)  the certificate the server announces (GetEndpoints) must be
                              this one, or UntrustedServer names both; the channel is then
                              encrypted to the pin and asyncua refuses a session whose
                              certificate differs
    trusted_servers (folder)  ServerTrust validates the certificate the server presents in
                              CreateSession (trusted directly or by an issuing CA in the
                              folder, in its validity period, URI = the server's URI)
                              before any user password is sent; refused: UntrustedServer
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from asyncua import Client, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto import security_policies, uacrypto
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from drivers.base import DeviceUnavailable
from drivers.opcua.config import SecuritySettings

__all__ = ["apply_security", "ServerTrust", "UntrustedServer"]

_MODES = {
    "Basic256Sha256_Sign": ua.MessageSecurityMode.Sign,
    "Basic256Sha256_SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt,
}
_CHECKS = (
    CertificateValidatorOptions.TIME_RANGE
    | CertificateValidatorOptions.URI
    | CertificateValidatorOptions.TRUSTED
    | CertificateValidatorOptions.REVOKED
    | CertificateValidatorOptions.PEER_SERVER
)


class UntrustedServer(DeviceUnavailable):
    """The server's certificate is not trusted by the client's trust store."""


class ServerTrust:
    """Validates the server certificate against a folder of trusted certificates; keeps why
    it refused one, so the session can raise a clear error instead of a bare status."""

    def __init__(self, folder: str):
        self.folder = folder
        self.rejected: str | None = None

    async def __call__(self, cert: x509.Certificate, app: ua.ApplicationDescription) -> None:
        # The folder is read on every connect: a certificate added by the operator is
        # trusted at the next retry, without restarting the agent.
        store = TrustStore([Path(self.folder)], [])
        await store.load_trust()
        try:
            await CertificateValidator(_CHECKS, store).validate(cert, app)
        except ServiceError as exc:
            status = ua.StatusCode(ua.UInt32(exc.code)).name
            self.rejected = (
                f"server certificate {_describe(cert)} of {app.ApplicationUri!r} refused: "
                f"{status} by trusted_servers {self.folder!r}"
            )
            raise

    def error(self) -> UntrustedServer | None:
        """The refusal as the driver's error, if this check refused the server."""
        return None if self.rejected is None else UntrustedServer(self.rejected)


async def apply_security(client: Client, sec: SecuritySettings) -> ServerTrust | None:
    """Configure message security, the server check and the user identity on a client
    before connect(); returns the trust check when a trust store is configured."""
    if sec.username is not None:
        client.set_user(sec.username)
        if sec.password is not None:
            client.set_password(sec.password)
    mode = _MODES.get(sec.mode)
    if mode is None:
        return None
    assert sec.certificate is not None and sec.private_key is not None  # checked by settings_for
    # The server checks that our ApplicationUri is the URI in our certificate.
    uri = _certificate_uri(Path(sec.certificate).read_bytes())
    if uri:
        client.application_uri = uri
    if sec.server_certificate is not None:
        await _check_pin(client, sec.server_certificate, mode)
    trust = None
    if sec.trusted_servers is not None:
        trust = ServerTrust(sec.trusted_servers)
        client.certificate_validator = trust
    await client.set_security(
        security_policies.SecurityPolicyBasic256Sha256,
        sec.certificate,
        sec.private_key,
        sec.private_key_password,
        sec.server_certificate,
        mode,
    )
    return trust


async def _check_pin(client: Client, pin: str, mode: ua.MessageSecurityMode) -> None:
    # Without this a server with another certificate cannot decrypt our channel request
    # and never answers: a bare timeout, where the operator needs to see the mismatch.
    pinned = _load(Path(pin).read_bytes())
    endpoints = await client.connect_and_get_server_endpoints()
    policy = security_policies.SecurityPolicyBasic256Sha256.URI
    try:
        announced = Client.find_endpoint(endpoints, mode, policy).ServerCertificate or b""
    except ua.UaError:
        raise DeviceUnavailable(f"the server offers no {mode.name} {policy} endpoint") from None
    der = pinned.public_bytes(Encoding.DER)
    if announced[: len(der)] != der:  # DER is self-delimiting: the chain's first certificate
        got = _describe(_load(announced)) if announced else "(none)"
        raise UntrustedServer(
            f"server certificate {got} is not the pinned server_certificate {pin!r} "
            f"{_describe(pinned)}"
        )


def _describe(cert: x509.Certificate) -> str:
    """Subject and SHA-1 thumbprint, as certificate tools show them."""
    thumb = hashlib.sha1(cert.public_bytes(Encoding.DER)).hexdigest()  # noqa: S324
    return f"{cert.subject.rfc4514_string()!r} (SHA-1 {thumb})"


def _load(data: bytes) -> x509.Certificate:
    """A DER or PEM certificate (the first of a DER chain)."""
    if data.lstrip().startswith(b"-----"):
        return x509.load_pem_x509_certificate(data)
    cert = uacrypto.x509_from_der(data)
    if cert is None:
        raise ValueError("empty certificate")
    return cert


def _certificate_uri(data: bytes) -> str | None:
    """The application URI (URI subject alternative name) of a DER or PEM certificate."""
    try:
        cert = _load(data)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None
