"""Is a PFX fit to be a relay's certificate? Every rule, the finding it gives, and the fix.

The rules are the device-management guide's (seed 002, "Securing Polycom Cloud Relays",
"Certificate Requirements"): a PFX with the full chain; Extended Key Usage Server
Authentication; the FQDN phones use in the subject CN or a SAN DNS name, every relay's
FQDN when several share one certificate; no IP address as CN or SAN; a private CA only
with its root installed on the phones. The appliance adds what makes phones fail later:
the key matches, every certificate of the chain is within its validity, keys are strong.

Decisions the guide leaves open:
- A certificate without an EKU extension is `eku_missing`: RFC 5280 4.2.1.12 would let it
  serve any purpose, but the guide requires Server Authentication to be listed.
- Several private keys are `no_key` ("export exactly one"): a PFX has no way to say which
  key the relay should serve. Key bags are counted where exporters put them (plain data
  safes); one hidden in an encrypted safe is seen only through the key OpenSSL returns.
- A chain out of order is reordered without a finding; certificates outside the chain
  are ignored.
- A name found only in the subject CN is accepted (the guide allows CN or SAN) with the
  warning `fqdn_only_in_cn`, because browsers and current TLS libraries ignore the CN.

The function is pure apart from reading the system trust store once (to tell a private
CA from a public one) when the caller does not pass the roots to compare with.
"""

from __future__ import annotations

import base64
import binascii
import functools
import ipaddress
import ssl
import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from certs.lab import CERT_PARSE_ERRORS

# What opening a PFX, and reading the system's CA bundle, may raise on bad input.
_PFX_ERRORS: tuple[type[Exception], ...] = (*CERT_PARSE_ERRORS, TypeError, UnsupportedAlgorithm)
_BUNDLE_ERRORS: tuple[type[Exception], ...] = (OSError, *CERT_PARSE_ERRORS)

MAX_PFX_BYTES = 256 * 1024
EXPIRY_WARNING = timedelta(days=30)
MIN_RSA_BITS = 2048
MIN_EC_BITS = 256
CUSTOM_CA_PARAMETER = "device.sec.TLS.customCaCert1"
EXPORT_COMMAND = (
    "openssl pkcs12 -export -in server.pem -inkey server.key -certfile chain.pem -out relay.pfx"
)
FULL_CHAIN_HINT = (
    "export the PFX again with the whole chain up to the root (Windows: 'Include all "
    "certificates in the certification path'; openssl: -certfile with the intermediates "
    "and the root)"
)
ANY_EKU = x509.ObjectIdentifier("2.5.29.37.0")
EKU_NAMES = {
    ExtendedKeyUsageOID.SERVER_AUTH: "Server Authentication",
    ExtendedKeyUsageOID.CLIENT_AUTH: "Client Authentication",
    ExtendedKeyUsageOID.CODE_SIGNING: "Code Signing",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "Secure Email",
    ExtendedKeyUsageOID.TIME_STAMPING: "Time Stamping",
    ExtendedKeyUsageOID.OCSP_SIGNING: "OCSP Signing",
    ANY_EKU: "Any Purpose",
}
EC_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}

# DER of the object identifiers the key-bag count looks for (RFC 7292 4.2, PKCS #7 data).
_OID_DATA = bytes.fromhex("2a864886f70d010701")
_OID_KEY_BAGS = (
    bytes.fromhex("2a864886f70d010c0a0101"),  # keyBag
    bytes.fromhex("2a864886f70d010c0a0102"),  # pkcs8ShroudedKeyBag
)
_SEQUENCE, _INTEGER, _OCTET_STRING, _OID, _EXPLICIT_0 = 0x30, 0x02, 0x04, 0x06, 0xA0


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem (or warning) and, in the same sentence, what to do about it."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class CertificateFacts:
    """What the PFX holds, for display beside the findings."""

    subject: str
    common_name: str | None
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    issuer: str
    not_before: datetime
    not_after: datetime
    key: str
    sha256: str
    chain: tuple[str, ...]
    chain_complete: bool
    private_ca: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "common_name": self.common_name,
            "dns_names": list(self.dns_names),
            "ip_addresses": list(self.ip_addresses),
            "issuer": self.issuer,
            "not_before": self.not_before.isoformat(),
            "not_after": self.not_after.isoformat(),
            "key": self.key,
            "sha256": self.sha256,
            "chain": list(self.chain),
            "chain_complete": self.chain_complete,
            "private_ca": self.private_ca,
        }


