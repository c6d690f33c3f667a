"""Every relay certificate rule (seed 002 "Certificate Requirements", issue 7): one PFX made
by `openssl pkcs12 -export` per rule, and the finding `validate_pfx` gives for it."""

from __future__ import annotations

import base64
import random
from collections.abc import Sequence
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from certs.validate import MAX_PFX_BYTES, Report, validate_pfx
from tests.certs.pki import (
    FQDN,
    NOW,
    PASSWORD,
    Chain,
    Openssl,
    chain,
    issue,
    key_pem,
    merge_pfx,
    pem,
    rsa_key,
)


def check(
    data: bytes,
    c: Chain | None = None,
    *,
    fqdns: Sequence[str] = (FQDN,),
    password: str | None = PASSWORD,
) -> Report:
    """Validated with the chain's root standing in for a public CA, so only the rule under
    test speaks (the private-CA tests pass no roots)."""
    roots = [] if c is None else [c.root.cert]
    return validate_pfx(data, password, fqdns, NOW, trusted_roots=roots)


def full_pfx(openssl: Openssl, c: Chain, **options: str) -> bytes:
    return openssl.pfx(c.leaf.cert, c.leaf.key, c.cas, **options)


def errors(report: Report) -> list[str]:
    return [f.code for f in report.errors]


def warnings(report: Report) -> list[str]:
    return [f.code for f in report.warnings]


def only_error(report: Report, code: str) -> str:
    assert errors(report) == [code], report.errors
    return report.errors[0].message


def test_a_complete_ecdsa_chain_from_a_public_ca_is_ok(openssl: Openssl) -> None:
    c = chain()
    report = check(full_pfx(openssl, c), c)
    assert (report.ok, report.errors, report.warnings) == (True, (), ())


def test_a_complete_rsa_2048_chain_is_ok(openssl: Openssl) -> None:
    c = chain(leaf_key=rsa_key(2048))
    report = check(full_pfx(openssl, c), c)
    assert report.ok
    assert report.certificate is not None
    assert report.certificate.key == "RSA 2048"


def test_the_report_describes_the_certificate_leaf_to_root(openssl: Openssl) -> None:
    c = chain(dns=(FQDN, "relay2.branch.example"))
    facts = check(full_pfx(openssl, c), c).certificate
    assert facts is not None
    assert facts.common_name == FQDN
    assert facts.dns_names == (FQDN, "relay2.branch.example")
    assert facts.chain == (c.leaf.name, c.intermediate.name, c.root.name)
    assert facts.key == "ECDSA P-256"
    assert facts.not_after == c.leaf.cert.not_valid_after_utc
    assert not facts.private_ca


def test_an_rsa_1024_key_is_weak(openssl: Openssl) -> None:
    c = chain(leaf_key=rsa_key(1024))
    message = only_error(check(full_pfx(openssl, c), c), "weak_key")
    assert "RSA 1024" in message
    assert "2048" in message


def test_an_ec_curve_below_p256_is_weak(openssl: Openssl) -> None:
    c = chain(leaf_key=ec.generate_private_key(ec.SECP224R1()))
    assert "secp224r1" in only_error(check(full_pfx(openssl, c), c), "weak_key")


def test_a_leaf_without_extended_key_usage_lacks_server_authentication(
    openssl: Openssl,
) -> None:
    c = chain(eku=None)
    message = only_error(check(full_pfx(openssl, c), c), "eku_missing")
    assert "1.3.6.1.5.5.7.3.1" in message


