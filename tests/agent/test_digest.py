"""management_agent.digest: picking a challenge and writing the answer, without sockets.

The parser and the response hash are relay.proto.http.digest's, tested in
tests/unit/test_http_digest.py; these tests check the header the client writes.
"""

from __future__ import annotations

import pytest

from management_agent.digest import (
    Challenge,
    DigestError,
    authorization,
    find,
    parse_challenges,
)

# RFC 7616 section 3.9.1.
NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
RFC_HEADER = (
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=SHA-256, '
    f'nonce="{NONCE}", opaque="{OPAQUE}", '
    'Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, '
    f'nonce="{NONCE}", opaque="{OPAQUE}"'
)


def _answer(challenge: Challenge, nc: int = 1) -> str:
    return authorization(
        challenge,
        user="Mufasa",
        password="Circle of Life",
        method="GET",
        uri="/dir/index.html",
        nc=nc,
        cnonce=CNONCE,
    )


def _fields(header: str) -> dict[str, str]:
    (parsed,) = parse_challenges(header)
    return dict(parsed.params)


def test_rfc7616_md5_example_answer_carries_its_fields() -> None:
    challenges = parse_challenges(RFC_HEADER)
    fields = _fields(_answer(challenges[1]))
    assert fields["response"] == "8ca523f5e9506fed4657c9700eebdbec"
    assert fields["nc"] == "00000001"
    assert fields["qop"] == "auth"
    assert fields["opaque"] == OPAQUE


def test_rfc7616_example_is_answered_with_sha256_when_offered() -> None:
    challenge = find(parse_challenges(RFC_HEADER), "digest")
    assert challenge is not None
    fields = _fields(_answer(challenge))
    assert fields["algorithm"] == "SHA-256"
    assert fields["response"] == (
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    )


def test_nonce_count_is_eight_hex_digits_and_changes_the_response() -> None:
    challenge = parse_challenges(RFC_HEADER)[1]
    first, second = _fields(_answer(challenge, 1)), _fields(_answer(challenge, 26))
    assert second["nc"] == "0000001a"
    assert first["response"] != second["response"]


def test_find_picks_by_scheme_in_a_mixed_header() -> None:
    challenges = parse_challenges('Basic realm="phone", Digest realm="phone", nonce="n1"')
    digest = find(challenges, "digest")
    basic = find(challenges, "basic")
    assert digest is not None and digest.get("nonce") == "n1"
    assert basic is not None and basic.scheme == "basic"
    assert find(challenges, "negotiate") is None


def test_challenge_without_qop_uses_the_rfc2069_form() -> None:
    (challenge,) = parse_challenges('Digest realm="r", nonce="n"')
    fields = _fields(_answer(challenge))
    assert "nc" not in fields and "qop" not in fields and "cnonce" not in fields


def test_values_with_quotes_and_backslashes_are_escaped_in_the_answer() -> None:
    (challenge,) = parse_challenges(r'Digest realm="a \"b\" c", nonce="n\\1", opaque="o,p"')
    fields = _fields(_answer(challenge))
    assert (fields["realm"], fields["nonce"], fields["opaque"]) == ('a "b" c', "n\\1", "o,p")


def test_session_variant_hashes_in_the_cnonce() -> None:
    (plain,) = parse_challenges('Digest realm="r", nonce="n", qop="auth", algorithm=MD5')
    (sess,) = parse_challenges('Digest realm="r", nonce="n", qop="auth", algorithm=MD5-sess')
    assert _fields(_answer(plain))["response"] != _fields(_answer(sess))["response"]


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ('Digest realm="r", nonce="n", algorithm=SHA-512-256', "algorithm SHA-512-256"),
        ('Digest realm="r", nonce="n", qop="auth-int"', "qop auth-int"),
        ('Digest realm="r", nonce="n", algorithm=X, qop="auth-int"', "algorithm X"),
        ('Digest realm="r"', "no nonce"),
        ('Basic realm="r"', "not a Digest challenge"),
    ],
)
def test_unanswerable_challenges_are_refused(header: str, reason: str) -> None:
    (challenge,) = parse_challenges(header)
    with pytest.raises(DigestError, match=reason):
        _answer(challenge)