@dataclass(frozen=True, slots=True)
class Report:
    """The verdict: usable (`ok`) only without errors; warnings never block."""

    errors: tuple[Finding, ...]
    warnings: tuple[Finding, ...]
    certificate: CertificateFacts | None

    @property
    def ok(self) -> bool:
        return not self.errors

    def as_json(self) -> dict[str, Any]:
        """The `relay certs check --json` contract (issue 7), plus the certificate facts."""
        return {
            "ok": self.ok,
            "errors": [{"code": f.code, "message": f.message} for f in self.errors],
            "warnings": [{"code": f.code, "message": f.message} for f in self.warnings],
            "certificate": None if self.certificate is None else self.certificate.as_json(),
        }


@dataclass(frozen=True, slots=True)
class _Opened:
    key_count: int
    has_key: bool
    cert: x509.Certificate | None
    others: tuple[x509.Certificate, ...]


@dataclass
class _Findings:
    errors: list[Finding]
    warnings: list[Finding]

    def error(self, code: str, message: str) -> None:
        self.errors.append(Finding(code, message))

    def warn(self, code: str, message: str) -> None:
        self.warnings.append(Finding(code, message))


def validate_pfx(
    data: bytes,
    password: str | None,
    fqdns: Sequence[str],
    now: datetime,
    *,
    trusted_roots: Collection[x509.Certificate] | None = None,
) -> Report:
    """Check `data` (a PFX) against every relay certificate rule; never raises on bad data.

    `trusted_roots` are the public roots a chain must end in to need no `private_ca`
    warning; by default the system trust store.
    """
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got naive {now.isoformat()}")
    opened = _open(data, password)
    if isinstance(opened, Finding):
        return Report(errors=(opened,), warnings=(), certificate=None)
    roots = system_roots() if trusted_roots is None else trusted_roots
    try:
        return _analyse(opened, fqdns, now.astimezone(UTC), roots)
    except (ValueError, UnsupportedAlgorithm) as exc:
        # cryptography parses extensions lazily: a malformed one surfaces only here.
        return Report(
            errors=(
                Finding(
                    "not_pkcs12",
                    f"a certificate inside the PFX is malformed ({exc}); have the CA issue "
                    "it again and export a new PFX",
                ),
            ),
            warnings=(),
            certificate=None,
        )


def _open(data: bytes, password: str | None) -> _Opened | Finding:
    """Load the PFX, or say precisely why it is not one (RFC 7292)."""
    if len(data) > MAX_PFX_BYTES:
        return Finding(
            "not_pkcs12",
            f"the file is {len(data)} bytes; a relay PFX holds one certificate chain and is "
            f"at most {MAX_PFX_BYTES} bytes: choose the PFX exported for this relay",
        )
    secret = None if password is None else password.encode()
    try:
        with warnings.catch_warnings():
            # Old CAs' negative serial numbers: a deprecation in cryptography, not a finding.
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            loaded = pkcs12.load_pkcs12(data, secret)
    except _PFX_ERRORS:
        return _why_unreadable(data, password)
    certs = [c.certificate for c in loaded.additional_certs]
    has_key = loaded.key is not None
    counted = _key_bag_count(data) or 0
    return _Opened(
        key_count=max(counted, 1) if has_key else 0,
        has_key=has_key,
        cert=None if loaded.cert is None else loaded.cert.certificate,
        others=tuple(certs),
    )