def test_an_extended_key_usage_without_server_authentication_is_refused(
    openssl: Openssl,
) -> None:
    c = chain(eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    message = only_error(check(full_pfx(openssl, c), c), "eku_missing")
    assert "Client Authentication" in message


def test_an_fqdn_the_certificate_does_not_name_is_missing(openssl: Openssl) -> None:
    c = chain()
    message = only_error(check(full_pfx(openssl, c), c, fqdns=("other.example",)), "fqdn_missing")
    assert "other.example" in message
    assert FQDN in message


def test_a_wildcard_san_covers_one_label(openssl: Openssl) -> None:
    c = chain(cn="*.branch.example", dns=("*.branch.example",))
    assert check(full_pfx(openssl, c), c, fqdns=("relay.branch.example",)).ok


def test_a_wildcard_san_does_not_cover_two_labels(openssl: Openssl) -> None:
    c = chain(cn="*.branch.example", dns=("*.branch.example",))
    report = check(full_pfx(openssl, c), c, fqdns=("a.relay.branch.example",))
    only_error(report, "fqdn_missing")


def test_one_certificate_serves_several_relays_named_as_sans(openssl: Openssl) -> None:
    names = (FQDN, "relay2.branch.example", "relay3.branch.example")
    c = chain(dns=names)
    assert check(full_pfx(openssl, c), c, fqdns=names).ok


def test_every_relay_fqdn_given_must_be_named(openssl: Openssl) -> None:
    c = chain(dns=(FQDN, "relay2.branch.example"))
    report = check(full_pfx(openssl, c), c, fqdns=(FQDN, "relay3.branch.example"))
    message = only_error(report, "fqdn_missing")
    assert "relay3.branch.example" in message


def test_an_fqdn_only_in_the_common_name_is_accepted_with_a_warning(openssl: Openssl) -> None:
    c = chain(dns=())
    report = check(full_pfx(openssl, c), c)
    assert report.ok
    assert warnings(report) == ["fqdn_only_in_cn"]


def test_an_ip_address_as_common_name_is_refused(openssl: Openssl) -> None:
    c = chain(cn="192.0.2.10")
    assert "192.0.2.10" in only_error(check(full_pfx(openssl, c), c), "ip_in_name")


def test_an_ip_address_as_san_is_refused(openssl: Openssl) -> None:
    c = chain(ips=("192.0.2.10",))
    assert "192.0.2.10" in only_error(check(full_pfx(openssl, c), c), "ip_in_name")


def test_an_expired_leaf_is_refused(openssl: Openssl) -> None:
    c = chain(leaf_dates=(NOW - timedelta(days=400), NOW - timedelta(days=1)))
    message = only_error(check(full_pfx(openssl, c), c), "expired")
    assert c.leaf.name in message


def test_an_expired_intermediate_is_refused_by_name(openssl: Openssl) -> None:
    c = chain(intermediate_dates=(NOW - timedelta(days=900), NOW - timedelta(days=2)))
    message = only_error(check(full_pfx(openssl, c), c), "expired")
    assert f"the intermediate CA '{c.intermediate.name}'" in message


def test_a_certificate_not_yet_valid_is_refused(openssl: Openssl) -> None:
    c = chain(leaf_dates=(NOW + timedelta(days=1), NOW + timedelta(days=365)))
    assert "clock" in only_error(check(full_pfx(openssl, c), c), "not_yet_valid")


def test_expiry_within_30_days_is_a_warning(openssl: Openssl) -> None:
    c = chain(leaf_dates=(NOW - timedelta(days=80), NOW + timedelta(days=10)))
    report = check(full_pfx(openssl, c), c)
    assert report.ok
    assert warnings(report) == ["expires_soon"]
    assert "in 10 days" in report.warnings[0].message


def test_a_chain_missing_its_intermediate_is_incomplete(openssl: Openssl) -> None:
    c = chain()
    data = openssl.pfx(c.leaf.cert, c.leaf.key, [c.root.cert])
    message = only_error(check(data, c), "chain_incomplete")
    assert c.intermediate.name in message


def test_a_chain_without_its_root_is_incomplete(openssl: Openssl) -> None:
    c = chain()
    data = openssl.pfx(c.leaf.cert, c.leaf.key, [c.intermediate.cert])
    assert c.root.name in only_error(check(data, c), "chain_incomplete")


def test_a_chain_out_of_order_is_accepted_in_order(openssl: Openssl) -> None:
    c = chain()
    data = openssl.pfx(c.leaf.cert, c.leaf.key, [c.root.cert, c.intermediate.cert])
    report = check(data, c)
    assert report.ok, report.errors
    assert report.certificate is not None
    assert report.certificate.chain == (c.leaf.name, c.intermediate.name, c.root.name)


def test_a_wrong_password_is_bad_password(openssl: Openssl) -> None:
    c = chain()
    only_error(check(full_pfx(openssl, c), c, password="wrong"), "bad_password")


def test_no_password_for_a_protected_pfx_is_bad_password(openssl: Openssl) -> None:
    c = chain()
    message = only_error(check(full_pfx(openssl, c), c, password=None), "bad_password")
    assert "none was given" in message


def test_an_empty_password_opens_a_pfx_exported_without_one(openssl: Openssl) -> None:
    c = chain()
    assert check(full_pfx(openssl, c, password=""), c, password=None).ok


def test_pem_given_instead_of_a_pfx_says_how_to_make_one() -> None:
    c = chain()
    data = pem(c.leaf.cert, *c.cas) + key_pem(c.leaf.key)
    message = only_error(check(data, c), "not_pkcs12")
    assert "PEM" in message
    assert "openssl pkcs12 -export" in message


def test_a_truncated_pfx_is_reported_as_truncated(openssl: Openssl) -> None:
    c = chain()
    data = full_pfx(openssl, c)
    message = only_error(check(data[: len(data) // 2], c), "not_pkcs12")
    assert "truncated" in message


def test_a_base64_pfx_is_not_pkcs12_and_says_to_decode_it(openssl: Openssl) -> None:
    c = chain()
    data = base64.encodebytes(full_pfx(openssl, c))
    assert "base64 -d" in only_error(check(data, c), "not_pkcs12")


def test_garbage_is_not_pkcs12() -> None:
    data = random.Random(7).randbytes(3000)
    assert "not a PFX" in only_error(check(data), "not_pkcs12")


def test_an_empty_file_is_not_pkcs12() -> None:
    assert "empty" in only_error(check(b""), "not_pkcs12")


def test_a_file_over_the_size_cap_is_not_pkcs12() -> None:
    only_error(check(b"\x30" * (MAX_PFX_BYTES + 1)), "not_pkcs12")


def test_a_pfx_without_a_key_is_no_key(openssl: Openssl) -> None:
    c = chain()
    data = openssl.pfx(c.leaf.cert, None, c.cas, options=["-nokeys"])
    assert "no private key" in only_error(check(data, c), "no_key")


def test_a_pfx_with_two_keys_is_no_key(openssl: Openssl) -> None:
    plain = ["-nomac", "-keypbe", "NONE", "-certpbe", "NONE"]
    c = chain()
    other = chain()
    first = openssl.pfx(c.leaf.cert, c.leaf.key, c.cas, password="", options=plain)
    second = openssl.pfx(other.leaf.cert, other.leaf.key, password="", options=plain)
    message = only_error(check(merge_pfx(first, second), c, password=None), "no_key")
    assert "2 private keys" in message


def test_the_key_of_another_certificate_is_key_mismatch(openssl: Openssl) -> None:
    c = chain()
    stranger = issue("stranger")
    data = openssl.pfx(None, stranger.key, [c.leaf.cert, *c.cas], options=["-nocerts"])
    message = only_error(check(data, c), "key_mismatch")
    assert c.leaf.name in message


def test_a_private_ca_is_accepted_with_a_warning_naming_the_phone_parameter(
    openssl: Openssl,
) -> None:
    c = chain()
    report = check(full_pfx(openssl, c))
    assert report.ok
    assert warnings(report) == ["private_ca"]
    assert "device.sec.TLS.customCaCert1" in report.warnings[0].message
    assert report.certificate is not None
    assert report.certificate.private_ca


def test_a_self_signed_leaf_is_a_private_ca(openssl: Openssl) -> None:
    alone = issue(FQDN, dns=(FQDN,))
    report = check(openssl.pfx(alone.cert, alone.key))
    assert (report.ok, warnings(report)) == (True, ["private_ca"])


def test_the_system_store_makes_a_test_root_private(openssl: Openssl) -> None:
    c = chain()
    report = validate_pfx(full_pfx(openssl, c), PASSWORD, [FQDN], NOW)
    assert warnings(report) == ["private_ca"]


def test_several_problems_are_all_reported(openssl: Openssl) -> None:
    c = chain(
        cn="192.0.2.10",
        dns=(),
        eku=None,
        leaf_key=rsa_key(1024),
        leaf_dates=(NOW - timedelta(days=400), NOW - timedelta(days=1)),
    )
    report = check(full_pfx(openssl, c), c)
    assert set(errors(report)) == {
        "eku_missing",
        "ip_in_name",
        "fqdn_missing",
        "expired",
        "weak_key",
    }


def test_every_message_says_what_to_do(openssl: Openssl) -> None:
    c = chain(eku=None, leaf_key=rsa_key(1024), dns=())
    report = check(full_pfx(openssl, c), c, fqdns=("x.example",))
    assert report.errors
    for finding in report.errors:
        assert any(w in finding.message for w in ("reissue", "export", "give")), finding


def test_the_json_contract_has_ok_errors_and_warnings(openssl: Openssl) -> None:
    c = chain()
    body = check(full_pfx(openssl, c), c, fqdns=("other.example",)).as_json()
    assert body["ok"] is False
    assert [set(e) for e in body["errors"]] == [{"code", "message"}]
    assert body["warnings"] == []


def test_a_naive_now_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="timezone"):
        validate_pfx(b"", None, [], NOW.replace(tzinfo=None))


def test_an_intermediate_restricted_to_client_auth_is_eku_missing(openssl: Openssl) -> None:
    root = issue("Root", ca=True, eku=None)
    sub = issue("Client CA", root, ca=True, eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    leaf = issue(FQDN, sub, dns=(FQDN,))
    data = openssl.pfx(leaf.cert, leaf.key, [sub.cert, root.cert])
    report = validate_pfx(data, PASSWORD, [FQDN], NOW, trusted_roots=[root.cert])
    assert "Client CA" in only_error(report, "eku_missing")
