"""Which certificate the relay's TLS listeners serve, and switching it while they run.

The listeners (HTTPS and FTPS, relay.frontend.stack) are given ONE context,
`ServingCertificate.context`, for their whole life. Its SNI callback, which
OpenSSL runs for every ClientHello whether or not the client names a server
(RFC 6066 section 3; also curl to an IP and `openssl s_client -noservername`),
points the new connection at the context of the certificate current at that
moment (SSL_set_SSL_CTX). A rotation builds a new context and replaces the one
reference to it; no context is changed once built, so a connection in flight
keeps the certificate it started with, on the event loop and in the FTP thread
alike. Session tickets are issued under the base context's keys, so phones
resume across rotations.

On disk, under `<data-dir>/tls/relay/`: `current/{chain.pem,key.pem}` is the
installed certificate and `previous/` the one a rollback returns to; an absent
slot means the relay's own lab certificate (certs.lab). Every switch is a
sequence of directory renames under a lock, with a crash between two renames
completed at the next start (`_recover`); a separate process (`relay certs
install|rollback`) changes the files and a running relay picks them up
(`reload`, polled by `watch`).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import shutil
import ssl
import tempfile
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs12

from certs.lab import CERT_PARSE_ERRORS, CertError, ServerIdentity
from certs.tls import server_context
from certs.validate import Finding, validate_pfx
from relay.logs import event

log = logging.getLogger("certs.rotation")

CHAIN = "chain.pem"
KEY = "key.pem"
CURRENT = "current"
PREVIOUS = "previous"
# A complete, validated new slot waiting to become `current` (see _commit).
NEXT = ".next"
# `current` on its way to `previous` during a rollback's swap.
SWAP = ".swap"
STAGING_PREFIX = ".staging-"
OLD_PREFIX = ".old-"
LOCK = ".lock"
# The same caps as the wire message (relay.sync.certificates) for the same content.
MAX_CHAIN_PEM = 64 * 1024
MAX_KEY_PEM = 16 * 1024
RELOAD_SECONDS = 2.0

SigningKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | dsa.DSAPrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)
Signature = tuple[tuple[int, int, int] | None, ...]


class InstallRefused(CertError):
    """A certificate failed validation; `findings` are the rule violations (certs.validate
    codes, or `unreadable` for input that is not a PEM chain and key)."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        self.findings = tuple(findings)
        text = "; ".join(f"{f.code}: {f.message}" for f in self.findings)
        super().__init__(f"not installed (nothing changed): {text}")


@dataclass(frozen=True, slots=True)
class Prepared:
    """A certificate that passed every check: its chain leaf first, its key as PKCS#8."""

    chain_pem: bytes
    key_pem: bytes
    warnings: tuple[Finding, ...]


@dataclass(frozen=True, slots=True)
class Served:
    """What the listeners serve: `source` is "lab" or "installed"; fingerprints are the
    SHA-256 of the leaf's DER in lower-case hex (`previous` "" when it is the lab one)."""

    fingerprint: str
    subject: str
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    not_after: datetime
    source: str
    previous: str

    def as_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "subject": self.subject,
            "dns_names": list(self.dns_names),
            "ip_addresses": list(self.ip_addresses),
            "not_after": self.not_after.isoformat(),
            "source": self.source,
            "previous": self.previous,
        }


def _unreadable(message: str) -> InstallRefused:
    return InstallRefused([Finding("unreadable", message)])


def prepare(
    chain_pem: bytes,
    key_pem: bytes,
    now: datetime,
    fqdns: Sequence[str] = (),
    *,
    trusted_roots: Collection[x509.Certificate] | None = None,
) -> Prepared:
    """Check a PEM chain and key against every relay certificate rule; raises InstallRefused.

    The chain and key are bundled into a PFX in memory so that `validate_pfx` applies
    exactly the rules `relay certs check` and the cloud apply: key matches the leaf,
    chain complete to a root, Server Authentication EKU, no IP name, every certificate
    within its validity, no weak key (and each `fqdns` named, when given).
    """
    if len(chain_pem) > MAX_CHAIN_PEM or len(key_pem) > MAX_KEY_PEM:
        raise _unreadable(
            f"the chain is over {MAX_CHAIN_PEM} or the key over {MAX_KEY_PEM} bytes; "
            "give the leaf, its intermediates and the root, and one key"
        )
    try:
        certs = x509.load_pem_x509_certificates(chain_pem)
    except CERT_PARSE_ERRORS:
        raise _unreadable(
            "the chain is not PEM certificates (-----BEGIN CERTIFICATE-----)"
        ) from None
    key = _load_key(key_pem)
    try:
        return _checked(certs, key, now, fqdns, trusted_roots)
    except ValueError as exc:
        # cryptography parses names and extensions lazily: a malformed one surfaces here.
        raise _unreadable(f"a certificate of the chain is malformed ({exc})") from None


