"""relay.proto.http.digest: the auth-param parser and the RFC 7616 response hash."""

from __future__ import annotations

import pytest

from relay.proto.http.digest import (
    MAX_HEADER,
    MAX_PARAMS,
    DigestError,
    parse_challenges,
    parse_params,
    quote,
    response,
)

# RFC 7616 section 3.9.1.
NONCE = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v"
OPAQUE = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"
CNONCE = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
REALM = "http-auth@example.org"
RFC_HEADER = (
    f'Digest realm="{REALM}", qop="auth, auth-int", algorithm=SHA-256, '
    f'nonce="{NONCE}", opaque="{OPAQUE}", '
    f'Digest realm="{REALM}", qop="auth, auth-int", algorithm=MD5, '
    f'nonce="{NONCE}", opaque="{OPAQUE}"'
)


def _rfc_response(algorithm: str, *, nc: str = "00000001", qop: str = "auth") -> str:
    return response(
        algorithm=algorithm,
        username="Mufasa",
        realm=REALM,
        password="Circle of Life",
        method="GET",
        uri="/dir/index.html",
        nonce=NONCE,
        nc=nc,
        cnonce=CNONCE,
        qop=qop,
    )


def test_rfc7616_md5_example_response_matches() -> None:
    assert _rfc_response("MD5") == "8ca523f5e9506fed4657c9700eebdbec"


def test_rfc7616_sha256_example_response_matches() -> None:
    assert _rfc_response("SHA-256") == (
        "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    )


def test_algorithm_names_are_case_insensitive() -> None:
    assert _rfc_response("md5") == _rfc_response("MD5")


def test_nonce_count_session_and_qop_each_change_the_response() -> None:
    plain = _rfc_response("MD5")

    assert _rfc_response("MD5", nc="0000001a") != plain
    assert _rfc_response("MD5-sess") != plain
    assert _rfc_response("MD5", qop="") != plain


@pytest.mark.parametrize(
    ("algorithm", "qop"), [("SHA-512-256", "auth"), ("", "auth"), ("MD5", "auth-int")]
)
def test_unsupported_algorithm_or_qop_is_refused(algorithm: str, qop: str) -> None:
    with pytest.raises(DigestError, match="unsupported"):
        _rfc_response(algorithm, qop=qop)


def test_rfc7616_header_with_two_challenges_parses_into_both() -> None:
    challenges = parse_challenges(RFC_HEADER)

    assert [c.scheme for c in challenges] == ["digest", "digest"]
    assert [c.get("algorithm") for c in challenges] == ["SHA-256", "MD5"]
    assert challenges[1].get("qop") == "auth, auth-int"
    assert challenges[1].get("opaque") == OPAQUE


def test_schemes_and_parameter_names_are_lower_cased_values_kept() -> None:
    (challenge,) = parse_challenges('DIGEST Realm="Mixed Case", NONCE=AbC')

    assert challenge.scheme == "digest"
    assert challenge.params == (("realm", "Mixed Case"), ("nonce", "AbC"))


def test_quoted_values_keep_commas_and_unescape_backslashes() -> None:
    (challenge,) = parse_challenges(r'Digest realm="a \"b\", c\\d", nonce="x, y=z"')

    assert challenge.get("realm") == 'a "b", c\\d'
    assert challenge.get("nonce") == "x, y=z"


def test_basic_and_digest_in_one_header_are_told_apart() -> None:
    challenges = parse_challenges('Basic realm="phone", Digest realm="phone", nonce="n1"')

    assert [(c.scheme, c.get("realm")) for c in challenges] == [
        ("basic", "phone"),
        ("digest", "phone"),
    ]


def test_stale_flag_is_read_case_insensitively() -> None:
    (challenge,) = parse_challenges('Digest realm="r", nonce="n", stale=TRUE')
    assert challenge.stale


def test_a_param_list_alone_parses_with_white_space_around_the_equals() -> None:
    params = parse_params(' username = "Polycom" ,qop=auth,  nc=00000001 , ')

    assert params == (("username", "Polycom"), ("qop", "auth"), ("nc", "00000001"))


@pytest.mark.parametrize(
    "text",
    ['a="unterminated', "a=b c=d", "a=", "=b", "a=b, Basic", 'a="x"y', "a=/x"],
)
def test_a_param_list_that_is_not_only_params_is_refused(text: str) -> None:
    with pytest.raises(DigestError, match="malformed"):
        parse_params(text)


@pytest.mark.parametrize("header", ['Digest realm="x" junk', "Negotiate abc==", '"x"'])
def test_malformed_challenges_are_refused(header: str) -> None:
    with pytest.raises(DigestError, match="malformed"):
        parse_challenges(header)


def test_quote_round_trips_through_the_parser() -> None:
    value = 'a "quoted" \\ value, with=commas'

    assert parse_params(f'v="{quote(value)}"') == (("v", value),)


def test_oversized_header_is_refused() -> None:
    with pytest.raises(DigestError, match="too long"):
        parse_challenges("Digest " + "a" * MAX_HEADER)
    with pytest.raises(DigestError, match="too long"):
        parse_params("a" * (MAX_HEADER + 1))


def test_too_many_params_are_refused_across_challenges() -> None:
    half = ", ".join(f"p{i}=v" for i in range(MAX_PARAMS // 2))
    assert len(parse_challenges(f"A {half}, B {half}")) == 2

    with pytest.raises(DigestError, match="auth parameters"):
        parse_challenges(f"A {half}, B {half}, C x=y")
    with pytest.raises(DigestError, match="auth parameters"):
        parse_params(", ".join(f"p{i}=v" for i in range(MAX_PARAMS + 1)))
