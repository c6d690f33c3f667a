"""Behaviours of the phone User-Agent codec (phones.md section 2)."""

from __future__ import annotations

import pytest

from relay.proto.polycom.useragent import (
    MAX_USER_AGENT,
    UserAgent,
    UserAgentError,
    format_user_agent,
    normalize_model,
    parse_user_agent,
)

# phones.md section 2, verbatim, with the parts that produce each line.
EXAMPLES = [
    (
        "FileTransport PolycomVVX-VVX_500-UA/5.9.7.4477 Type/Application",
        ("PolycomVVX", "VVX_500", "5.9.7.4477", "application", None, "FileTransport"),
        UserAgent("PolycomVVX", "VVX500", "5.9.7.4477", "application", None),
    ),
    (
        "FileTransport PolycomVVX-VVX_500-UA/5.9.7.47435 Type/Updater",
        ("PolycomVVX", "VVX_500", "5.9.7.47435", "updater", None, "FileTransport"),
        UserAgent("PolycomVVX", "VVX500", "5.9.7.47435", "updater", None),
    ),
    (
        "FileTransport PolycomSoundPointIP-SPIP_550-UA/4.0.15.1047 (SN:0004f2a1b2c3) "
        "Type/Application",
        (
            "PolycomSoundPointIP",
            "SPIP_550",
            "4.0.15.1047",
            "application",
            "0004f2a1b2c3",
            "FileTransport",
        ),
        UserAgent("PolycomSoundPointIP", "SPIP550", "4.0.15.1047", "application", "0004f2a1b2c3"),
    ),
    (
        "FileTransport PolyEdge-Edge_E450-UA/8.0.0.15602 Type/Application",
        ("PolyEdge", "Edge_E450", "8.0.0.15602", "application", None, "FileTransport"),
        UserAgent("PolyEdge", "EdgeE450", "8.0.0.15602", "application", None),
    ),
    (
        "Microbrowser/1.1 PolycomSoundPointIP-SPIP_550-UA/4.0.15.1047 Type/Application",
        ("PolycomSoundPointIP", "SPIP_550", "4.0.15.1047", "application", None, "Microbrowser/1.1"),
        UserAgent("PolycomSoundPointIP", "SPIP550", "4.0.15.1047", "application", None),
    ),
]


def _error(text: str) -> str:
    with pytest.raises(UserAgentError) as info:
        parse_user_agent(text)
    return info.value.message


@pytest.mark.parametrize(("line", "parts", "expected"), EXAMPLES)
def test_each_phones_md_example_parses(
    line: str, parts: tuple[str, str, str, str, str | None, str], expected: UserAgent
) -> None:
    assert parse_user_agent(line) == expected


@pytest.mark.parametrize(("line", "parts", "expected"), EXAMPLES)
def test_format_reproduces_each_phones_md_example_byte_for_byte(
    line: str, parts: tuple[str, str, str, str, str | None, str], expected: UserAgent
) -> None:
    family, model_token, firmware, stage, serial, prefix = parts
    assert format_user_agent(family, model_token, firmware, stage, serial, prefix) == line


def test_model_token_is_normalised_without_underscores() -> None:
    assert normalize_model("Edge_E450") == "EdgeE450"


def test_missing_type_gives_an_empty_stage() -> None:
    assert parse_user_agent("FileTransport PolycomVVX-VVX_500-UA/5.9.7.4477").stage == ""


def test_unknown_type_gives_an_empty_stage() -> None:
    assert parse_user_agent("PolycomVVX-VVX_500-UA/5.9.7.4477 Type/BootROM").stage == ""


def test_stage_is_read_case_insensitively() -> None:
    assert parse_user_agent("PolycomVVX-VVX_500-UA/5.9.7.4477 Type/UPDATER").stage == "updater"


def test_serial_is_lower_cased() -> None:
    text = "PolycomVVX-VVX_500-UA/5.9.7.4477 (SN:0004F2A1B2C3) Type/Application"
    assert parse_user_agent(text).serial == "0004f2a1b2c3"


def test_extra_tokens_before_and_after_are_tolerated() -> None:
    text = "Proxy/2 (x) FileTransport PolycomVVX-VVX_500-UA/5.9.7.4477 Type/Application via/1.1"
    assert parse_user_agent(text).model == "VVX500"


def test_surrounding_whitespace_is_tolerated() -> None:
    assert parse_user_agent("  PolycomVVX-VVX_500-UA/5.9.7.4477\t").firmware == "5.9.7.4477"


def test_a_browser_user_agent_is_refused() -> None:
    assert "not a Polycom/Poly phone" in _error("Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0")


def test_an_empty_user_agent_is_refused() -> None:
    assert "not a Polycom/Poly phone" in _error("")


def test_a_product_token_without_firmware_is_refused() -> None:
    _error("FileTransport PolycomVVX-VVX_500-UA/ Type/Application")


def test_a_family_not_starting_with_poly_is_refused() -> None:
    _error("FileTransport CiscoIP-CP_8845-UA/1.2.3 Type/Application")


def test_a_user_agent_over_the_limit_is_refused() -> None:
    text = "PolycomVVX-VVX_500-UA/5.9.7.4477 " + "x" * MAX_USER_AGENT
    assert str(MAX_USER_AGENT) in _error(text)


def test_a_non_string_is_refused() -> None:
    _error(b"PolycomVVX-VVX_500-UA/5.9.7.4477")  # type: ignore[arg-type]


def test_format_without_stage_or_prefix_is_the_bare_product_token() -> None:
    assert format_user_agent("PolycomVVX", "VVX_500", "5.9.7.4477", "", prefix="") == (
        "PolycomVVX-VVX_500-UA/5.9.7.4477"
    )


def test_format_refuses_an_unknown_stage() -> None:
    with pytest.raises(UserAgentError):
        format_user_agent("PolycomVVX", "VVX_500", "5.9.7.4477", "bootrom")


def test_format_refuses_a_model_token_with_a_dash() -> None:
    with pytest.raises(UserAgentError):
        format_user_agent("PolycomVVX", "VVX-500", "5.9.7.4477", "application")


def test_format_refuses_a_family_not_starting_with_poly() -> None:
    with pytest.raises(UserAgentError):
        format_user_agent("Cisco", "VVX_500", "5.9.7.4477", "application")


def test_format_refuses_a_serial_with_punctuation() -> None:
    with pytest.raises(UserAgentError):
        format_user_agent("PolycomVVX", "VVX_500", "5.9.7.4477", "application", "00:04")


def test_format_refuses_a_prefix_that_would_read_as_a_product_token() -> None:
    with pytest.raises(UserAgentError):
        format_user_agent("PolycomVVX", "VVX_500", "1.0", "application", prefix="PolyX-Y-UA/2.0")
