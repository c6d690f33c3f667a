"""The lab CA and server certificate on disk: created once, reused, reissued under the same CA."""

from __future__ import annotations

import ipaddress
import logging
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store

from certs.lab import CertError, ServerIdentity, ensure_lab_identity

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NAMES = ("relay-01", "relay-01.lab.example")
IPS = ("192.0.2.10",)


def make(
    directory: Path,
    names: tuple[str, ...] = NAMES,
    ips: tuple[str, ...] = IPS,
    *,
    now: datetime = NOW,
) -> ServerIdentity:
    return ensure_lab_identity(directory, names, ips, now=now)


def chain(identity: ServerIdentity) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(identity.cert.read_bytes())


def leaf(identity: ServerIdentity) -> x509.Certificate:
    return chain(identity)[0]


def ca(identity: ServerIdentity) -> x509.Certificate:
    return x509.load_pem_x509_certificate(identity.ca_cert.read_bytes())


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.fixture
def tls_dir(tmp_path: Path) -> Path:
    return tmp_path / "data" / "tls"


def test_first_call_creates_the_directory_with_mode_0700(tls_dir: Path) -> None:
    make(tls_dir)
    assert mode(tls_dir) == 0o700


def test_every_file_is_written_with_mode_0600(tls_dir: Path) -> None:
    make(tls_dir)
    written = {p.name: mode(p) for p in tls_dir.iterdir()}
    assert written == {
        "ca.pem": 0o600,
        "ca.key": 0o600,
        "server.pem": 0o600,
        "server.key": 0o600,
        ".lock": 0o600,
    }


def test_identity_points_at_the_files_in_the_directory(tls_dir: Path) -> None:
    identity = make(tls_dir)
    assert identity == ServerIdentity(
        ca_cert=tls_dir / "ca.pem", cert=tls_dir / "server.pem", key=tls_dir / "server.key"
    )


def test_second_call_reuses_the_existing_files(tls_dir: Path) -> None:
    make(tls_dir)
    before = snapshot(tls_dir)
    make(tls_dir, now=NOW + timedelta(days=100))
    assert snapshot(tls_dir) == before


def test_a_subset_of_the_covered_names_reuses_the_certificate(tls_dir: Path) -> None:
    make(tls_dir)
    before = snapshot(tls_dir)
    make(tls_dir, names=("RELAY-01.",), ips=())
    assert snapshot(tls_dir) == before


def test_a_new_ip_reissues_the_server_certificate(tls_dir: Path) -> None:
    first = leaf(make(tls_dir))
    second = leaf(make(tls_dir, ips=("198.51.100.7",)))
    assert second.serial_number != first.serial_number
    ips = second.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("198.51.100.7") in ips.get_values_for_type(x509.IPAddress)


def test_a_new_name_reissues_the_server_certificate(tls_dir: Path) -> None:
    first = leaf(make(tls_dir))
    second = leaf(make(tls_dir, names=("provisioning.lab.example",)))
    assert second.serial_number != first.serial_number
    san = second.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "provisioning.lab.example" in san.get_values_for_type(x509.DNSName)


def test_expiry_within_30_days_reissues_the_server_certificate(tls_dir: Path) -> None:
    first = leaf(make(tls_dir))
    later = first.not_valid_after_utc - timedelta(days=29)
    second = leaf(make(tls_dir, now=later))
    assert second.serial_number != first.serial_number
    assert second.not_valid_after_utc > later + timedelta(days=396)


def test_expiry_beyond_30_days_keeps_the_server_certificate(tls_dir: Path) -> None:
    first = leaf(make(tls_dir))
    second = leaf(make(tls_dir, now=first.not_valid_after_utc - timedelta(days=31)))
    assert second.serial_number == first.serial_number


def test_reissue_keeps_the_ca_unchanged(tls_dir: Path) -> None:
    make(tls_dir)
    ca_before = ((tls_dir / "ca.pem").read_bytes(), (tls_dir / "ca.key").read_bytes())
    identity = make(tls_dir, ips=("198.51.100.7",))
    assert ((tls_dir / "ca.pem").read_bytes(), (tls_dir / "ca.key").read_bytes()) == ca_before
    leaf(identity).verify_directly_issued_by(ca(identity))


