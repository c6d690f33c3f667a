"""The shared Digest parser never crashes on hostile headers: DigestError or a result, quickly.

Phones send `WWW-Authenticate` to the agent and anyone who reaches the
simulator sends it `Authorization` (RFC 7235 section 4), so both parsers get
any text, near-misses of real headers built from their pieces, and long
runs of one piece; values written with `quote` always read back.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.proto.http.digest import (
    MAX_HEADER,
    MAX_PARAMS,
    Challenge,
    DigestError,
    parse_challenges,
    parse_params,
    quote,
)

FUZZ = settings(max_examples=400, deadline=None)
SECONDS_PER_HEADER = 0.5
ParseResult = TypeVar("ParseResult")
VALID = (
    'Digest realm="Polycom", qop="auth, auth-int", algorithm=MD5, '
    'nonce="7ypf/xlj9XXwfDPEoM4URrv", opaque="FQhe\\"qaU", stale=FALSE, Basic realm="x"'
)

mutated = st.tuples(st.integers(0, len(VALID)), st.integers(0, 20), st.text(max_size=32)).map(
    lambda cut: VALID[: cut[0]] + cut[2] + VALID[cut[0] + cut[1] :]
)
header_ish = st.lists(
    st.sampled_from(
        ["Digest", "Basic", " ", "\t", ",", "=", '"', "\\", "realm", "a", "b=c", '"x,y"', "\n", "é"]
    ),
    max_size=200,
).map("".join)
repeated = st.tuples(
    st.sampled_from(['a="', "a=b, ", "Digest ", "\\", '"', "a = ", "x\\"]),
    st.integers(1, MAX_HEADER),
).map(lambda run: (run[0] * run[1])[: MAX_HEADER + 10])
headers = st.one_of(st.text(max_size=MAX_HEADER + 100), mutated, header_ish, repeated)


def parse_or_error(parse: Callable[[str], ParseResult], text: str) -> ParseResult | None:
    started = time.monotonic()
    try:
        result: ParseResult | None = parse(text)
    except DigestError:
        result = None
    assert time.monotonic() - started < SECONDS_PER_HEADER
    return result


@FUZZ
@given(headers)
def test_any_text_parses_to_challenges_or_digest_error(text: str) -> None:
    challenges = parse_or_error(parse_challenges, text)

    if challenges is not None:
        assert len(text) <= MAX_HEADER
        assert sum(len(c.params) for c in challenges) <= MAX_PARAMS
        for challenge in challenges:
            assert challenge.scheme and challenge.scheme == challenge.scheme.lower()
            assert all(name and name == name.lower() for name, _ in challenge.params)


@FUZZ
@given(headers)
def test_any_text_parses_to_params_or_digest_error(text: str) -> None:
    params = parse_or_error(parse_params, text)

    if params is not None:
        assert len(text) <= MAX_HEADER
        assert len(params) <= MAX_PARAMS


@FUZZ
@given(st.text(max_size=200))
def test_quoted_values_read_back(value: str) -> None:
    assert parse_params(f'v="{quote(value)}"') == (("v", value),)
    assert parse_challenges(f'Digest v="{quote(value)}"') == (Challenge("digest", (("v", value),)),)