def _why_unreadable(data: bytes, password: str | None) -> Finding:
    stripped = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped:
        return Finding(
            "not_pkcs12",
            f"the file is empty; export the certificate with its key as a PFX, e.g. "
            f"`{EXPORT_COMMAND}`",
        )
    if stripped.startswith(b"-----BEGIN"):
        label = stripped[11 : stripped.find(b"-----", 11)].decode("ascii", "replace")[:40]
        return Finding(
            "not_pkcs12",
            f"the file is PEM text ({label}), not a PFX (PKCS#12); bundle the certificate, "
            f"its private key and the chain into one PFX with `{EXPORT_COMMAND}`",
        )
    shape = _outer_shape(data)
    if shape is None:
        if _base64_pfx(stripped):
            return Finding(
                "not_pkcs12",
                "the file is a PFX written as base64 text; decode it first "
                "(`base64 -d relay.pfx.txt > relay.pfx`) and give the binary file",
            )
        return Finding(
            "not_pkcs12",
            "the file is not a PFX (PKCS#12); export the certificate with its private key "
            "as .pfx (Windows: Export, 'Yes, export the private key', PKCS #12, 'Include "
            f"all certificates in the certification path'), or build one with `{EXPORT_COMMAND}`",
        )
    if shape > len(data):
        return Finding(
            "not_pkcs12",
            f"the file is truncated: its PKCS#12 structure declares {shape} bytes but the "
            f"file has {len(data)}; copy it again in binary mode, or export it again",
        )
    if password is None:
        return Finding(
            "bad_password",
            "the PFX is protected by a password and none was given; give the password it "
            "was exported with",
        )
    return Finding(
        "bad_password",
        "the password does not open this PFX (or the file is damaged); give the password "
        "it was exported with, or export it again with a new password",
    )


def _outer_shape(data: bytes) -> int | None:
    """The byte length a PFX header declares (RFC 7292 4: SEQUENCE { INTEGER 3, ...}),
    or None when the data does not start like a PFX at all."""
    if len(data) < 2 or data[0] != _SEQUENCE:
        return None
    head = _header(data, 0)
    if head is None:
        return None
    start, declared_end = head
    expected = bytes((_INTEGER, 1, 3))
    version = data[start : start + len(expected)]
    # A file cut inside the version still declares its length: that is truncation.
    if version != expected and not (len(version) < len(expected) and expected.startswith(version)):
        return None
    return declared_end


def _base64_pfx(text: bytes) -> bool:
    if len(text) < 64:
        return False
    try:
        raw = base64.b64decode(b"".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return False
    shape = _outer_shape(raw)
    return shape is not None and shape <= len(raw)


def _header(buf: bytes, pos: int) -> tuple[int, int] | None:
    """(start of the value, declared end) of the DER TLV at `pos`; definite lengths only."""
    if pos + 2 > len(buf):
        return None
    first = buf[pos + 1]
    pos += 2
    if first < 0x80:
        return pos, pos + first
    count = first & 0x7F
    if count == 0 or count > 4 or pos + count > len(buf):
        return None
    length = int.from_bytes(buf[pos : pos + count], "big")
    return pos + count, pos + count + length


def _children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int]] | None:
    """The TLVs (tag, value start, value end) between start and end, or None if malformed."""
    found: list[tuple[int, int, int]] = []
    pos = start
    while pos < end:
        head = _header(buf, pos)
        if head is None or head[1] > end:
            return None
        found.append((buf[pos], head[0], head[1]))
        pos = head[1]
    return found


def _data_content(buf: bytes, start: int, end: int) -> tuple[int, int] | None:
    """The OCTET STRING of a ContentInfo whose type is data, else None (PKCS #7 7)."""
    parts = _children(buf, start, end)
    if not parts or len(parts) < 2 or parts[0][0] != _OID or parts[1][0] != _EXPLICIT_0:
        return None
    if buf[parts[0][1] : parts[0][2]] != _OID_DATA:
        return None
    inner = _children(buf, parts[1][1], parts[1][2])
    if not inner or inner[0][0] != _OCTET_STRING:
        return None
    return inner[0][1], inner[0][2]


