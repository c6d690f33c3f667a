"""The relay's TLS policy in one place, so every listener and client agrees on it.

Failures to load certificate files are raised as `certs.lab.CertError`, the package's
one error type, so callers handle a bad identity the same way wherever it surfaces.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from certs.lab import CertError, ServerIdentity

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
# Applies to TLS 1.2 only: forward secrecy and AEAD. TLS 1.3 suites are all AEAD already.
SERVER_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"


def server_context(identity: ServerIdentity) -> ssl.SSLContext:
    """TLS 1.2+ (1.3 when the peer offers it), ECDHE+AEAD, no compression, tickets on.

    Phones open a new connection for every file they fetch; session tickets let those
    reconnects skip the full handshake.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = MINIMUM_VERSION
    context.set_ciphers(SERVER_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION
    context.options &= ~ssl.OP_NO_TICKET
    try:
        context.load_cert_chain(identity.cert, identity.key)
    except OSError as exc:
        raise CertError(
            f"cannot load {identity.cert} with {identity.key} ({exc.strerror or exc}); "
            f"delete both files and restart to issue a new server certificate"
        ) from exc
    return context


def client_context(cafile: Path | None = None) -> ssl.SSLContext:
    """Verifying client: trusts only `cafile` when given, else the system store."""
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=None if cafile is None else str(cafile)
        )
    except OSError as exc:
        raise CertError(
            f"cannot load CA certificates from {cafile} ({exc.strerror or exc}); "
            "pass the lab CA's ca.pem"
        ) from exc
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    context.minimum_version = MINIMUM_VERSION
    return context
