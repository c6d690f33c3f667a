"""Behaviours of the model table and firmware file names (phones.md sections 1 and 3)."""

from __future__ import annotations

import pytest

from relay.proto.polycom.models import OUIS, PART_NUMBERS, ModelError, firmware_file_name


def test_part_numbers_hold_the_phones_md_sample() -> None:
    assert dict(PART_NUMBERS) == {
        "VVX300": "3111-46135-002",
        "VVX310": "3111-46161-001",
        "VVX400": "3111-46157-002",
        "VVX410": "3111-46162-001",
        "VVX500": "3111-44500-001",
        "VVX600": "3111-44600-001",
        "VVX101": "3111-40250-001",
        "VVX201": "3111-40450-001",
        "VVX150": "3111-48810-001",
        "VVX250": "3111-48820-001",
        "VVX350": "3111-48830-001",
        "VVX450": "3111-48840-001",
        "VVX1500": "2345-17960-001",
        "SPIP650": "2345-12600-001",
        "SSIP7000": "3111-40000-001",
    }


def test_part_numbers_are_read_only() -> None:
    with pytest.raises(TypeError):
        PART_NUMBERS["VVX999"] = "0000-00000-000"  # type: ignore[index]


def test_ouis_are_the_two_polycom_prefixes() -> None:
    assert OUIS == ("0004f2", "64167f")


def test_a_bare_file_name_gets_the_part_number_prefix() -> None:
    assert firmware_file_name("sip.ld", "3111-44500-001") == "3111-44500-001.sip.ld"


def test_a_relative_path_prefixes_only_its_last_segment() -> None:
    assert firmware_file_name("sw/6.4.3/sip.ld", "3111-44500-001") == (
        "sw/6.4.3/3111-44500-001.sip.ld"
    )


def test_a_url_prefixes_only_its_last_path_segment() -> None:
    url = "https://user:pass@relay.example:8443/sw/6.4.3/sip.ld"
    assert firmware_file_name(url, "3111-44500-001") == (
        "https://user:pass@relay.example:8443/sw/6.4.3/3111-44500-001.sip.ld"
    )


def test_a_url_query_is_kept_after_the_prefixed_name() -> None:
    assert firmware_file_name("https://h/sip.ld?v=1", "3111-44500-001") == (
        "https://h/3111-44500-001.sip.ld?v=1"
    )


def test_a_url_without_a_path_is_refused() -> None:
    with pytest.raises(ModelError):
        firmware_file_name("https://relay.example", "3111-44500-001")


def test_a_path_ending_in_a_slash_is_refused() -> None:
    with pytest.raises(ModelError):
        firmware_file_name("https://relay.example/sw/", "3111-44500-001")


def test_an_empty_path_is_refused() -> None:
    with pytest.raises(ModelError):
        firmware_file_name("", "3111-44500-001")


def test_a_path_with_a_space_is_refused() -> None:
    with pytest.raises(ModelError):
        firmware_file_name("my sip.ld", "3111-44500-001")


def test_a_malformed_part_number_is_refused() -> None:
    with pytest.raises(ModelError):
        firmware_file_name("sip.ld", "../3111")
