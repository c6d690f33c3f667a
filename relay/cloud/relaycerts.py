"""Each relay's own TLS certificate: uploaded as a PFX, validated, kept with its key
sealed, and delivered to that relay over the agent link (issue 7; docs/agent-link.md
"Certificates").

The admin uploads a PFX, its password and the FQDNs phones use; `certs.validate` judges
it against the device-management guide's rules (the same check as `relay certs check`).
A refused PFX stores nothing and is audited with its finding codes. An accepted one
becomes the relay's pending certificate: the chain in PEM and the private key sealed
(relay.cloud.secretbox). The PFX password opens the file once, at upload, and is never
stored, logged or returned. The relay's agent fetches the certificate by etag, installs
it and reports what it serves; the admin reads the state from that report.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import ipaddress
import json
import logging
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from certs.validate import MAX_PFX_BYTES, Report, validate_pfx
from relay.cloud.context import Context, not_found
from relay.cloud.relays import iso
from relay.cloud.rules.errors import RuleError
from relay.cloud.secretbox import SecretBox, SecretError
from relay.cloud.store.store import Row
from relay.logs import event
from relay.sync.certificates import CertificateState, RelayCertificate

log = logging.getLogger("cloud.relaycerts")

# Base64 is 4 characters per 3 bytes; the rest is room for line breaks.
MAX_PFX_TEXT = 2 * MAX_PFX_BYTES
MAX_PASSWORD_CHARS = 1024
MAX_FQDNS = 32
MAX_FQDN_CHARS = 253
UPLOAD_KEYS = frozenset({"pfx", "password", "fqdns"})
STATES = ("none", "pending", "installed", "failed")
# RFC 1123 2.1 host names; a relay's registered name counts as its FQDN only when it
# has at least two labels (phones cannot reach "relay-1" by that name through DNS).
_DNS_NAME = re.compile(r"(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{1,63}")
_PKCS12_KEYS = (
    rsa.RSAPrivateKey,
    ec.EllipticCurvePrivateKey,
    dsa.DSAPrivateKey,
    ed25519.Ed25519PrivateKey,
    ed448.Ed448PrivateKey,
)


@dataclass(frozen=True, slots=True)
class Upload:
    """`PUT /api/v1/relays/{id}/certificate`, parsed; `fqdns` empty means "the relay's
    known name"."""

    pfx: bytes = field(repr=False)
    password: str | None = field(repr=False)
    fqdns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Delivery:
    """The agent's answer: `certificate` None means "unchanged" (304)."""

    etag: str
    certificate: RelayCertificate | None


def _bad(message: str, where: str) -> RuleError:
    return RuleError("invalid_body", message, where, 400)


def parse_upload(raw: object) -> Upload:
    """The upload body, with caps; every problem is a RuleError (400, or 413 for a pfx
    over the cap) naming the field and never quoting the password."""
    if not isinstance(raw, dict):
        raise _bad(
            'the body must be {"pfx": "<base64>", "password": "...", "fqdns": [...]}', "body"
        )
    unknown = sorted(str(k) for k in raw if k not in UPLOAD_KEYS)
    if unknown:
        raise _bad(f"unknown key(s) {', '.join(unknown)[:200]}; use pfx, password, fqdns", "body")
    text = raw.get("pfx")
    if not isinstance(text, str):
        raise _bad("pfx must be the PFX file in base64 (e.g. `base64 -w0 relay.pfx`)", "pfx")
    if len(text) > MAX_PFX_TEXT:
        raise RuleError(
            "too_large",
            f"pfx is {len(text)} characters; a relay PFX is at most {MAX_PFX_BYTES} bytes "
            f"(in base64, {MAX_PFX_TEXT} characters): choose the PFX exported for this relay",
            "pfx",
            413,
        )
    try:
        pfx = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise _bad("pfx is not base64; send the file as `base64 -w0 relay.pfx`", "pfx") from exc
    password = raw.get("password")
    if password is not None and (
        not isinstance(password, str) or len(password) > MAX_PASSWORD_CHARS
    ):
        raise _bad(f"password must be text of at most {MAX_PASSWORD_CHARS} characters", "password")
    return Upload(pfx, password, _parse_fqdns(raw.get("fqdns")))


def _parse_fqdns(raw: object) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or len(raw) > MAX_FQDNS:
        raise _bad(f"fqdns must be a list of at most {MAX_FQDNS} names", "fqdns")
    names: list[str] = []
    for item in raw:
        if not isinstance(item, str) or not 0 < len(item.strip()) <= MAX_FQDN_CHARS:
            raise _bad(f"each of fqdns must be a name of 1 to {MAX_FQDN_CHARS} characters", "fqdns")
        names.append(item.strip())
    return tuple(dict.fromkeys(names))