def test_reissue_uses_a_new_server_key(tls_dir: Path) -> None:
    make(tls_dir)
    key_before = (tls_dir / "server.key").read_bytes()
    make(tls_dir, ips=("198.51.100.7",))
    assert (tls_dir / "server.key").read_bytes() != key_before


def test_a_key_left_by_a_crash_before_its_certificate_is_reissued(tls_dir: Path) -> None:
    make(tls_dir)
    stray = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    (tls_dir / "server.key").write_bytes(stray)
    identity = make(tls_dir)
    key = serialization.load_pem_private_key(identity.key.read_bytes(), None)
    assert key.public_key() == leaf(identity).public_key()


def test_a_ca_key_left_without_its_certificate_is_replaced(tls_dir: Path) -> None:
    make(tls_dir)
    (tls_dir / "ca.pem").unlink()
    identity = make(tls_dir)
    ca_key = serialization.load_pem_private_key((tls_dir / "ca.key").read_bytes(), None)
    assert ca_key.public_key() == ca(identity).public_key()
    leaf(identity).verify_directly_issued_by(ca(identity))


def test_no_temporary_files_remain(tls_dir: Path) -> None:
    make(tls_dir)
    (tls_dir / ".server.key.abc123.tmp").write_bytes(b"left by a crash")
    make(tls_dir)
    assert not list(tls_dir.glob("*.tmp"))


def test_chain_file_holds_the_server_certificate_then_the_ca(tls_dir: Path) -> None:
    identity = make(tls_dir)
    certs = chain(identity)
    assert len(certs) == 2
    assert certs[1] == ca(identity)
    assert certs[0].issuer == certs[1].subject


def test_server_certificate_verifies_against_the_ca(tls_dir: Path) -> None:
    identity = make(tls_dir)
    verifier = (
        PolicyBuilder()
        .store(Store([ca(identity)]))
        .time(NOW)
        .build_server_verifier(x509.DNSName("relay-01.lab.example"))
    )
    verified = verifier.verify(leaf(identity), [])
    assert verified[-1] == ca(identity)


def test_server_certificate_verifies_for_the_loopback_address(tls_dir: Path) -> None:
    identity = make(tls_dir)
    verifier = (
        PolicyBuilder()
        .store(Store([ca(identity)]))
        .time(NOW)
        .build_server_verifier(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    )
    assert verifier.verify(leaf(identity), [])[-1] == ca(identity)


def test_san_holds_requested_and_loopback_names(tls_dir: Path) -> None:
    san = leaf(make(tls_dir)).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == [*NAMES, "localhost"]
    assert san.value.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("192.0.2.10"),
        ipaddress.ip_address("127.0.0.1"),
    ]


def test_an_ip_passed_as_a_name_becomes_an_ip_san(tls_dir: Path) -> None:
    san = leaf(make(tls_dir, names=("10.1.2.3",), ips=())).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert san.value.get_values_for_type(x509.DNSName) == ["localhost"]
    assert ipaddress.ip_address("10.1.2.3") in san.value.get_values_for_type(x509.IPAddress)


def test_server_common_name_is_the_first_requested_name(tls_dir: Path) -> None:
    subject = leaf(make(tls_dir)).subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "relay-01"


def test_server_eku_is_server_auth_only(tls_dir: Path) -> None:
    eku = leaf(make(tls_dir)).extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_server_key_usage_is_digital_signature_only(tls_dir: Path) -> None:
    usage = leaf(make(tls_dir)).extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not (usage.value.key_cert_sign or usage.value.key_encipherment)


def test_server_certificate_is_not_a_ca(tls_dir: Path) -> None:
    constraints = leaf(make(tls_dir)).extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.value.ca is False


def test_server_aki_matches_the_ca_ski(tls_dir: Path) -> None:
    identity = make(tls_dir)
    aki = leaf(identity).extensions.get_extension_for_class(x509.AuthorityKeyIdentifier)
    ski = ca(identity).extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert aki.value.key_identifier == ski.value.digest


