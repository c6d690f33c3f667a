"""Zero-touch redirect rules: MACs, profiles, the synced directory and its ETag
(phones.md section 1 item 5)."""

from __future__ import annotations

import pytest

from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.ztp import (
    MAX_DEVICES,
    MAX_PASSWORD,
    MAX_URL,
    ZtpAnswer,
    ZtpDirectoryData,
    etag_of,
    none_match,
    parse_assignment,
    parse_directory,
    parse_mac,
    parse_profile,
)

PROFILE = {"name": "HQ phones", "url": "https://prov.example.com/phones"}


def refusal(call: object, *args: object) -> RuleError:
    assert callable(call)
    with pytest.raises(RuleError) as refused:
        call(*args)
    return refused.value


@pytest.mark.parametrize(
    "text", ["0004f23ea4e1", "0004F23EA4E1", "00:04:f2:3e:a4:e1", "00-04-F2-3E-A4-E1"]
)
def test_a_mac_is_accepted_bare_or_with_colons_or_dashes_and_kept_lower_case(text: str) -> None:
    assert parse_mac(text) == "0004f23ea4e1"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0004f23ea4e",
        "0004f23ea4e1f",
        "0004f23ea4eg",
        "00:04-f2:3e:a4:e1",
        "0004.f23e.a4e1",
        "000:4f2:3ea:4e1",
        " 0004f23ea4e1",
        "00:04:f2:3e:a4:e1:",
        "x" * 10_000,
    ],
)
def test_anything_else_is_a_400_bad_mac(text: str) -> None:
    error = refusal(parse_mac, text)
    assert (error.status, error.code) == (400, "invalid_mac")


def test_a_mac_that_is_not_a_string_is_a_400() -> None:
    assert refusal(parse_mac, 4242).status == 400


def test_a_profile_takes_name_url_and_an_optional_account() -> None:
    profile = parse_profile({**PROFILE, "user": "phones", "password": "s3cret"})
    assert (profile.name, profile.url, profile.user, profile.password) == (
        "HQ phones",
        "https://prov.example.com/phones",
        "phones",
        "s3cret",
    )
    assert parse_profile(PROFILE).user == ""


def test_a_profile_password_is_never_in_its_repr() -> None:
    assert "s3cret" not in repr(parse_profile({**PROFILE, "user": "u", "password": "s3cret"}))


@pytest.mark.parametrize(
    "url",
    [
        "http://prov.example.com/",
        "https://192.0.2.10:8443/cfg",
        "ftp://prov.example.com",
        "ftps://prov.example.com/phones",
        "tftp://192.0.2.10",
        "https://[2001:db8::1]/x",
    ],
)
def test_the_five_provisioning_schemes_are_accepted(url: str) -> None:
    assert parse_profile({**PROFILE, "url": url}).url == url


@pytest.mark.parametrize(
    "url",
    [
        "",
        "prov.example.com",
        "gopher://prov.example.com",
        "https://prov.example.com/my phones",
        "https://prov.example.com\\phones",
        "https://prov.example.com/\tx",
        "https:///nohost",
        "https://prov.example.com:99999/",
        "https://[2001:db8::1/",
        "https://prov.exämple.com/",
        "https://" + "a" * MAX_URL,
    ],
)
def test_a_url_phones_cannot_use_is_refused(url: str) -> None:
    error = refusal(parse_profile, {**PROFILE, "url": url})
    assert (error.status, error.field) == (400, "url")


def test_an_account_inside_the_url_is_refused_so_urls_hold_no_password() -> None:
    error = refusal(parse_profile, {**PROFILE, "url": "https://u:p@prov.example.com/"})
    assert "user and password" in error.message


def test_a_user_with_a_colon_is_refused() -> None:
    assert refusal(parse_profile, {**PROFILE, "user": "a:b"}).field == "user"


def test_a_password_without_a_user_is_refused() -> None:
    assert refusal(parse_profile, {**PROFILE, "password": "x"}).field == "user"


def test_an_overlong_password_is_refused() -> None:
    body = {**PROFILE, "user": "u", "password": "p" * (MAX_PASSWORD + 1)}
    assert refusal(parse_profile, body).field == "password"


def test_a_password_phones_cannot_store_is_refused() -> None:
    body = {**PROFILE, "user": "u", "password": "pässword"}
    assert refusal(parse_profile, body).field == "password"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": PROFILE["url"]}, "name"),
        ({**PROFILE, "name": " padded"}, "name"),
        ({**PROFILE, "name": "n" * 65}, "name"),
        ({**PROFILE, "name": "line\nbreak"}, "name"),
        ({**PROFILE, "user": 7}, "user"),
        ({**PROFILE, "colour": "blue"}, "colour"),
        (["not", "an", "object"], "body"),
    ],
)
def test_a_bad_profile_body_names_the_field(body: object, field: str) -> None:
    error = refusal(parse_profile, body)
    assert (error.status, error.field) == (400, field)


def test_an_assignment_is_a_mac_and_a_profile_id() -> None:
    assert parse_assignment({"id": "00:04:F2:3E:A4:E1", "profile": "p1"}) == (
        "0004f23ea4e1",
        "p1",
    )


def test_an_assignment_with_a_bad_mac_is_a_400_on_id() -> None:
    error = refusal(parse_assignment, {"id": "nope", "profile": "p1"})
    assert (error.status, error.field) == (400, "id")


def test_an_assignment_without_a_profile_is_a_400() -> None:
    assert refusal(parse_assignment, {"id": "0004f23ea4e1"}).field == "profile"


def test_a_directory_round_trips_through_its_wire_form() -> None:
    data = ZtpDirectoryData(
        3, {"0004f23ea4e1": ZtpAnswer("0004f23ea4e1", "https://p.example/", "u", "pw")}
    )
    assert parse_directory(data.to_wire()) == data


def test_a_directory_entry_is_checked_by_the_profile_rules() -> None:
    wire = {"version": 1, "devices": {"0004f23ea4e1": {"url": "https://a b/"}}}
    assert refusal(parse_directory, wire).field == "devices.url"


@pytest.mark.parametrize(
    "wire",
    [
        None,
        {"devices": {}},
        {"version": True, "devices": {}},
        {"version": -1, "devices": {}},
        {"version": 1, "devices": []},
        {"version": 1, "devices": {"zz": {"url": "https://p.example/"}}},
        {"version": 1, "devices": {"0004f23ea4e1": "https://p.example/"}},
    ],
)
def test_a_malformed_directory_is_refused(wire: object) -> None:
    assert refusal(parse_directory, wire).status == 400


def test_a_directory_over_the_device_cap_is_refused() -> None:
    devices = {f"{n:012x}": {"url": "tftp://p"} for n in range(MAX_DEVICES + 1)}
    assert "more than" in refusal(parse_directory, {"version": 1, "devices": devices}).message


def test_the_etag_names_the_tenant_and_the_version() -> None:
    assert etag_of("t1", 4) == '"t1-4"'
    assert etag_of("t1", 4) != etag_of("t2", 4)


@pytest.mark.parametrize("header", ['"t1-4"', 'W/"t1-4"', '"x", "t1-4"', "*"])
def test_if_none_match_naming_the_etag_means_unchanged(header: str) -> None:
    assert none_match(header, '"t1-4"')


@pytest.mark.parametrize("header", [None, "", '"t1-3"', '"t1-4' + " " * 2000 + '"'])
def test_if_none_match_naming_another_etag_means_changed(header: str | None) -> None:
    assert not none_match(header, '"t1-4"')
