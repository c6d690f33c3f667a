"""`prepare` under arbitrary and damaged PEM input: it raises only InstallRefused."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given, settings
from hypothesis import strategies as st

from certs.rotation import InstallRefused, prepare
from tests.certs.pki import NOW, chain, key_pem, pem

FUZZ = settings(max_examples=200, deadline=None)
GOOD = chain()
CHAIN_PEM = pem(GOOD.leaf.cert, GOOD.intermediate.cert, GOOD.root.cert)
KEY_PEM = key_pem(GOOD.leaf.key)


def assert_refused_or_prepared(chain_pem: bytes, key: bytes) -> None:
    try:
        prepare(chain_pem, key, NOW, trusted_roots=())
    except InstallRefused as exc:
        assert exc.findings and all(f.message for f in exc.findings)


@FUZZ
@given(chain_pem=st.binary(max_size=4096), key=st.binary(max_size=2048))
def test_arbitrary_bytes_are_refused_not_raised(chain_pem: bytes, key: bytes) -> None:
    assert_refused_or_prepared(chain_pem, key)


@FUZZ
@given(cut=st.integers(0, len(CHAIN_PEM)), flip=st.integers(0, len(CHAIN_PEM) - 1))
def test_a_damaged_chain_is_refused_not_raised(cut: int, flip: int) -> None:
    damaged = bytearray(CHAIN_PEM[:cut] + CHAIN_PEM[cut:])
    damaged[flip] ^= 0x01
    assert_refused_or_prepared(bytes(damaged[:cut] or damaged), KEY_PEM)


def test_a_certificate_with_an_unknown_version_is_refused_not_raised() -> None:
    """Found by the test above: cryptography raises InvalidVersion, not ValueError."""
    der = GOOD.leaf.cert.public_bytes(serialization.Encoding.DER)
    v3 = bytes.fromhex("a003020102")
    assert v3 in der
    broken = der.replace(v3, bytes.fromhex("a003020105"), 1)
    body = base64.encodebytes(broken).decode().replace("\n", "")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    text = "\n".join(["-----BEGIN CERTIFICATE-----", *lines, "-----END CERTIFICATE-----", ""])
    with pytest.raises(InstallRefused):
        prepare(text.encode(), KEY_PEM, NOW, trusted_roots=())
