"""Certificates made at test time (no key is committed), and PFX files made from them by
`openssl pkcs12 -export`, the tool admins use, so the validator reads a real peer's files."""

from __future__ import annotations

import functools
import ipaddress
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

NOW = datetime.now(UTC).replace(microsecond=0)
PASSWORD = "s3cret-Pfx-pw"
FQDN = "relay.branch.example"
SERVER_AUTH = (ExtendedKeyUsageOID.SERVER_AUTH,)

Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@functools.cache
def rsa_key(bits: int, slot: int = 0) -> rsa.RSAPrivateKey:
    """RSA keys are slow to make: one per size (and slot) per test session."""
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class Issued:
    cert: x509.Certificate
    key: Key

    @property
    def name(self) -> str:
        return self.cert.subject.rfc4514_string()


def issue(
    cn: str,
    issuer: Issued | None = None,
    *,
    ca: bool = False,
    key: Key | None = None,
    dns: Sequence[str] = (),
    ips: Sequence[str] = (),
    eku: Sequence[x509.ObjectIdentifier] | None = SERVER_AUTH,
    not_before: datetime = NOW - timedelta(days=1),
    not_after: datetime = NOW + timedelta(days=365),
) -> Issued:
    """A certificate signed by `issuer` (self-signed without one); `eku=None` leaves out
    the Extended Key Usage extension."""
    key = key or ec_key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    signer = key if issuer is None else issuer.key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if issuer is None else issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in ips]
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    return Issued(builder.sign(signer, hashes.SHA256()), key)


@dataclass(frozen=True)
class Chain:
    root: Issued
    intermediate: Issued
    leaf: Issued

    @property
    def cas(self) -> list[x509.Certificate]:
        return [self.intermediate.cert, self.root.cert]


def chain(
    *,
    leaf_key: Key | None = None,
    cn: str = FQDN,
    dns: Sequence[str] = (FQDN,),
    ips: Sequence[str] = (),
    eku: Sequence[x509.ObjectIdentifier] | None = SERVER_AUTH,
    leaf_dates: tuple[datetime, datetime] = (NOW - timedelta(days=1), NOW + timedelta(days=365)),
    intermediate_dates: tuple[datetime, datetime] = (
        NOW - timedelta(days=30),
        NOW + timedelta(days=1000),
    ),
) -> Chain:
    """Root, intermediate and a relay leaf, the shape a real CA issues."""
    root = issue("Test Root CA", ca=True, eku=None, not_before=NOW - timedelta(days=60))
    intermediate = issue(
        "Test Issuing CA",
        root,
        ca=True,
        eku=None,
        not_before=intermediate_dates[0],
        not_after=intermediate_dates[1],
    )
    leaf = issue(
        cn,
        intermediate,
        key=leaf_key,
        dns=dns,
        ips=ips,
        eku=eku,
        not_before=leaf_dates[0],
        not_after=leaf_dates[1],
    )
    return Chain(root, intermediate, leaf)


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key: Key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class Openssl:
    """`openssl pkcs12 -export` in a scratch directory."""

    binary: str
    directory: Path

    def pfx(
        self,
        cert: x509.Certificate | None,
        key: Key | None,
        others: Sequence[x509.Certificate] = (),
        *,
        password: str = PASSWORD,
        options: Sequence[str] = (),
    ) -> bytes:
        """-in `cert`, -inkey `key`, -certfile `others` in the order given."""
        args = [self.binary, "pkcs12", "-export", "-passout", "env:PFX_PASS", *options]
        if cert is not None:
            args += ["-in", str(self._write("cert.pem", pem(cert)))]
        if key is not None:
            args += ["-inkey", str(self._write("key.pem", key_pem(key)))]
        if others:
            args += ["-certfile", str(self._write("others.pem", pem(*others)))]
        out = self.directory / "out.pfx"
        done = subprocess.run(
            [*args, "-out", str(out)],
            capture_output=True,
            env={"PFX_PASS": password, "PATH": "/usr/bin:/bin"},
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        data = out.read_bytes()
        out.unlink()
        return data

    def _write(self, name: str, data: bytes) -> Path:
        path = self.directory / name
        path.write_bytes(data)
        return path


def openssl_in(directory: Path) -> Openssl:
    binary = shutil.which("openssl")
    if binary is None:
        pytest.skip("needs the openssl command (Debian package openssl)")
    return Openssl(binary, directory)


def _tlv(tag: int, value: bytes) -> bytes:
    if len(value) < 0x80:
        return bytes((tag, len(value))) + value
    size = len(value).to_bytes((len(value).bit_length() + 7) // 8, "big")
    return bytes((tag, 0x80 | len(size))) + size + value


def _items(data: bytes) -> list[bytes]:
    """The complete TLVs inside a DER value."""
    out = []
    pos = 0
    while pos < len(data):
        first = data[pos + 1]
        if first < 0x80:
            start, length = pos + 2, first
        else:
            count = first & 0x7F
            start = pos + 2 + count
            length = int.from_bytes(data[pos + 2 : start], "big")
        out.append(data[pos : start + length])
        pos = start + length
    return out


def _value(tlv: bytes) -> bytes:
    first = tlv[1]
    return tlv[2:] if first < 0x80 else tlv[2 + (first & 0x7F) :]


def merge_pfx(first: bytes, second: bytes) -> bytes:
    """One PFX holding both PFXs' safes (so both keys): made from two `-nomac` PFXs whose
    bags are unencrypted, since openssl itself exports one key only (RFC 7292 4)."""

    def safes(pfx: bytes) -> tuple[bytes, list[bytes]]:
        version, auth = _items(_value(pfx))[:2]
        oid, explicit = _items(_value(auth))
        octets = _items(_value(explicit))[0]
        return version + oid, _items(_value(_items(_value(octets))[0]))

    head, one = safes(first)
    _, two = safes(second)
    version, oid = _items(head)
    auth_safe = _tlv(0x30, b"".join(one + two))
    content = _tlv(0x30, oid + _tlv(0xA0, _tlv(0x04, auth_safe)))
    return _tlv(0x30, version + content)