def _checked(
    certs: list[x509.Certificate],
    key: SigningKey,
    now: datetime,
    fqdns: Sequence[str],
    trusted_roots: Collection[x509.Certificate] | None,
) -> Prepared:
    leaf = next((c for c in certs if _same_key(key, c)), None)
    if leaf is None:
        raise InstallRefused(
            [
                Finding(
                    "key_mismatch",
                    f"the private key belongs to none of the chain's certificates (its first "
                    f"is '{certs[0].subject.rfc4514_string()}'); deliver the key made with "
                    "that certificate's request",
                )
            ]
        )
    ordered = _ordered(leaf, [c for c in certs if c != leaf])
    try:
        pfx = pkcs12.serialize_key_and_certificates(
            None, key, leaf, ordered[1:], serialization.NoEncryption()
        )
    except TypeError as exc:
        raise _unreadable(f"the certificate cannot be bundled ({exc})") from None
    report = validate_pfx(pfx, None, fqdns, now, trusted_roots=trusted_roots)
    if not report.ok:
        raise InstallRefused(report.errors)
    return Prepared(
        chain_pem=b"".join(c.public_bytes(serialization.Encoding.PEM) for c in ordered),
        key_pem=key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        warnings=report.warnings,
    )


def _load_key(key_pem: bytes) -> SigningKey:
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise _unreadable("the private key is encrypted; deliver it unencrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        # Never the parser's detail: it could quote key material.
        raise _unreadable("the private key is not a PEM private key") from None
    if not isinstance(
        key,
        rsa.RSAPrivateKey
        | ec.EllipticCurvePrivateKey
        | dsa.DSAPrivateKey
        | ed25519.Ed25519PrivateKey
        | ed448.Ed448PrivateKey,
    ):
        raise _unreadable(f"a {type(key).__name__} cannot sign for TLS")
    return key


def _spki(public: Any) -> bytes:
    return bytes(
        public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def _same_key(key: SigningKey, cert: x509.Certificate) -> bool:
    try:
        return _spki(key.public_key()) == _spki(cert.public_key())
    except (ValueError, UnsupportedAlgorithm):
        return False


def _ordered(leaf: x509.Certificate, others: list[x509.Certificate]) -> list[x509.Certificate]:
    """Leaf first, then each issuer in turn (RFC 8446 4.4.2: each certificate certifies the
    one before it); certificates outside that path are dropped (validate_pfx checks the
    signatures)."""
    chain = [leaf]
    while chain[-1].issuer != chain[-1].subject:
        issuer = next((c for c in others if c.subject == chain[-1].issuer), None)
        if issuer is None:
            break
        chain.append(issuer)
        others.remove(issuer)
    return chain


def fingerprint(cert: x509.Certificate) -> str:
    return cert.fingerprint(hashes.SHA256()).hex()


def _facts(cert: x509.Certificate, source: str, previous: x509.Certificate | None) -> Served:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(san.get_values_for_type(x509.DNSName))
        ips = tuple(str(a) for a in san.get_values_for_type(x509.IPAddress))
    except x509.ExtensionNotFound:
        dns, ips = (), ()
    return Served(
        fingerprint=fingerprint(cert),
        subject=cert.subject.rfc4514_string(),
        dns_names=dns,
        ip_addresses=ips,
        not_after=cert.not_valid_after_utc,
        source=source,
        previous="" if previous is None else fingerprint(previous),
    )


def _leaf_of(chain: Path) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificates(chain.read_bytes())[0]
    except OSError as exc:
        raise CertError(f"{chain}: cannot read ({exc.strerror})") from exc
    except CERT_PARSE_ERRORS:
        raise CertError(f"{chain} is damaged; install the certificate again") from None


class CertificateStore:
    """The slots under `<data-dir>/tls/relay` and the renames that switch them."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def slot(self, name: str) -> Path | None:
        """The slot's directory when it holds a certificate, else None (the lab one)."""
        path = self.directory / name
        return path if (path / CHAIN).is_file() and (path / KEY).is_file() else None

    def signature(self) -> Signature:
        """Changes whenever a slot's files do, whoever changed them."""
        marks: list[tuple[int, int, int] | None] = []
        for name in (CURRENT, PREVIOUS):
            for file in (CHAIN, KEY):
                try:
                    st = (self.directory / name / file).stat()
                except OSError:
                    marks.append(None)
                else:
                    marks.append((st.st_ino, st.st_mtime_ns, st.st_size))
        return tuple(marks)

    def served(self, lab: Path) -> Served:
        """What the files say is served: `lab` is the lab certificate's chain file."""
        current, previous = self.slot(CURRENT), self.slot(PREVIOUS)
        earlier = None if previous is None else _leaf_of(previous / CHAIN)
        if current is None:
            return _facts(_leaf_of(lab), "lab", earlier)
        return _facts(_leaf_of(current / CHAIN), "installed", earlier)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """One switch at a time across processes; a crash's half-done switch is finished."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(self.directory / LOCK, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise CertError(f"{self.directory}: cannot use ({exc.strerror})") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._recover()
            yield
        finally:
            os.close(fd)

    def install(self, prepared: Prepared) -> None:
        """Write a checked certificate into a new slot and make it current (under `locked`)."""
        try:
            # Beside the others (same file system): the renames that follow are atomic.
            staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=self.directory))
        except OSError as exc:
            raise CertError(f"{self.directory}: cannot write ({exc.strerror})") from exc
        try:
            _write(staging / CHAIN, prepared.chain_pem, 0o644)
            _write(staging / KEY, prepared.key_pem, 0o600)
            # OpenSSL itself must accept the files before anything is switched.
            _context(staging / CHAIN, staging / KEY)
            self._commit(staging)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise CertError(f"{self.directory}: cannot write ({exc.strerror})") from exc
        except CertError:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _commit(self, staging: Path) -> None:
        """`staging` becomes current; the old current becomes previous (or, when the lab
        certificate was served, previous is emptied: the lab one is what came before)."""
        d = self.directory
        if self.slot(CURRENT) is None:
            self._drop(PREVIOUS)
        staging.rename(d / NEXT)
        self._finish_next()

    def rollback(self) -> None:
        """Swap current and previous (an empty slot standing for the lab certificate)."""
        d = self.directory
        current, previous = self.slot(CURRENT), self.slot(PREVIOUS)
        try:
            if current is not None and previous is not None:
                current.rename(d / SWAP)
                previous.rename(d / CURRENT)
                (d / SWAP).rename(d / PREVIOUS)
            elif previous is not None:
                previous.rename(d / CURRENT)
            elif current is not None:
                current.rename(d / PREVIOUS)
            else:
                raise CertError(
                    "nothing to roll back to: the relay serves its lab certificate and "
                    "none was installed before it"
                )
            _fsync_dir(d)
        except OSError as exc:
            raise CertError(f"{d}: cannot switch certificates ({exc.strerror})") from exc

    def use_lab(self) -> None:
        """Serve the lab certificate; the installed one becomes previous."""
        current = self.slot(CURRENT)
        if current is None:
            return
        try:
            self._drop(PREVIOUS)
            current.rename(self.directory / PREVIOUS)
            _fsync_dir(self.directory)
        except OSError as exc:
            raise CertError(f"{self.directory}: cannot switch ({exc.strerror})") from exc

    def _finish_next(self) -> None:
        d = self.directory
        if (d / CURRENT).exists():
            self._drop(PREVIOUS)
            (d / CURRENT).rename(d / PREVIOUS)
        (d / NEXT).rename(d / CURRENT)
        _fsync_dir(d)

    def _drop(self, name: str) -> None:
        path = self.directory / name
        if path.exists():
            old = self.directory / f"{OLD_PREFIX}{os.getpid()}-{name}"
            path.rename(old)
            shutil.rmtree(old, ignore_errors=True)

    def _recover(self) -> None:
        """Finish what a crash interrupted: a staged `.next` is validated and goes live; a
        half-done swap is undone or completed; leftovers (which may hold keys) go."""
        d = self.directory
        try:
            if (d / NEXT).is_dir():
                self._finish_next()
            if (d / SWAP).is_dir():
                (d / SWAP).rename(d / (PREVIOUS if (d / CURRENT).exists() else CURRENT))
        except OSError as exc:
            raise CertError(f"{d}: cannot finish an interrupted switch ({exc.strerror})") from exc
        for stale in (*d.glob(f"{STAGING_PREFIX}*"), *d.glob(f"{OLD_PREFIX}*")):
            shutil.rmtree(stale, ignore_errors=True)


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _context(chain: Path, key: Path) -> ssl.SSLContext:
    return server_context(ServerIdentity(ca_cert=chain, cert=chain, key=key))


class ServingCertificate:
    """Owns `context`, the one context every relay TLS listener is given, and switches
    what it serves: `install`, `rollback`, `use_lab`, and `reload` after another process
    changed the files."""

    def __init__(self, lab: ServerIdentity, directory: Path) -> None:
        self.lab = lab
        self.store = CertificateStore(directory)
        self.context = server_context(lab)
        self.context.sni_callback = self._select
        self._current = self.context
        self._served = _facts(_leaf_of(lab.cert), "lab", None)
        self._signature: Signature = ()
        with self.store.locked():
            self._load()

    def _select(self, connection: ssl.SSLObject | ssl.SSLSocket, _: str | None, __: Any) -> None:
        """OpenSSL's servername callback, run in the handshake of every new connection."""
        connection.context = self._current

    def serving(self) -> Served:
        """What new connections get now."""
        return self._served

    def install(
        self,
        chain_pem: bytes,
        key_pem: bytes,
        *,
        now: datetime | None = None,
        fqdns: Sequence[str] = (),
    ) -> Served:
        """Validate, write, and serve to every new connection; on any failure nothing
        changes and the CertError says why."""
        prepared = prepare(chain_pem, key_pem, now or datetime.now(UTC), fqdns)
        with self.store.locked():
            self.store.install(prepared)
            self._load("certificate_installed")
        for finding in prepared.warnings:
            event(log, "certificate_warning", logging.WARNING, code=finding.code)
        return self._served

    def rollback(self) -> Served:
        """Serve the previous certificate again (the current one becomes previous)."""
        with self.store.locked():
            self.store.rollback()
            self._load("certificate_rolled_back")
        return self._served

    def use_lab(self) -> Served:
        """Serve the relay's own lab certificate (no certificate is assigned to it)."""
        with self.store.locked():
            self.store.use_lab()
            self._load("certificate_lab")
        return self._served

    def reload(self) -> bool:
        """Pick up files another process changed; True when what is served changed."""
        if self.store.signature() == self._signature:
            return False
        with self.store.locked():
            before = self._served
            self._load("certificate_reloaded")
            return self._served != before

    async def watch(self, seconds: float = RELOAD_SECONDS) -> None:
        """Poll for changes by `relay certs install|rollback` until cancelled."""
        while True:
            await asyncio.sleep(seconds)
            try:
                await asyncio.to_thread(self.reload)
            except CertError as exc:
                event(log, "certificate_reload_failed", logging.ERROR, error=exc.message)

    def _load(self, what: str | None = None) -> None:
        """Serve what the files hold; an unusable current slot leaves the lab one served."""
        signature = self.store.signature()
        context = self.context
        try:
            served = self.store.served(self.lab.cert)
            current = self.store.slot(CURRENT)
            if current is not None:
                context = _context(current / CHAIN, current / KEY)
        except CertError as exc:
            event(log, "certificate_unusable", logging.ERROR, error=exc.message)
            context = self.context
            served = _facts(_leaf_of(self.lab.cert), "lab", None)
        self._current = context
        self._served = served
        self._signature = signature
        if what is not None:
            event(
                log,
                what,
                fingerprint=served.fingerprint,
                subject=served.subject,
                not_after=served.not_after.isoformat(),
                source=served.source,
                previous=served.previous,
            )
