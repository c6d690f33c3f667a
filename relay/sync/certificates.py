"""A relay's own TLS certificate on the agent link (issue 7; docs/agent-link.md,
"Certificates").

The admin uploads a PFX for one relay; the cloud validates it, keeps the key
encrypted, and hands it to that relay's management agent (`RelayCertificate`);
the relay installs it, switches its listeners to it, and says what it serves
(`CertificateState`). Both sides build and check the messages here; every
`from_wire` enforces hard caps and raises only `SyncError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from relay.sync.messages import SyncError, _obj

MAX_CHAIN_PEM = 64 * 1024
MAX_KEY_PEM = 16 * 1024
MAX_ERROR = 1024

_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_ETAG = re.compile(r"[!#-~]{1,128}")
_ISO = re.compile(r"[0-9T:.+\-Z]{0,40}")


def _text(raw: Any, key: str, where: str, cap: int, pattern: re.Pattern[str] | None = None) -> str:
    value = raw.get(key, "")
    if not isinstance(value, str) or len(value) > cap:
        raise SyncError(f"{where}.{key} must be text of at most {cap} characters")
    if pattern is not None and value and pattern.fullmatch(value) is None:
        raise SyncError(f"{where}.{key} is malformed")
    return value


@dataclass(frozen=True, slots=True)
class RelayCertificate:
    """`GET /api/v1/agent/certificate`: what this relay must serve.

    `chain_pem` is the leaf first, then the intermediates up to the root; `key_pem`
    is the leaf's private key, unencrypted (the link itself is TLS and the relay
    stores it mode 0600). `fingerprint` is the sha256 of the leaf's DER, in hex.
    """

    etag: str
    chain_pem: str
    key_pem: str = field(repr=False)
    fingerprint: str = ""

    @classmethod
    def from_wire(cls, raw: object) -> RelayCertificate:
        r = _obj(raw, "certificate")
        etag = _text(r, "etag", "certificate", 128, _ETAG)
        chain = _text(r, "chain_pem", "certificate", MAX_CHAIN_PEM)
        key = _text(r, "key_pem", "certificate", MAX_KEY_PEM)
        fingerprint = _text(r, "fingerprint", "certificate", 64, _FINGERPRINT)
        if not etag or "-----BEGIN CERTIFICATE-----" not in chain or "PRIVATE KEY-----" not in key:
            raise SyncError("certificate needs an etag, a PEM chain and a PEM private key")
        if not fingerprint:
            raise SyncError("certificate.fingerprint is missing")
        return cls(etag, chain, key, fingerprint)

    def to_wire(self) -> dict[str, Any]:
        return {
            "etag": self.etag,
            "chain_pem": self.chain_pem,
            "key_pem": self.key_pem,
            "fingerprint": self.fingerprint,
        }


@dataclass(frozen=True, slots=True)
class CertificateState:
    """`PUT /api/v1/agent/certificate/status`: what the relay's listeners serve now.

    `serving` and `previous` are leaf fingerprints ("" for none; `previous` is what
    a rollback returns to); `error` says why the last delivered certificate was
    not installed ("" when it was).
    """

    serving: str
    not_after: str = ""
    previous: str = ""
    error: str = ""

    @classmethod
    def from_wire(cls, raw: object) -> CertificateState:
        r = _obj(raw, "state")
        return cls(
            serving=_text(r, "serving", "state", 64, _FINGERPRINT),
            not_after=_text(r, "not_after", "state", 40, _ISO),
            previous=_text(r, "previous", "state", 64, _FINGERPRINT),
            error=_text(r, "error", "state", MAX_ERROR),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "serving": self.serving,
            "not_after": self.not_after,
            "previous": self.previous,
            "error": self.error,
        }
