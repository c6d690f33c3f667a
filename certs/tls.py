"""The relay's TLS policy in one place, so every listener and client agrees on it.

Issue 7, "TLS policy": TLS 1.2 and 1.3 only, strong ciphers, ECDSA preferred, session
tickets on; clients verify the peer against a pinned CA or the system store. The one
exception, named and confined here, is `phone_rest_context` for phones' self-signed REST
endpoints. tests/certs/test_tls_policy.py holds every other module to this.

What Python 3.11's ssl module lets us set, and what it does not:

- Versions: `minimum_version` and `maximum_version` (SSL_CTX_set_min/max_proto_version).
- TLS 1.2 suites: `set_ciphers` (ECDHE for forward secrecy, AEAD only: RFC 7525 section
  4.2), ECDSA suites listed before RSA ones, and the server's order wins
  (OP_CIPHER_SERVER_PREFERENCE). TLS 1.3 suites (RFC 8446 section 9.1: all AEAD) cannot be
  chosen: there is no binding for SSL_CTX_set_ciphersuites, so OpenSSL's defaults apply.
- Signature algorithms: no binding for SSL_CTX_set1_sigalgs_list. OpenSSL's default list
  already names ECDSA first, and with OP_CIPHER_SERVER_PREFERENCE a server holding both an
  ECDSA and an RSA certificate picks by its own order, so ECDSA is preferred in TLS 1.3 as
  in 1.2. With the one certificate a listener holds, its key type decides.
- Key-exchange groups: only `set_ecdh_curve` (one curve), which would drop X25519; the
  defaults (X25519, P-256, X448, P-521, P-384) are kept.
- Resumption: TLS 1.3 tickets (`num_tickets`, RFC 8446 section 4.6.1) and TLS 1.2 tickets
  (RFC 5077; OP_NO_TICKET cleared) plus the server's session cache. Each context has its
  own ticket key, so tickets do not outlive the context that issued them.

Failures to load certificate files are raised as `certs.lab.CertError`, the package's one
error type, so callers handle a bad identity the same way wherever it surfaces.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from certs.lab import CertError, ServerIdentity

MINIMUM_VERSION = ssl.TLSVersion.TLSv1_2
MAXIMUM_VERSION = ssl.TLSVersion.TLSv1_3
# TLS 1.2 only (an OpenSSL cipher string, nginx's `ssl_ciphers` too): ECDHE + AEAD, ECDSA
# certificates' suites first.
SERVER_CIPHERS = "ECDHE+ECDSA+AESGCM:ECDHE+ECDSA+CHACHA20:ECDHE+aRSA+AESGCM:ECDHE+aRSA+CHACHA20"
# Phones open a new connection for every file: two tickets per handshake (OpenSSL's
# default, stated) let a phone resume twice before it needs a new one.
TLS13_TICKETS = 2


def server_context(identity: ServerIdentity) -> ssl.SSLContext:
    """TLS 1.2-1.3, ECDHE+AEAD with ECDSA first, no compression, tickets on.

    Phones open a new connection for every file they fetch; session tickets let those
    reconnects skip the full handshake.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _versions_and_ciphers(context)
    context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    # Client-initiated TLS 1.2 renegotiation costs the server a full handshake on demand.
    context.options |= ssl.OP_NO_RENEGOTIATION
    context.options &= ~ssl.OP_NO_TICKET
    context.num_tickets = TLS13_TICKETS
    try:
        context.load_cert_chain(identity.cert, identity.key)
    except OSError as exc:
        raise CertError(
            f"cannot load {identity.cert} with {identity.key} ({exc.strerror or exc}); "
            f"delete both files and restart to issue a new server certificate"
        ) from exc
    return context


def client_context(cafile: Path | None = None) -> ssl.SSLContext:
    """Verifying client: trusts only `cafile` when given, else the system store; checks
    the host name (RFC 6125)."""
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
    _versions_and_ciphers(context)
    return context


def phone_rest_context() -> ssl.SSLContext:
    """THE exception to verification: a phone's REST API (spec phones.md section 4) answers
    with a self-signed certificate no CA vouches for, so this client verifies nothing.

    Only management_agent.phone_client may use it. TLS 1.2-1.3 still; the cipher list is
    OpenSSL's default, not ours, since phone firmware is not ours to choose.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = MINIMUM_VERSION
    context.maximum_version = MAXIMUM_VERSION
    return context


def _versions_and_ciphers(context: ssl.SSLContext) -> None:
    context.minimum_version = MINIMUM_VERSION
    context.maximum_version = MAXIMUM_VERSION
    context.set_ciphers(SERVER_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION
