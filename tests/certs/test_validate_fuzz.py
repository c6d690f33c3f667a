"""`validate_pfx` under arbitrary and damaged input: it never raises, and what it cannot
read it reports with one of the codes of issue 7's contract."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from certs.validate import validate_pfx
from tests.certs.pki import FQDN, NOW, PASSWORD, chain, openssl_in

FUZZ = settings(max_examples=300, deadline=None)
CODES = {
    "not_pkcs12",
    "bad_password",
    "no_key",
    "key_mismatch",
    "chain_incomplete",
    "eku_missing",
    "fqdn_missing",
    "ip_in_name",
    "expired",
    "not_yet_valid",
    "weak_key",
}
WARNINGS = {"expires_soon", "private_ca", "fqdn_only_in_cn"}


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    c = chain()
    directory: Path = tmp_path_factory.mktemp("pfx")
    return openssl_in(directory).pfx(c.leaf.cert, c.leaf.key, c.cas)


def assert_well_formed(data: bytes, password: str | None) -> None:
    report = validate_pfx(data, password, [FQDN], NOW, trusted_roots=())
    assert {f.code for f in report.errors} <= CODES
    assert {f.code for f in report.warnings} <= WARNINGS
    assert all(f.message for f in (*report.errors, *report.warnings))
    assert report.ok == (not report.errors)


@FUZZ
@given(data=st.binary(max_size=4096), password=st.one_of(st.none(), st.text(max_size=20)))
def test_arbitrary_bytes_never_raise(data: bytes, password: str | None) -> None:
    assert_well_formed(data, password)


@FUZZ
@given(
    prefix=st.sampled_from([b"", b"\x30\x82", b"\x30\x80\x02\x01\x03", b"-----BEGIN X-----"]),
    data=st.binary(max_size=2048),
)
def test_pfx_like_headers_never_raise(prefix: bytes, data: bytes) -> None:
    assert_well_formed(prefix + data, PASSWORD)


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)), max_size=8))
def test_a_damaged_pfx_never_raises(good: bytes, edits: list[tuple[int, int]]) -> None:
    damaged = bytearray(good)
    for position, value in edits:
        damaged[position % len(damaged)] = value
    assert_well_formed(bytes(damaged), PASSWORD)


@FUZZ
@given(cut=st.integers(min_value=0))
def test_a_truncated_pfx_is_not_pkcs12(good: bytes, cut: int) -> None:
    report = validate_pfx(good[: cut % len(good)], PASSWORD, [FQDN], NOW, trusted_roots=())
    assert [f.code for f in report.errors] == ["not_pkcs12"]