def _key_bag_count(data: bytes) -> int | None:
    """How many key bags the PFX's unencrypted safes hold (RFC 7292 4.1, 4.2).

    OpenSSL's loader keeps the first key and silently drops the others, so they are
    counted here. Returns None when the structure is not plain DER this walk understands.
    """
    top = _children(data, 0, len(data))
    if not top or top[0][0] != _SEQUENCE:
        return None
    pfx = _children(data, top[0][1], top[0][2])
    if not pfx or len(pfx) < 2 or pfx[1][0] != _SEQUENCE:
        return None
    auth = _data_content(data, pfx[1][1], pfx[1][2])
    if auth is None:
        return None
    safes = _children(data, *auth)
    if not safes or safes[0][0] != _SEQUENCE:
        return None
    count = 0
    for tag, start, end in _children(data, safes[0][1], safes[0][2]) or ():
        content = _data_content(data, start, end) if tag == _SEQUENCE else None
        if content is None:
            continue
        contents = _children(data, *content)
        if not contents or contents[0][0] != _SEQUENCE:
            continue
        for bag_tag, bag_start, bag_end in _children(data, contents[0][1], contents[0][2]) or ():
            fields = _children(data, bag_start, bag_end) if bag_tag == _SEQUENCE else None
            if fields and fields[0][0] == _OID:
                count += data[fields[0][1] : fields[0][2]] in _OID_KEY_BAGS
    return count


def _analyse(
    opened: _Opened, fqdns: Sequence[str], now: datetime, roots: Collection[x509.Certificate]
) -> Report:
    found = _Findings([], [])
    pool = ([opened.cert] if opened.cert is not None else []) + list(opened.others)
    if not pool:
        found.error(
            "chain_incomplete",
            f"the PFX holds no certificate; export the certificate with its key and chain, "
            f"e.g. `{EXPORT_COMMAND}`",
        )
        _check_key_count(opened, found)
        return Report(tuple(found.errors), tuple(found.warnings), None)
    leaf = opened.cert if opened.cert is not None else _guess_leaf(pool)
    _check_key_count(opened, found)
    if opened.has_key and opened.cert is None:
        found.error(
            "key_mismatch",
            f"the private key in the PFX belongs to none of its certificates (the relay's is "
            f"'{_name(leaf.subject)}'); export the PFX again with the key made with that "
            "certificate's request",
        )
    chain, complete = _order_chain(leaf, pool)
    if not complete:
        last = chain[-1]
        found.error(
            "chain_incomplete",
            f"the chain stops at '{_name(last.subject)}': its issuer "
            f"'{_name(last.issuer)}' is not in the PFX; {FULL_CHAIN_HINT}",
        )
    _check_eku(chain, found)
    names = _check_names(leaf, fqdns, found)
    _check_validity(chain, complete, now, found)
    key_text = _check_keys(chain, complete, found)
    private = complete and not _is_trusted(chain[-1], roots)
    if private:
        found.warn(
            "private_ca",
            f"the chain ends in '{_name(chain[-1].subject)}', a private CA that phones do "
            "not trust out of the box: phones connecting to the relay directly need that root "
            f"installed before they provision; the cloud can push it to them through "
            f"{CUSTOM_CA_PARAMETER} (or use a certificate from a public CA)",
        )
    facts = CertificateFacts(
        subject=_name(leaf.subject),
        common_name=names[0][0] if names[0] else None,
        dns_names=names[1],
        ip_addresses=names[2],
        issuer=_name(leaf.issuer),
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        key=key_text,
        sha256=leaf.fingerprint(hashes.SHA256()).hex(":").upper(),
        chain=tuple(_name(c.subject) for c in chain),
        chain_complete=complete,
        private_ca=private,
    )
    return Report(tuple(found.errors), tuple(found.warnings), facts)


def _check_key_count(opened: _Opened, found: _Findings) -> None:
    if opened.key_count == 0:
        found.error(
            "no_key",
            "the PFX holds no private key; export it again with the key (Windows: 'Yes, "
            f"export the private key'; openssl: `{EXPORT_COMMAND}`)",
        )
    elif opened.key_count > 1:
        found.error(
            "no_key",
            f"the PFX holds {opened.key_count} private keys; export exactly one: the key of "
            "the relay's certificate",
        )


def _name(name: x509.Name) -> str:
    return name.rfc4514_string()


