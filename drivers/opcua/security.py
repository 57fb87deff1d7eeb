"""Session security of the OPC-UA driver: Basic256Sha256 with a client certificate, users."""

from __future__ import annotations

from pathlib import Path

from asyncua import Client, ua
from asyncua.crypto import security_policies
from cryptography import x509

from drivers.opcua.config import SecuritySettings

__all__ = ["apply_security"]

_MODES = {
    "Basic256Sha256_Sign": ua.MessageSecurityMode.Sign,
    "Basic256Sha256_SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt,
}


async def apply_security(client: Client, sec: SecuritySettings) -> None:
    """Configure message security and the user identity on a client before connect()."""
    if sec.username is not None:
        client.set_user(sec.username)
        if sec.password is not None:
            client.set_password(sec.password)
    mode = _MODES.get(sec.mode)
    if mode is None:
        return
    assert sec.certificate is not None and sec.private_key is not None  # checked by settings_for
    # The server checks that our ApplicationUri is the URI in our certificate.
    uri = _certificate_uri(Path(sec.certificate).read_bytes())
    if uri:
        client.application_uri = uri
    await client.set_security(
        security_policies.SecurityPolicyBasic256Sha256,
        sec.certificate,
        sec.private_key,
        sec.private_key_password,
        sec.server_certificate,
        mode,
    )


def _certificate_uri(data: bytes) -> str | None:
    """The application URI (URI subject alternative name) of a DER or PEM certificate."""
    try:
        cert = (
            x509.load_pem_x509_certificate(data)
            if data.lstrip().startswith(b"-----")
            else x509.load_der_x509_certificate(data)
        )
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return None
    uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    return uris[0] if uris else None
