"""relay.sim.ztpclient: the phone's side of the ZTP redirect (phones.md section 1.5)."""

from __future__ import annotations

import json

import pytest

from relay.sim.ztpclient import MAX_ANSWER, ZtpAnswer, ZtpError, lookup_url, parse_answer

MAC = "0004f2a1b2c3"


def body(**fields: object) -> bytes:
    return json.dumps({"mac": MAC, **fields}).encode()


def test_the_lookup_is_by_mac_under_the_service_url() -> None:
    url = lookup_url("https://198.51.100.1:9443/ztp/v1/", MAC)
    assert str(url) == f"https://198.51.100.1:9443/ztp/v1/devices/{MAC}"


def test_an_answer_gives_the_url_and_account() -> None:
    answer = parse_answer(body(url="https://relay/prov/", user="u", password="p@ss"), MAC)
    assert answer == ZtpAnswer("https://relay/prov/", "u", "p@ss")


def test_the_account_goes_into_the_server_url() -> None:
    answer = ZtpAnswer("ftp://relay/prov/", "PlcmSpIp", "p@ss")
    assert answer.server() == "ftp://PlcmSpIp:p%40ss@relay/prov/"


def test_credentials_already_in_the_url_stay() -> None:
    answer = ZtpAnswer("https://a:b@relay/prov/", "u", "p")
    assert answer.server() == "https://a:b@relay/prov/"


def test_an_answer_without_an_account_leaves_the_url_as_it_is() -> None:
    answer = parse_answer(body(url="tftp://198.51.100.1/", user=None, password=None), MAC)
    assert answer.server() == "tftp://198.51.100.1/"


def test_the_password_is_not_in_the_repr() -> None:
    assert "secret" not in repr(ZtpAnswer("https://relay/", "u", "secret"))


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"not json", "not JSON"),
        (b"[]", "not a JSON object"),
        (body(url="https://relay/", mac="ffffffffffff"), "another MAC"),
        (body(url="https://relay/with space/"), "no usable url"),
        (body(url="gopher://relay/"), "URL with a host"),
        (body(url="https:///no-host"), "URL with a host"),
        (body(), "no usable url"),
        (body(url="https://relay/", password=7), "password"),
        (b" " * (MAX_ANSWER + 1), "over"),
    ],
)
def test_an_unusable_answer_is_a_ztp_error(data: bytes, why: str) -> None:
    with pytest.raises(ZtpError, match=why):
        parse_answer(data, MAC)