def _guess_leaf(pool: list[x509.Certificate]) -> x509.Certificate:
    """Without a key to match, the leaf is the certificate that issued no other one."""
    issuers = {c.issuer for c in pool}
    for cert in pool:
        if cert.subject not in issuers or not _is_ca(cert):
            return cert
    return pool[0]


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _order_chain(
    leaf: x509.Certificate, pool: list[x509.Certificate]
) -> tuple[list[x509.Certificate], bool]:
    """Leaf to root, whatever order the PFX stored them in; complete when it reaches a
    self-signed root (RFC 5280 6.1: a path ends at a trust anchor)."""
    chain = [leaf]
    remaining = [c for c in pool if c != leaf]
    while not _issued_by(chain[-1], chain[-1]):
        issuer = next((c for c in remaining if _issued_by(chain[-1], c)), None)
        if issuer is None:
            return chain, False
        chain.append(issuer)
        remaining.remove(issuer)
    return chain, True


def _role(index: int, chain: list[x509.Certificate], complete: bool) -> str:
    subject = _name(chain[index].subject)
    if index == 0:
        return f"the certificate '{subject}'"
    if complete and index == len(chain) - 1:
        return f"the root CA '{subject}'"
    return f"the intermediate CA '{subject}'"


def _check_eku(chain: list[x509.Certificate], found: _Findings) -> None:
    """Seed rule: "an Enhanced Key Usage (EKU) of Server Authentication"; an intermediate
    whose EKU excludes it also fails at phones, which apply EKU along the path."""
    try:
        usages = chain[0].extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        found.error(
            "eku_missing",
            "the certificate has no Extended Key Usage; the relay needs Server "
            "Authentication (1.3.6.1.5.5.7.3.1): have it reissued with that EKU (the CA's "
            "web server / TLS server template)",
        )
    else:
        if ExtendedKeyUsageOID.SERVER_AUTH not in usages:
            listed = ", ".join(_eku_name(u) for u in usages) or "nothing"
            found.error(
                "eku_missing",
                f"the certificate's Extended Key Usage lists {listed} but not Server "
                "Authentication (1.3.6.1.5.5.7.3.1); have it reissued with Server "
                "Authentication (the CA's web server / TLS server template)",
            )
    for index, cert in enumerate(chain[1:], start=1):
        try:
            usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            continue
        if ExtendedKeyUsageOID.SERVER_AUTH not in usages and ANY_EKU not in usages:
            found.error(
                "eku_missing",
                f"{_role(index, chain, True)} restricts its certificates to "
                f"{', '.join(_eku_name(u) for u in usages)}, without Server Authentication; "
                "have the certificate issued under a CA allowed to issue TLS server "
                "certificates",
            )


def _eku_name(oid: x509.ObjectIdentifier) -> str:
    known = EKU_NAMES.get(oid)
    return f"{known} ({oid.dotted_string})" if known else oid.dotted_string


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return False
    return True


def _normal(name: str) -> str:
    lowered = name.strip().rstrip(".").lower()
    try:
        return lowered.encode("idna").decode("ascii")
    except UnicodeError:
        return lowered


def _dns_match(pattern: str, name: str) -> bool:
    """RFC 6125 6.4.3: a wildcard only as the whole left-most label, standing for exactly
    one label, and never directly under a single-label (top-level) domain."""
    pattern = _normal(pattern)
    if pattern == name:
        return True
    if not pattern.startswith("*.") or "*" in pattern[2:]:
        return False
    base = pattern[2:]
    head, _, tail = name.partition(".")
    return bool(head) and "." in base and tail == base


