"""A private lab CA and the relay's HTTPS server certificate, created on first start.

Clients trust `ca.pem` once; the server certificate under it is reissued whenever the
requested names change or its expiry nears, and the CA is kept so that trust survives.
"""

from __future__ import annotations

import fcntl
import ipaddress
import logging
import os
import secrets
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("certs.lab")

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
SERVER_CERT = "server.pem"
SERVER_KEY = "server.key"
LOCK = ".lock"

CA_LIFETIME = timedelta(days=3650)
# Clients reject leaf certificates valid for more than 398 days (CA/Browser Forum).
SERVER_LIFETIME = timedelta(days=397)
RENEW_BEFORE = timedelta(days=30)
# Issued an hour in the past so a peer whose clock lags a little still accepts it.
BACKDATE = timedelta(hours=1)
ALWAYS_NAMES = ("localhost",)
ALWAYS_IPS = (ipaddress.ip_address("127.0.0.1"),)
MAX_COMMON_NAME = 64

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class CertError(Exception):
    """The lab identity cannot be used; the message names the file and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class ServerIdentity:
    """Where the HTTPS listener finds its certificate chain and key, and clients the CA."""

    ca_cert: Path
    cert: Path
    key: Path


def ensure_lab_identity(
    directory: Path,
    names: Sequence[str],
    ips: Sequence[str],
    *,
    now: datetime | None = None,
) -> ServerIdentity:
    """Create (first call) or reuse the lab CA and a server certificate covering names/ips.

    "localhost" and 127.0.0.1 are always covered. The server certificate is reissued by
    the same CA when it lacks a requested name or expires within 30 days.
    """
    moment = _utc(now)
    dns, addrs = _wanted(names, ips)
    _make_private_dir(directory)
    with _locked(directory):
        _remove_stale_temps(directory)
        ca_key, ca_cert = _ensure_ca(directory, moment)
        _ensure_server(directory, ca_key, ca_cert, dns, addrs, moment)
    return ServerIdentity(
        ca_cert=directory / CA_CERT, cert=directory / SERVER_CERT, key=directory / SERVER_KEY
    )


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise CertError(f"now must be timezone-aware, got naive {now.isoformat()}")
    return now.astimezone(UTC)


def _wanted(
    names: Sequence[str], ips: Sequence[str]
) -> tuple[tuple[str, ...], tuple[IPAddress, ...]]:
    """Requested DNS names and addresses, normalised and de-duplicated, in request order."""
    dns: dict[str, None] = {}
    addrs: dict[IPAddress, None] = {}
    for raw in names:
        name = raw.strip().rstrip(".").lower()
        try:
            addrs[ipaddress.ip_address(name)] = None
            continue
        except ValueError:
            pass
        if not name or not name.isascii() or any(c.isspace() for c in name):
            raise CertError(
                f"{raw!r} is not a usable DNS name; pass ASCII host names "
                "(the xn-- form for international names)"
            )
        dns[name] = None
    for raw in ips:
        try:
            addrs[ipaddress.ip_address(raw.strip())] = None
        except ValueError:
            raise CertError(f"{raw!r} is not an IP address") from None
    dns.update(dict.fromkeys(ALWAYS_NAMES))
    addrs.update(dict.fromkeys(ALWAYS_IPS))
    return tuple(dns), tuple(addrs)


def _make_private_dir(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        if not directory.is_dir():
            raise CertError(f"{directory} exists and is not a directory") from None
        return
    except OSError as exc:
        raise CertError(f"{directory}: cannot create ({exc.strerror})") from exc
    # mkdir's mode passes through the umask; the keys' directory must be exactly 0700.
    directory.chmod(0o700)


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    """Serialise processes starting at once, so they cannot each create a different CA."""
    try:
        fd = os.open(directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise CertError(f"{directory / LOCK}: cannot open ({exc.strerror})") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _remove_stale_temps(directory: Path) -> None:
    """Drop temporaries a crash left behind mid-write (they may hold a private key)."""
    for stale in directory.glob(".*.tmp"):
        stale.unlink(missing_ok=True)


def _ca_remedy(directory: Path) -> str:
    return (
        f"restore it from a backup, or delete {directory / CA_CERT} and {directory / CA_KEY} "
        "to create a new lab CA (every client must then be given the new ca.pem)"
    )


def _server_remedy(directory: Path) -> str:
    return (
        f"delete {directory / SERVER_CERT} and {directory / SERVER_KEY}; the next start "
        "issues a new server certificate from the lab CA"
    )


def _ensure_ca(
    directory: Path, now: datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    # ca.pem is written after ca.key, so without it no CA was ever completed.
    if not cert_path.exists():
        return _create_ca(directory, now)
    remedy = _ca_remedy(directory)
    cert = _load_certs(cert_path, remedy)[0]
    key = _load_key(key_path, remedy)
    if not _same_public_key(key, cert):
        raise CertError(f"{key_path} is not the key of {cert_path}; {remedy}")
    if cert.not_valid_after_utc - now <= RENEW_BEFORE:
        raise CertError(
            f"{cert_path}: the lab CA expires {cert.not_valid_after_utc:%Y-%m-%d}; "
            f"delete {cert_path} and {key_path} to create a new lab CA "
            "(every client must then be given the new ca.pem)"
        )
    return key, cert


def _create_ca(
    directory: Path, now: datetime
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    # A random suffix keeps two appliances' CAs apart in a client's trust store.
    common_name = f"relay lab CA {secrets.token_hex(4)}"
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    start = now - BACKDATE
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    _write_atomic(directory / CA_KEY, _key_pem(key))
    _write_atomic(directory / CA_CERT, cert.public_bytes(serialization.Encoding.PEM))
    log.info(
        "created lab CA %r in %s, valid until %s",
        common_name,
        directory / CA_CERT,
        f"{cert.not_valid_after_utc:%Y-%m-%d}",
    )
    return key, cert


def _ensure_server(
    directory: Path,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    dns: tuple[str, ...],
    addrs: tuple[IPAddress, ...],
    now: datetime,
) -> None:
    cert_path, key_path = directory / SERVER_CERT, directory / SERVER_KEY
    if cert_path.exists() and key_path.exists():
        remedy = _server_remedy(directory)
        chain = _load_certs(cert_path, remedy)
        key = _load_key(key_path, remedy)
        reason = _reissue_reason(chain, key, ca_cert, dns, addrs, now)
        if reason is None:
            return
        log.info("reissuing the server certificate: %s", reason)
    _issue_server(directory, ca_key, ca_cert, dns, addrs, now)


def _reissue_reason(
    chain: list[x509.Certificate],
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    dns: tuple[str, ...],
    addrs: tuple[IPAddress, ...],
    now: datetime,
) -> str | None:
    """Why the stored server certificate cannot be served as it is, or None if it can."""
    leaf = chain[0]
    if not _same_public_key(key, leaf):
        # Expected after a crash between writing the new key and its certificate.
        return "the key does not match the certificate"
    if chain[1:] != [ca_cert]:
        return "the chain does not end in the lab CA"
    try:
        leaf.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        return "it was not issued by the lab CA"
    missing = _missing_names(leaf, dns, addrs)
    if missing:
        return f"it does not cover {', '.join(missing)}"
    if now < leaf.not_valid_before_utc:
        return f"it is not valid until {leaf.not_valid_before_utc:%Y-%m-%d %H:%M}Z"
    if leaf.not_valid_after_utc - now <= RENEW_BEFORE:
        return f"it expires {leaf.not_valid_after_utc:%Y-%m-%d}"
    return None


def _missing_names(
    leaf: x509.Certificate, dns: tuple[str, ...], addrs: tuple[IPAddress, ...]
) -> list[str]:
    try:
        san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [*dns, *map(str, addrs)]
    have_dns = {name.lower() for name in san.get_values_for_type(x509.DNSName)}
    have_ips = set(san.get_values_for_type(x509.IPAddress))
    return [n for n in dns if n not in have_dns] + [str(a) for a in addrs if a not in have_ips]


def _issue_server(
    directory: Path,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    dns: tuple[str, ...],
    addrs: tuple[IPAddress, ...],
    now: datetime,
) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    start = now - BACKDATE
    end = min(start + SERVER_LIFETIME, ca_cert.not_valid_after_utc)
    # Old phone firmware still matches the subject CN, so it carries the primary name.
    common_name = next(n for n in dns if len(n) <= MAX_COMMON_NAME)
    san: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
    san += [x509.IPAddress(a) for a in addrs]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    chain = cert.public_bytes(serialization.Encoding.PEM)
    chain += ca_cert.public_bytes(serialization.Encoding.PEM)
    # Key first: a crash before the certificate leaves a mismatch, which is reissued.
    _write_atomic(directory / SERVER_KEY, _key_pem(key))
    _write_atomic(directory / SERVER_CERT, chain)
    log.info(
        "issued server certificate for %s, valid until %s",
        ", ".join([*dns, *map(str, addrs)]),
        f"{end:%Y-%m-%d}",
    )


def _key_usage(
    *, digital_signature: bool = False, key_cert_sign: bool = False, crl_sign: bool = False
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _same_public_key(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> bool:
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)


def _read(path: Path, remedy: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CertError(f"{path}: cannot read ({exc.strerror}); {remedy}") from exc


def _load_key(path: Path, remedy: str) -> ec.EllipticCurvePrivateKey:
    data = _read(path, remedy)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # Deliberately without the parser's detail or the data: never echo key material.
        raise CertError(
            f"{path} is damaged or not an unencrypted PEM private key; {remedy}"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise CertError(f"{path} is not an ECDSA P-256 private key; {remedy}")
    return key


def _load_certs(path: Path, remedy: str) -> list[x509.Certificate]:
    data = _read(path, remedy)
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        raise CertError(f"{path} is damaged or not a PEM certificate file; {remedy}") from None


def _write_atomic(path: Path, data: bytes) -> None:
    """Write via a 0600 temporary and rename, so a crash never leaves half a key."""
    try:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise CertError(f"{path}: cannot write ({exc.strerror})") from exc
    temp = Path(name)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        temp.replace(path)
        _fsync_dir(path.parent)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise CertError(f"{path}: cannot write ({exc.strerror})") from exc


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable, not just the file contents."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
