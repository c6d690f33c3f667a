"""A private lab CA and the relay's HTTPS server certificate, created on first start.

Clients trust `ca.pem` once; the server certificate under it is reissued whenever the
requested names change or its expiry nears, and the CA is kept so that trust survives.
`create_lab_certificates` (`relay certs lab-ca`) issues from the same CA code, on demand,
for exactly the names asked, with an RSA key if asked, and a PFX of the chain.
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
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

log = logging.getLogger("certs.lab")

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
SERVER_CERT = "server.pem"
SERVER_KEY = "server.key"
SERVER_PFX = "server.pfx"
SERVER_PFX_PASSFILE = "server.pfx.password"
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
RSA_SIZES = (2048, 3072, 4096)
MAX_LAB_DAYS = 3650

# What parsing a certificate may raise on bad bytes: cryptography's InvalidVersion (a
# version field other than v1-v3) is not a ValueError.
CERT_PARSE_ERRORS: tuple[type[Exception], ...] = (ValueError, x509.InvalidVersion)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
LabKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


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


@dataclass(frozen=True, slots=True)
class LabCertificates:
    """What `create_lab_certificates` wrote; `pfx_password_file` is None when the caller
    chose the PFX password."""

    ca_cert: Path
    cert: Path
    key: Path
    pfx: Path
    pfx_password_file: Path | None
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    key_type: str
    not_after: datetime
    ca_created: bool


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


def create_lab_certificates(
    directory: Path,
    names: Sequence[str],
    ips: Sequence[str],
    *,
    rsa_bits: int | None = None,
    days: int = SERVER_LIFETIME.days,
    pfx_password: str | None = None,
    now: datetime | None = None,
) -> LabCertificates:
    """A lab CA (reused when `directory` already holds one) and a new server certificate
    for exactly `names`/`ips`, with server.pfx holding the key and chain.

    ECDSA P-256 unless `rsa_bits` is given; a new CA then gets an RSA key too, for phones
    whose firmware verifies RSA signatures only. Without `pfx_password` a random one is
    written to server.pfx.password (0600), never printed.
    """
    moment = _utc(now)
    if rsa_bits is not None and rsa_bits not in RSA_SIZES:
        raise CertError(f"RSA keys are {', '.join(map(str, RSA_SIZES))} bits, not {rsa_bits}")
    if not 1 <= days <= MAX_LAB_DAYS:
        raise CertError(f"the validity is 1 to {MAX_LAB_DAYS} days, not {days}")
    dns, addrs = _requested(names, ips)
    if not any(len(n) <= MAX_COMMON_NAME for n in dns):
        raise CertError(
            f"give at least one DNS name of at most {MAX_COMMON_NAME} characters "
            "(the FQDN phones use to reach the relay; it becomes the subject CN)"
        )
    password = pfx_password if pfx_password is not None else secrets.token_urlsafe(18)
    _make_private_dir(directory)
    with _locked(directory):
        _remove_stale_temps(directory)
        created = not (directory / CA_CERT).exists()
        if created:
            ca_key, ca_cert = _create_ca(directory, moment, _new_key(rsa_bits))
        else:
            ca_key, ca_cert = _load_ca(directory, moment, ecdsa_only=False)
        key, cert = _issue_server(
            directory,
            ca_key,
            ca_cert,
            dns,
            addrs,
            moment,
            key=_new_key(rsa_bits),
            lifetime=timedelta(days=days),
        )
        encryption = serialization.BestAvailableEncryption(password.encode())
        pfx = pkcs12.serialize_key_and_certificates(
            dns[0].encode(), key, cert, [ca_cert], encryption
        )
        _write_atomic(directory / SERVER_PFX, pfx)
        password_file = None
        if pfx_password is None:
            password_file = directory / SERVER_PFX_PASSFILE
            _write_atomic(password_file, password.encode() + b"\n")
    return LabCertificates(
        ca_cert=directory / CA_CERT,
        cert=directory / SERVER_CERT,
        key=directory / SERVER_KEY,
        pfx=directory / SERVER_PFX,
        pfx_password_file=password_file,
        dns_names=dns,
        ip_addresses=tuple(map(str, addrs)),
        key_type=f"RSA {rsa_bits}" if rsa_bits else "ECDSA P-256",
        not_after=cert.not_valid_after_utc,
        ca_created=created,
    )


def _new_key(rsa_bits: int | None) -> LabKey:
    if rsa_bits is None:
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)


def _utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise CertError(f"now must be timezone-aware, got naive {now.isoformat()}")
    return now.astimezone(UTC)


def _wanted(
    names: Sequence[str], ips: Sequence[str]
) -> tuple[tuple[str, ...], tuple[IPAddress, ...]]:
    """Requested DNS names and addresses plus the loopback ones every client may use."""
    dns, addrs = _requested(names, ips)
    return (
        tuple(dict.fromkeys([*dns, *ALWAYS_NAMES])),
        tuple(dict.fromkeys([*addrs, *ALWAYS_IPS])),
    )


def _requested(
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


def _ensure_ca(directory: Path, now: datetime) -> tuple[LabKey, x509.Certificate]:
    # ca.pem is written after ca.key, so without it no CA was ever completed.
    if not (directory / CA_CERT).exists():
        return _create_ca(directory, now, ec.generate_private_key(ec.SECP256R1()))
    return _load_ca(directory, now, ecdsa_only=True)


def _load_ca(
    directory: Path, now: datetime, *, ecdsa_only: bool
) -> tuple[LabKey, x509.Certificate]:
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    remedy = _ca_remedy(directory)
    cert = _load_certs(cert_path, remedy)[0]
    key = _load_key(key_path, remedy, ecdsa_only=ecdsa_only)
    if not _same_public_key(key, cert):
        raise CertError(f"{key_path} is not the key of {cert_path}; {remedy}")
    if cert.not_valid_after_utc - now <= RENEW_BEFORE:
        raise CertError(
            f"{cert_path}: the lab CA expires {cert.not_valid_after_utc:%Y-%m-%d}; "
            f"delete {cert_path} and {key_path} to create a new lab CA "
            "(every client must then be given the new ca.pem)"
        )
    return key, cert


def _create_ca(directory: Path, now: datetime, key: LabKey) -> tuple[LabKey, x509.Certificate]:
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
    ca_key: LabKey,
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
    key: LabKey,
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
    ca_key: LabKey,
    ca_cert: x509.Certificate,
    dns: tuple[str, ...],
    addrs: tuple[IPAddress, ...],
    now: datetime,
    *,
    key: LabKey | None = None,
    lifetime: timedelta = SERVER_LIFETIME,
) -> tuple[LabKey, x509.Certificate]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    start = now - BACKDATE
    end = min(start + lifetime, ca_cert.not_valid_after_utc)
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
        .add_extension(
            # RSA keys also encipher: TLS 1.2 clients without ECDHE still send RSA key exchange.
            _key_usage(digital_signature=True, key_encipherment=isinstance(key, rsa.RSAPrivateKey)),
            critical=True,
        )
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
    return key, cert


def _key_usage(
    *,
    digital_signature: bool = False,
    key_encipherment: bool = False,
    key_cert_sign: bool = False,
    crl_sign: bool = False,
) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: LabKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _same_public_key(key: LabKey, cert: x509.Certificate) -> bool:
    spki = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key.public_key().public_bytes(*spki) == cert.public_key().public_bytes(*spki)


def _read(path: Path, remedy: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CertError(f"{path}: cannot read ({exc.strerror}); {remedy}") from exc


def _load_key(path: Path, remedy: str, *, ecdsa_only: bool = True) -> LabKey:
    data = _read(path, remedy)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # Deliberately without the parser's detail or the data: never echo key material.
        raise CertError(
            f"{path} is damaged or not an unencrypted PEM private key; {remedy}"
        ) from None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1":
        return key
    if not ecdsa_only and isinstance(key, rsa.RSAPrivateKey):
        return key
    kind = "an ECDSA P-256" if ecdsa_only else "an ECDSA P-256 or RSA"
    raise CertError(f"{path} is not {kind} private key; {remedy}")


def _load_certs(path: Path, remedy: str) -> list[x509.Certificate]:
    data = _read(path, remedy)
    try:
        return x509.load_pem_x509_certificates(data)
    except CERT_PARSE_ERRORS:
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