def _check_names(
    leaf: x509.Certificate, fqdns: Sequence[str], found: _Findings
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """Seed rules: the FQDN in the CN or a SAN DNS name, all relays' FQDNs when they share
    the certificate, and no IP address as CN or SAN (RFC 6125 6.4 for the matching)."""
    cns = tuple(str(a.value) for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME))
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        dns: tuple[str, ...] = ()
        ips: tuple[str, ...] = ()
    else:
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(a) for a in san.get_values_for_type(x509.IPAddress))
    for cn in cns:
        if _is_ip(cn):
            found.error(
                "ip_in_name",
                f"the subject CN is the IP address {cn}; phones must reach the relay by its "
                "FQDN: have the certificate reissued with the FQDN as CN and SAN DNS name",
            )
    ip_sans = [*ips, *(d for d in dns if _is_ip(d))]
    if ip_sans:
        found.error(
            "ip_in_name",
            f"the Subject Alternative Name lists the IP address(es) {', '.join(ip_sans)}; "
            "have the certificate reissued with DNS names only (the FQDNs phones use)",
        )
    missing: list[str] = []
    cn_only: list[str] = []
    for raw in fqdns:
        fqdn = _normal(raw)
        if _is_ip(fqdn):
            found.error(
                "ip_in_name",
                f"{raw} is an IP address; phones must reach the relay by a DNS name: "
                "give the relay's FQDN",
            )
        elif not any(_dns_match(d, fqdn) for d in dns):
            (cn_only if any(_dns_match(c, fqdn) for c in cns) else missing).append(raw)
    if missing:
        have = ", ".join(dict.fromkeys([*cns, *dns])) or "no DNS name"
        found.error(
            "fqdn_missing",
            f"the certificate does not name {', '.join(missing)} (it names {have}); have it "
            "reissued with every relay FQDN as a SAN DNS name (one certificate can serve "
            "several relays)",
        )
    if cn_only:
        found.warn(
            "fqdn_only_in_cn",
            f"{', '.join(cn_only)} is only in the subject CN; browsers and current TLS "
            "libraries ignore the CN: have it added as a SAN DNS name at the next renewal",
        )
    return cns, dns, ips


def _check_validity(
    chain: list[x509.Certificate], complete: bool, now: datetime, found: _Findings
) -> None:
    """RFC 5280 4.1.2.5: every certificate of the path must be valid now."""
    for index, cert in enumerate(chain):
        role = _role(index, chain, complete)
        fix = (
            "renew it and export a new PFX"
            if index == 0
            else "export the PFX again with the CA's current certificate (from the CA's site)"
        )
        if now < cert.not_valid_before_utc:
            found.error(
                "not_yet_valid",
                f"{role} is not valid until {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC; "
                "check this machine's clock (NTP), or wait until then",
            )
        elif now > cert.not_valid_after_utc:
            found.error(
                "expired",
                f"{role} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC; {fix}",
            )
        elif cert.not_valid_after_utc - now <= EXPIRY_WARNING:
            days = (cert.not_valid_after_utc - now).days
            plural = "" if days == 1 else "s"
            found.warn(
                "expires_soon",
                f"{role} expires on {cert.not_valid_after_utc:%Y-%m-%d} (in {days} day{plural}); "
                f"{fix} before then",
            )


def _check_keys(chain: list[x509.Certificate], complete: bool, found: _Findings) -> str:
    """Keys below RSA 2048 / P-256, and DSA, are refused (NIST SP 800-57 112-bit floor).

    Returns the leaf key's description for the facts.
    """
    leaf_text = ""
    for index, cert in enumerate(chain):
        text, weak = _describe_key(cert)
        if index == 0:
            leaf_text = text
        if weak:
            found.error(
                "weak_key",
                f"{_role(index, chain, complete)} has a {text} key, too weak; have it "
                "reissued with an ECDSA P-256 or RSA 2048-bit (or larger) key",
            )
    return leaf_text


def _describe_key(cert: x509.Certificate) -> tuple[str, bool]:
    try:
        key = cert.public_key()
    except UnsupportedAlgorithm:
        return "unsupported", True
    if isinstance(key, rsa.RSAPublicKey):
        return f"RSA {key.key_size}", key.key_size < MIN_RSA_BITS
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"ECDSA {EC_NAMES.get(key.curve.name, key.curve.name)}", (
            key.curve.key_size < MIN_EC_BITS
        )
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA {key.key_size}", True
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", False
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", False
    return type(key).__name__, True


def _spki(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _is_trusted(root: x509.Certificate, roots: Collection[x509.Certificate]) -> bool:
    """A root counts as public when the store holds the same name with the same key."""
    try:
        mine = _spki(root)
    except UnsupportedAlgorithm:
        return False
    for candidate in roots:
        try:
            if candidate.subject == root.subject and _spki(candidate) == mine:
                return True
        except UnsupportedAlgorithm:
            continue
    return False


@functools.cache
def system_roots() -> tuple[x509.Certificate, ...]:
    """The system trust store's roots (the default CA bundle OpenSSL would use)."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if not candidate:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", CryptographyDeprecationWarning)
                return tuple(x509.load_pem_x509_certificates(Path(candidate).read_bytes()))
        except _BUNDLE_ERRORS:
            continue
    return ()