def known_fqdns(relay_name: str) -> tuple[str, ...]:
    """The relay's registered name, when it is a DNS name phones could use (not an IP
    address, at least two labels)."""
    name = relay_name.strip().rstrip(".").lower()
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return (name,) if _DNS_NAME.fullmatch(name) else ()
    return ()


def certificate_state(fingerprint: str, delivered: bool, serving: str, error: str) -> str:
    """installed once the relay reports serving this certificate; failed when the relay,
    having fetched it, reports why it did not install it; pending until then."""
    if serving == fingerprint:
        return "installed"
    if delivered and error:
        return "failed"
    return "pending"


def order_chain(
    leaf: x509.Certificate, others: Sequence[x509.Certificate]
) -> list[x509.Certificate]:
    """Leaf first, then each issuer up to the root (RFC 8446 4.4.2: the sender's
    certificate first, each following one certifying the one before it); certificates
    outside the chain are dropped, as the validator ignores them."""
    chain = [leaf]
    remaining = list(others)
    while chain[-1].issuer != chain[-1].subject:
        issuer = next((c for c in remaining if _issued(chain[-1], c)), None)
        if issuer is None:
            break
        chain.append(issuer)
        remaining.remove(issuer)
    return chain


def _issued(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def fingerprint_of(cert: x509.Certificate) -> str:
    """sha256 of the DER, lowercase hex: `RelayCertificate.fingerprint`."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _utc(when: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(when, dt.UTC)


def _associated(relay_id: str, fingerprint: str) -> bytes:
    """Binds a sealed key to its relay and certificate (secretbox's associated data)."""
    return f"relay-certificate/{relay_id}/{fingerprint}".encode()


class RelayCerts:
    def __init__(self, ctx: Context, box: SecretBox) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.box = box

    def _relay(self, relay_id: str) -> Row:
        row = self.store.relay(relay_id)
        if row is None:
            raise not_found("relay", relay_id)
        return row

    # -- the admin's side ------------------------------------------------------

    def upload(self, relay_id: str, body: object, actor: str) -> Report:
        """`PUT /api/v1/relays/{id}/certificate`: the validation report; the certificate
        becomes the relay's pending one only when the report is ok."""
        relay = self._relay(relay_id)
        upload = parse_upload(body)
        fqdns = upload.fqdns or known_fqdns(relay["name"])
        if not fqdns:
            raise RuleError(
                "fqdns_required",
                f"relay {relay_id!r} has no known FQDN (its name is {relay['name']!r}); pass "
                'the names phones use to reach it: "fqdns": ["relay.branch.example"]',
                "fqdns",
                400,
            )
        now = self.ctx.now()
        report = validate_pfx(upload.pfx, upload.password, fqdns, _utc(now))
        target = f"relay/{relay_id}/certificate"
        if not report.ok:
            codes = [f.code for f in report.errors]
            self.ctx.log(actor, "upload_refused", target, errors=codes, fqdns=list(fqdns))
            event(log, "relay_certificate_refused", logging.WARNING, relay=relay_id, errors=codes)
            return report
        row = self._sealed_row(relay_id, upload, now, actor)
        with self.store.transaction():
            self.store.put_relay_certificate({**row, "fqdns": json.dumps(list(fqdns))})
            self.store.clear_relay_certificate_error(relay_id)
        warnings = [f.code for f in report.warnings]
        self.ctx.log(
            actor,
            "upload",
            target,
            fingerprint=row["fingerprint"],
            not_after=row["not_after"],
            fqdns=list(fqdns),
            warnings=warnings,
        )
        event(
            log,
            "relay_certificate_uploaded",
            logging.INFO,
            relay=relay_id,
            fingerprint=row["fingerprint"],
            warnings=warnings,
        )
        return report

    def _sealed_row(self, relay_id: str, upload: Upload, now: float, actor: str) -> Row:
        """The chain in order and the key sealed, from a PFX the validator accepted (so it
        opens with this password and holds one key matching its certificate)."""
        secret = None if upload.password is None else upload.password.encode()
        loaded = pkcs12.load_pkcs12(upload.pfx, secret)
        assert loaded.cert is not None and loaded.key is not None
        leaf = loaded.cert.certificate
        chain = order_chain(leaf, [c.certificate for c in loaded.additional_certs])
        key_pem = loaded.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fingerprint = fingerprint_of(leaf)
        return {
            "relay_id": relay_id,
            "etag": secrets.token_hex(16),
            "fingerprint": fingerprint,
            "not_after": leaf.not_valid_after_utc.isoformat(),
            "chain_pem": b"".join(
                c.public_bytes(serialization.Encoding.PEM) for c in chain
            ).decode(),
            "key_sealed": self.box.seal(key_pem, _associated(relay_id, fingerprint)),
            "uploaded": now,
            "uploaded_by": actor,
        }

    def view(self, relay_id: str) -> dict[str, Any]:
        """`GET /api/v1/relays/{id}/certificate`: the summary and the validation report,
        judged again against the clock now (a certificate expires while stored)."""
        summary = self.summary(relay_id)
        row = self.store.relay_certificate(relay_id)
        if row is None:
            return summary
        return {"report": self._report(row).as_json(), **summary}

    def summary(self, relay_id: str) -> dict[str, Any]:
        """The state without the report (`certificate` in `GET /api/v1/relays/{id}`)."""
        self._relay(relay_id)
        row = self.store.relay_certificate(relay_id)
        if row is None:
            return {"state": "none"}
        reported = self.store.relay_certificate_state(relay_id) or {}
        serving = str(reported.get("serving", ""))
        error = str(reported.get("error", ""))
        delivered = row["delivered"] is not None or serving == row["fingerprint"]
        return {
            "state": certificate_state(row["fingerprint"], delivered, serving, error),
            "fingerprint": row["fingerprint"],
            "not_after": row["not_after"],
            "fqdns": json.loads(row["fqdns"]),
            "uploaded": iso(row["uploaded"]),
            "uploaded_by": row["uploaded_by"],
            "delivered": delivered,
            "serving": serving,
            "previous": str(reported.get("previous", "")),
            "error": error,
        }

    def _report(self, row: Row) -> Report:
        """Rebuilt as a password-less PFX from what is stored, and validated again."""
        chain = x509.load_pem_x509_certificates(row["chain_pem"].encode())
        key = serialization.load_pem_private_key(self._key_pem(row), None)
        if not isinstance(key, _PKCS12_KEYS):
            raise RuleError(
                "certificate_unreadable", "the stored key has an unknown type", None, 500
            )
        pfx = pkcs12.serialize_key_and_certificates(
            None, key, chain[0], chain[1:], serialization.NoEncryption()
        )
        return validate_pfx(pfx, None, json.loads(row["fqdns"]), _utc(self.ctx.now()))

    def _key_pem(self, row: Row) -> bytes:
        try:
            return self.box.open(
                row["key_sealed"], _associated(row["relay_id"], row["fingerprint"])
            )
        except SecretError as exc:
            event(log, "relay_certificate_unreadable", logging.ERROR, relay=row["relay_id"])
            raise RuleError(
                "certificate_unreadable",
                f"the stored key cannot be opened ({exc}); upload the PFX again",
                None,
                409,
            ) from exc

    def delete(self, relay_id: str, actor: str) -> None:
        """`DELETE /api/v1/relays/{id}/certificate`: the agent gets 404 and the relay goes
        back to its own certificate."""
        self._relay(relay_id)
        if self.store.delete_relay_certificate(relay_id):
            self.ctx.log(actor, "delete", f"relay/{relay_id}/certificate")
            event(log, "relay_certificate_deleted", logging.INFO, relay=relay_id)

    # -- the agent's side ------------------------------------------------------

    def deliver(self, relay_id: str, known: frozenset[str]) -> Delivery | None:
        """`GET /api/v1/agent/certificate`: None when the relay has no uploaded
        certificate; unchanged when `known` (If-None-Match) holds the current etag
        (RFC 9110 13.1.2). Either answer means the relay now has this upload."""
        row = self.store.relay_certificate(relay_id)
        if row is None:
            return None
        etag = str(row["etag"])
        certificate = None
        if etag not in known and "*" not in known:
            key_pem = self._key_pem(row).decode()
            certificate = RelayCertificate(etag, row["chain_pem"], key_pem, row["fingerprint"])
        with self.store.transaction():
            first = self.store.mark_relay_certificate_delivered(relay_id, etag, self.ctx.now())
            if first:
                # A failure reported before this delivery was about another certificate.
                self.store.clear_relay_certificate_error(relay_id)
        if first:
            event(log, "relay_certificate_delivered", logging.INFO, relay=relay_id, etag=etag)
        return Delivery(etag, certificate)

    def receive_state(self, relay_id: str, state: CertificateState) -> str:
        """`PUT /api/v1/agent/certificate/status`: the relay's latest report replaces its
        last. Returns the current etag ("" without a certificate), so the agent learns of
        an upload or a delete with every report."""
        with self.store.transaction():
            self._relay(relay_id)
            self.store.put_relay_certificate_state(relay_id, state.to_wire(), self.ctx.now())
            row = self.store.relay_certificate(relay_id)
        if state.error:
            event(
                log,
                "relay_certificate_not_installed",
                logging.WARNING,
                relay=relay_id,
                error=state.error,
            )
        return "" if row is None else str(row["etag"])
