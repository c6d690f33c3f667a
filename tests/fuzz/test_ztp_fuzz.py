"""The ZTP parsers under random input (relay/cloud/rules/ztp.py): MACs, partner API
profile and device bodies, and the synced directory raise only RuleError (a 400), and
what they accept is what they promise (phones.md section 1 item 5)."""

from __future__ import annotations

import contextlib
import json
import re
import string
from typing import Any
from urllib.parse import urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.ztp import (
    MAX_URL,
    SCHEMES,
    ZtpAnswer,
    ZtpDirectoryData,
    none_match,
    parse_assignment,
    parse_directory,
    parse_mac,
    parse_profile,
)

FUZZ = settings(max_examples=300, deadline=None)
MAC12 = re.compile(r"[0-9a-f]{12}")

HEX = st.text(alphabet="0123456789abcdefABCDEF", min_size=12, max_size=12)
MAC_LIKE = st.one_of(
    HEX,
    HEX.map(lambda h: ":".join(h[i : i + 2] for i in range(0, 12, 2))),
    HEX.map(lambda h: "-".join(h[i : i + 2] for i in range(0, 12, 2))),
    st.text(alphabet="0123456789abcdefABCDEFg:-. ", max_size=20),
    st.text(max_size=40),
)
URL_LIKE = st.one_of(
    st.builds(
        lambda scheme, host, path: f"{scheme}://{host}{path}",
        st.sampled_from([*SCHEMES, "gopher", "HTTP", ""]),
        st.text(alphabet=string.ascii_letters + string.digits + ".-:[]@%", max_size=30),
        st.text(alphabet=string.printable + "é\\", max_size=30),
    ),
    st.text(max_size=60),
)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30), URL_LIKE
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(["name", "url", "user", "password", "id", "profile", "x"]),
            inner,
            max_size=5,
        ),
    ),
    max_leaves=12,
)
PROFILE_LIKE = st.fixed_dictionaries(
    {"name": st.one_of(st.text(max_size=70), SCALARS), "url": URL_LIKE},
    optional={"user": st.one_of(st.text(max_size=70), SCALARS), "password": SCALARS},
)
DIRECTORY_LIKE = st.fixed_dictionaries(
    {
        "version": st.one_of(st.integers(min_value=-2, max_value=10**20), SCALARS),
        "devices": st.one_of(
            st.dictionaries(MAC_LIKE, st.one_of(PROFILE_LIKE, JSONISH), max_size=6), JSONISH
        ),
    }
)


@FUZZ
@given(st.one_of(MAC_LIKE, SCALARS))
def test_a_mac_is_twelve_lower_case_hex_digits_or_a_400(value: object) -> None:
    try:
        mac = parse_mac(value)
    except RuleError as exc:
        assert exc.status == 400
        return
    assert MAC12.fullmatch(mac)
    assert parse_mac(mac) == mac


@FUZZ
@given(st.one_of(PROFILE_LIKE, JSONISH))
def test_an_accepted_profile_has_a_phone_usable_url(body: Any) -> None:
    try:
        profile = parse_profile(body)
    except RuleError as exc:
        assert exc.status == 400
        return
    assert len(profile.url) <= MAX_URL
    assert " " not in profile.url and "\\" not in profile.url
    parts = urlsplit(profile.url)
    assert parts.scheme in SCHEMES and parts.hostname and "@" not in parts.netloc
    assert ":" not in profile.user


@FUZZ
@given(st.one_of(st.fixed_dictionaries({"id": MAC_LIKE, "profile": SCALARS}), JSONISH))
def test_a_device_body_raises_only_a_400(body: Any) -> None:
    with contextlib.suppress(RuleError):
        mac, profile = parse_assignment(body)
        assert MAC12.fullmatch(mac) and profile


@FUZZ
@given(st.one_of(DIRECTORY_LIKE, JSONISH))
def test_an_accepted_directory_reads_back_equal_after_json(value: Any) -> None:
    try:
        data = parse_directory(value)
    except RuleError as exc:
        assert exc.status == 400
        return
    assert parse_directory(json.loads(json.dumps(data.to_wire()))) == data


@FUZZ
@given(
    st.dictionaries(
        HEX.map(str.lower),
        st.builds(
            lambda url, user, password: (url, user, password),
            st.sampled_from(["https://p.example/x", "tftp://192.0.2.1", "ftp://h:21/"]),
            st.text(alphabet=string.ascii_letters, max_size=10),
            st.text(alphabet=string.printable.strip(), max_size=10),
        ),
        max_size=8,
    ),
    st.integers(min_value=0, max_value=10**6),
)
def test_every_directory_the_cloud_can_write_is_read(
    devices: dict[str, tuple[str, str, str]], version: int
) -> None:
    data = ZtpDirectoryData(version, {m: ZtpAnswer(m, *a) for m, a in devices.items()})
    assert parse_directory(data.to_wire()) == data


@FUZZ
@given(st.one_of(st.none(), st.text(max_size=2000)), st.text(max_size=40))
def test_if_none_match_never_fails(header: str | None, etag: str) -> None:
    assert none_match(header, etag) in (True, False)
