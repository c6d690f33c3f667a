"""relay.proto.dhcp.options: the site's boot options, and only those asked for (RFC 2132 9.8)."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from relay.proto.dhcp.options import VLAN_OPTIONS, BootOptions, answer_options, vlan_string
from relay.proto.dhcp.packet import DhcpError

ROUTER = IPv4Address("10.0.0.1")
DNS = (IPv4Address("10.0.0.2"), IPv4Address("10.0.0.3"))
SITE = BootOptions(
    option66="relay.example",
    option160="https://PlcmSpIp:secret@relay.example:8443/prov",
    option161="ftp://PlcmSpIp:PlcmSpIp@relay.example",
    vlan_id=20,
    vlan_options=(128, 144),
    routers=(ROUTER,),
    dns=DNS,
    ntp=(IPv4Address("10.0.0.4"),),
    domain="voice.example",
)


def test_only_the_requested_options_are_answered_in_the_clients_order() -> None:
    answer = answer_options(SITE, [160, 3, 66])

    assert answer == [
        (160, b"https://PlcmSpIp:secret@relay.example:8443/prov"),
        (3, ROUTER.packed),
        (66, b"relay.example"),
    ]


def test_requested_options_the_site_does_not_set_are_left_out() -> None:
    assert answer_options(BootOptions(option66="relay.example"), [1, 3, 6, 66, 161]) == [
        (66, b"relay.example")
    ]


def test_forced_options_are_sent_even_when_not_asked_for() -> None:
    site = BootOptions(option66="relay.example", option160="https://relay.example", forced=(160,))

    assert answer_options(site, [66]) == [(66, b"relay.example"), (160, b"https://relay.example")]


def test_a_forced_option_that_was_also_asked_for_is_sent_once() -> None:
    site = BootOptions(option66="relay.example", forced=(66,))

    assert answer_options(site, [66, 66]) == [(66, b"relay.example")]


def test_a_client_without_a_parameter_request_list_gets_everything_configured() -> None:
    codes = [code for code, _ in answer_options(SITE, None)]

    assert codes == [3, 6, 15, 42, 66, 128, 144, 160, 161]


def test_vlan_options_carry_the_vlan_a_string() -> None:
    answer = dict(answer_options(SITE, [128, 129, 144, 157, 191]))

    assert answer == {128: b"VLAN-A=20;", 144: b"VLAN-A=20;"}


def test_the_vlan_string_is_decimal_with_a_trailing_semicolon() -> None:
    assert vlan_string(4094) == b"VLAN-A=4094;"


def test_address_lists_and_domain_are_encoded_for_the_wire() -> None:
    answer = dict(answer_options(SITE, [6, 15, 42]))

    assert answer == {
        6: DNS[0].packed + DNS[1].packed,
        15: b"voice.example",
        42: IPv4Address("10.0.0.4").packed,
    }


def test_the_subnet_mask_is_sent_when_asked_and_given() -> None:
    mask = IPv4Address("255.255.255.0")

    assert answer_options(SITE, [1], subnet_mask=mask) == [(1, mask.packed)]
    assert answer_options(SITE, [66], subnet_mask=mask) == [(66, b"relay.example")]


def test_option_66_may_be_a_bare_host_or_a_url() -> None:
    for value in ("10.0.0.9", "relay.example", "https://relay.example/prov"):
        assert answer_options(BootOptions(option66=value), [66]) == [(66, value.encode())]


def test_options_160_and_161_must_be_urls() -> None:
    with pytest.raises(DhcpError, match="option 160 is not a URL"):
        BootOptions(option160="relay.example")
    with pytest.raises(DhcpError, match="option 161 is not a URL"):
        BootOptions(option161="relay.example")


def test_boot_server_strings_with_spaces_or_backslashes_are_refused() -> None:
    for value in ("relay example", "relay\\example", "relay\u00e9.example", ""):
        with pytest.raises(DhcpError, match="option 66"):
            BootOptions(option66=value)


def test_a_boot_server_string_over_255_characters_is_refused() -> None:
    with pytest.raises(DhcpError, match="1 to 255"):
        BootOptions(option66="a" * 256)


def test_errors_about_a_url_never_quote_its_credentials() -> None:
    with pytest.raises(DhcpError) as caught:
        BootOptions(option160="https://user:hunter2@relay example")

    assert "hunter2" not in str(caught.value)


def test_a_vlan_id_outside_802_1q_range_is_refused() -> None:
    for vlan_id in (0, 4095):
        with pytest.raises(DhcpError, match="VLAN id"):
            BootOptions(vlan_id=vlan_id, vlan_options=(128,))


def test_vlan_options_must_be_among_the_phone_vlan_options() -> None:
    with pytest.raises(DhcpError, match="not among"):
        BootOptions(vlan_id=20, vlan_options=(130,))
    assert VLAN_OPTIONS == (128, 129, 144, 157, 191)


def test_a_vlan_id_needs_options_to_carry_it() -> None:
    with pytest.raises(DhcpError, match="VLAN id needs"):
        BootOptions(vlan_id=20)
    with pytest.raises(DhcpError, match="VLAN id needs"):
        BootOptions(vlan_options=(128,))


def test_a_domain_that_is_not_a_domain_name_is_refused() -> None:
    with pytest.raises(DhcpError, match="domain"):
        BootOptions(domain="voice example")


def test_forced_codes_must_be_real_option_codes() -> None:
    with pytest.raises(DhcpError, match="forced"):
        BootOptions(forced=(255,))


def test_more_addresses_than_one_option_holds_are_refused() -> None:
    with pytest.raises(DhcpError, match="dns"):
        BootOptions(dns=tuple(IPv4Address(i) for i in range(64)))