def test_server_certificate_is_valid_for_397_days(tls_dir: Path) -> None:
    cert = leaf(make(tls_dir))
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=397)
    assert cert.not_valid_before_utc < NOW


@pytest.mark.parametrize("name", ["server.key", "ca.key"])
def test_keys_are_ecdsa_p256(tls_dir: Path, name: str) -> None:
    make(tls_dir)
    key = serialization.load_pem_private_key((tls_dir / name).read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert isinstance(key.curve, ec.SECP256R1)


def test_ca_is_limited_to_signing_leaf_certificates(tls_dir: Path) -> None:
    constraints = ca(make(tls_dir)).extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical
    assert (constraints.value.ca, constraints.value.path_length) == (True, 0)


def test_ca_key_usage_is_cert_and_crl_signing(tls_dir: Path) -> None:
    usage = ca(make(tls_dir)).extensions.get_extension_for_class(x509.KeyUsage).value
    assert (usage.key_cert_sign, usage.crl_sign, usage.digital_signature) == (True, True, False)


def test_ca_is_valid_for_ten_years(tls_dir: Path) -> None:
    cert = ca(make(tls_dir))
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=3650)


def test_each_lab_ca_gets_its_own_name(tmp_path: Path) -> None:
    first = ca(make(tmp_path / "a")).subject.rfc4514_string()
    second = ca(make(tmp_path / "b")).subject.rfc4514_string()
    assert first.startswith("CN=relay lab CA ")
    assert first != second


@pytest.mark.parametrize("name", ["server.key", "ca.key"])
def test_truncated_key_raises_cert_error_naming_the_file_and_the_fix(
    tls_dir: Path, name: str
) -> None:
    make(tls_dir)
    path = tls_dir / name
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(CertError) as raised:
        make(tls_dir)
    assert str(path) in raised.value.message
    assert "delete" in raised.value.message


def test_garbage_server_key_is_not_overwritten(tls_dir: Path) -> None:
    make(tls_dir)
    (tls_dir / "server.key").write_bytes(b"not a key at all")
    with pytest.raises(CertError, match=r"server\.key is damaged"):
        make(tls_dir)
    assert (tls_dir / "server.key").read_bytes() == b"not a key at all"


def test_damaged_ca_key_error_warns_that_clients_need_the_new_ca(tls_dir: Path) -> None:
    make(tls_dir)
    (tls_dir / "ca.key").write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n")
    with pytest.raises(CertError, match=r"every client must then be given the new ca\.pem"):
        make(tls_dir)


def test_missing_ca_key_raises_cert_error(tls_dir: Path) -> None:
    make(tls_dir)
    (tls_dir / "ca.key").unlink()
    with pytest.raises(CertError, match=r"ca\.key: cannot read"):
        make(tls_dir)


def test_damaged_certificate_raises_cert_error_naming_the_file(tls_dir: Path) -> None:
    make(tls_dir)
    (tls_dir / "server.pem").write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n")
    with pytest.raises(CertError, match=r"server\.pem is damaged"):
        make(tls_dir)


def test_invalid_ip_raises_cert_error(tls_dir: Path) -> None:
    with pytest.raises(CertError, match=r"'300\.1\.1\.1' is not an IP address"):
        make(tls_dir, ips=("300.1.1.1",))


def test_non_ascii_name_raises_cert_error(tls_dir: Path) -> None:
    with pytest.raises(CertError, match="xn--"):
        make(tls_dir, names=("bücher.example",))


def test_naive_now_raises_cert_error(tls_dir: Path) -> None:
    with pytest.raises(CertError, match="timezone-aware"):
        make(tls_dir, now=datetime(2026, 3, 1, 12, 0))


def test_private_keys_never_reach_the_log(tls_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    make(tls_dir)
    make(tls_dir, ips=("198.51.100.7",))
    assert "issued server certificate" in caplog.text
    assert "PRIVATE KEY" not in caplog.text
    for name in ("server.key", "ca.key"):
        body = (tls_dir / name).read_text().splitlines()[1]
        assert body not in caplog.text
