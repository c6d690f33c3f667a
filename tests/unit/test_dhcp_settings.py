"""The DHCP settings: `dhcp_*` configuration keys, their parsers, and `dhcp_settings` (pure)."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.cli import _config, _parser
from relay.config import Config, ConfigError, load_config
from relay.frontend.dhcpsetup import dhcp_settings
from relay.proto.dhcp.inform import InformResponder
from relay.proto.dhcp.leases import LeaseConfig, Reservation
from relay.proto.dhcp.packet import DhcpError
from relay.proto.dhcp.settings import (
    MAX_TEXT,
    parse_mac,
    parse_range,
    parse_reservation,
    with_host,
    without_credentials,
)

ADDRESS = IPv4Interface("192.0.2.1/24")
BOOT_URL = "https://phones:s3cret@192.0.2.1:9443/"
LEASE = Config(dhcp_interface="eth1", dhcp_pool="192.0.2.100-192.0.2.199")


def loaded(**keys: object) -> Config:
    return load_config(keys, env={})


# Configuration keys -----------------------------------------------------------------


def test_dhcp_is_off_by_default() -> None:
    assert loaded().dhcp_interface == ""


def test_flags_turn_dhcp_on() -> None:
    args = _parser().parse_args(
        ["up", "--dhcp-interface", "eth1", "--dhcp-mode", "lease", "--dhcp-pool",
         "192.0.2.100-192.0.2.199", "--dhcp-dns", "192.0.2.53", "--dhcp-dns", "192.0.2.54",
         "--dhcp-reservation", "00:04:f2:a1:b2:c3=192.0.2.7", "--dhcp-vlan", "20"]
    )  # fmt: skip

    config = _config(args)

    assert (config.dhcp_interface, config.dhcp_mode) == ("eth1", "lease")
    assert config.dhcp_pool == "192.0.2.100-192.0.2.199"
    assert config.dhcp_dns == ("192.0.2.53", "192.0.2.54")
    assert config.dhcp_reservations == ("00:04:f2:a1:b2:c3=192.0.2.7",)
    assert config.dhcp_vlan == 20


def test_the_toml_file_takes_reservations_as_a_table(tmp_path: Path) -> None:
    toml = tmp_path / "relay.toml"
    toml.write_text(
        'dhcp_interface = "eth1"\ndhcp_pool = "192.0.2.100-192.0.2.199"\n'
        "dhcp_vlan_options = [144, 191]\n"
        '[dhcp_reservations]\n"00:04:f2:a1:b2:c3" = "192.0.2.7"\n'
    )

    config = load_config({}, config_file=toml, env={})

    assert config.dhcp_reservations == ("00:04:f2:a1:b2:c3=192.0.2.7",)
    assert config.dhcp_vlan_options == (144, 191)


def test_leases_survive_a_power_cut_unless_configured_otherwise() -> None:
    assert loaded().dhcp_durability == "fsync"
    assert loaded(dhcp_durability="process").dhcp_durability == "process"


def test_environment_variables_take_comma_separated_lists() -> None:
    env = {"RELAY_DHCP_NTP": "192.0.2.123, 192.0.2.124", "RELAY_DHCP_VLAN_OPTIONS": "128,144"}

    config = load_config({}, env=env)

    assert config.dhcp_ntp == ("192.0.2.123", "192.0.2.124")
    assert config.dhcp_vlan_options == (128, 144)


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"dhcp_mode": "proxy"}, "dhcp_mode must be 'lease' or 'inform'"),
        ({"dhcp_interface": "eth1"}, "lease mode needs a pool: --dhcp-pool"),
        ({"dhcp_pool": "192.0.2.100"}, "is not FIRST-LAST"),
        ({"dhcp_pool": "192.0.2.199-192.0.2.100"}, "is empty"),
        (
            {"dhcp_pool": "192.0.2.100-192.0.2.199", "dhcp_subnet": "198.51.100.0/24"},
            "192.0.2.100 is not a host of 198.51.100.0/24",
        ),
        ({"dhcp_subnet": "192.0.2.0/33", "dhcp_pool": "192.0.2.1-192.0.2.2"}, "not a CIDR"),
        ({"dhcp_mode": "inform", "dhcp_pool": "192.0.2.1-192.0.2.2"}, "inform mode hands out"),
        ({"dhcp_vlan": 4095}, "VLAN id 1-4094"),
        ({"dhcp_vlan": 20, "dhcp_vlan_options": "66"}, "are not among"),
        ({"dhcp_dns": "dns.example"}, "dhcp_dns 'dns.example' is not an IPv4 address"),
        ({"dhcp_reservations": "00:04:f2:a1:b2:c3"}, "is not MAC=IP"),
        ({"dhcp_reservations": "nomac=192.0.2.7"}, "'nomac' is not a MAC address"),
        ({"dhcp_lease_seconds": 10}, "dhcp_lease_seconds must be 60"),
        ({"dhcp_port": 0}, "dhcp_port 0 is outside"),
        ({"dhcp_interface": "a/b", "dhcp_pool": "192.0.2.1-192.0.2.2"}, "not an interface name"),
        ({"dhcp_domain": "not a domain"}, "is not a domain name"),
        ({"dhcp_durability": "never"}, "dhcp_durability must be 'fsync' or 'process'"),
    ],
)
def test_bad_dhcp_keys_are_refused_naming_the_problem(
    keys: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError, match="DHCP: .*" + message.replace("(", r"\(")):
        loaded(**keys)


def test_a_bad_boot_url_is_refused_without_quoting_its_password() -> None:
    with pytest.raises(ConfigError) as raised:
        loaded(dhcp_boot_url="https//phones:s3cret@relay")

    assert "s3cret" not in str(raised.value)


# dhcp_settings ------------------------------------------------------------------------


def test_lease_mode_serves_the_pool_on_the_interfaces_subnet() -> None:
    leases = dhcp_settings(LEASE, BOOT_URL, ADDRESS)

    assert isinstance(leases, LeaseConfig)
    assert leases.server_ip == IPv4Address("192.0.2.1")
    (pool,) = leases.pools
    assert pool.subnet == IPv4Network("192.0.2.0/24")
    assert (pool.first, pool.last) == (IPv4Address("192.0.2.100"), IPv4Address("192.0.2.199"))


def test_options_160_and_161_carry_the_boot_url_with_its_credentials() -> None:
    boot = dhcp_settings(LEASE, BOOT_URL, ADDRESS).pools[0].boot  # type: ignore[union-attr]

    assert boot.option160 == boot.option161 == BOOT_URL


def test_option_66_carries_the_boot_url_without_credentials() -> None:
    boot = dhcp_settings(LEASE, BOOT_URL, ADDRESS).pools[0].boot  # type: ignore[union-attr]

    assert boot.option66 == "https://192.0.2.1:9443/"


def test_a_configured_boot_url_replaces_the_relays_own() -> None:
    config = dataclasses.replace(LEASE, dhcp_boot_url="ftp://PlcmSpIp:PlcmSpIp@192.0.2.9/")

    boot = dhcp_settings(config, BOOT_URL, ADDRESS).pools[0].boot  # type: ignore[union-attr]

    assert boot.option160 == "ftp://PlcmSpIp:PlcmSpIp@192.0.2.9/"


def test_a_wildcard_boot_host_becomes_the_interfaces_address() -> None:
    url = "https://phones:s3cret@0.0.0.0:9443/"

    boot = dhcp_settings(LEASE, url, ADDRESS).pools[0].boot  # type: ignore[union-attr]

    assert boot.option160 == BOOT_URL


def test_the_vlan_string_goes_on_the_configured_vlan_options() -> None:
    config = dataclasses.replace(LEASE, dhcp_vlan=20, dhcp_vlan_options=(144, 191))

    boot = dhcp_settings(config, BOOT_URL, ADDRESS).pools[0].boot  # type: ignore[union-attr]

    assert boot.configured()[144] == boot.configured()[191] == b"VLAN-A=20;"
    assert 128 not in boot.configured()


def test_router_dns_ntp_domain_and_forced_options_reach_the_boot_options() -> None:
    config = dataclasses.replace(
        LEASE,
        dhcp_router="192.0.2.254",
        dhcp_dns=("192.0.2.53",),
        dhcp_ntp=("192.0.2.123",),
        dhcp_domain="phones.example",
        dhcp_force_options=(160,),
    )

    boot = dhcp_settings(config, BOOT_URL, ADDRESS).pools[0].boot  # type: ignore[union-attr]

    assert boot.routers == (IPv4Address("192.0.2.254"),)
    assert boot.dns == (IPv4Address("192.0.2.53"),)
    assert boot.ntp == (IPv4Address("192.0.2.123"),)
    assert boot.domain == "phones.example"
    assert boot.forced == (160,)


def test_reservations_are_normalised_into_the_pool() -> None:
    config = dataclasses.replace(LEASE, dhcp_reservations=("00-04-F2-A1-B2-C3=192.0.2.7",))

    pool = dhcp_settings(config, BOOT_URL, ADDRESS).pools[0]  # type: ignore[union-attr]

    assert pool.reservations == (Reservation("0004f2a1b2c3", IPv4Address("192.0.2.7")),)


def test_an_explicit_subnet_serves_relayed_requests_from_another_network() -> None:
    config = dataclasses.replace(
        LEASE, dhcp_subnet="198.51.100.0/24", dhcp_pool="198.51.100.10-198.51.100.20"
    )

    leases = dhcp_settings(config, BOOT_URL, ADDRESS)

    assert leases.pools[0].subnet == IPv4Network("198.51.100.0/24")  # type: ignore[union-attr]
    assert leases.server_ip == IPv4Address("192.0.2.1")


def test_inform_mode_builds_an_inform_responder_on_the_interfaces_address() -> None:
    config = Config(dhcp_interface="eth1", dhcp_mode="inform")

    responder = dhcp_settings(config, BOOT_URL, ADDRESS)

    assert isinstance(responder, InformResponder)
    assert responder.server_ip == IPv4Address("192.0.2.1")
    assert responder.boot.option160 == BOOT_URL


def test_a_pool_outside_the_interfaces_subnet_is_a_config_error() -> None:
    config = dataclasses.replace(LEASE, dhcp_pool="203.0.113.10-203.0.113.20")

    with pytest.raises(ConfigError, match=r"203\.0\.113\.10 is not a host of 192\.0\.2\.0/24"):
        dhcp_settings(config, BOOT_URL, ADDRESS)


# The parsers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["00:04:f2:a1:b2:c3", "00-04-F2-A1-B2-C3", "0004.f2a1.b2c3", "0004F2A1B2C3"]
)
def test_a_mac_in_any_common_notation_becomes_twelve_hex_digits(text: str) -> None:
    assert parse_mac(text) == "0004f2a1b2c3"


@pytest.mark.parametrize("text", ["00:04:f2:a1:b2", "00:04-f2:a1:b2:c3", "0004f2a1b2cz", ""])
def test_a_malformed_mac_is_refused(text: str) -> None:
    with pytest.raises(DhcpError, match="is not a MAC address"):
        parse_mac(text)


def test_a_range_may_have_spaces_around_the_dash() -> None:
    assert parse_range("192.0.2.10 - 192.0.2.20") == (
        IPv4Address("192.0.2.10"),
        IPv4Address("192.0.2.20"),
    )


def test_without_credentials_keeps_the_port_and_path() -> None:
    assert without_credentials("https://u:p@relay.example:9443/vvx/") == (
        "https://relay.example:9443/vvx/"
    )


def test_with_host_keeps_the_credentials_and_port() -> None:
    assert with_host("https://u:p@0.0.0.0:9443/x", IPv4Address("192.0.2.1")) == (
        "https://u:p@192.0.2.1:9443/x"
    )


def test_text_over_the_cap_is_refused_unread() -> None:
    with pytest.raises(DhcpError, match=f"over {MAX_TEXT} characters"):
        parse_reservation("0" * (MAX_TEXT + 1))


FUZZ = settings(max_examples=300, deadline=None)
texts = st.text(max_size=300) | st.from_regex(r"[0-9a-fA-F:.\-= ]{0,40}", fullmatch=True)


@FUZZ
@given(texts)
def test_any_text_is_a_reservation_or_a_dhcp_error(text: str) -> None:
    try:
        reservation = parse_reservation(text)
    except DhcpError:
        return
    assert len(reservation.mac) == 12


@FUZZ
@given(texts)
def test_any_text_is_a_range_or_a_dhcp_error(text: str) -> None:
    try:
        first, last = parse_range(text)
    except DhcpError:
        return
    assert first <= last


@FUZZ
@given(st.text(max_size=300) | st.from_regex(r"[a-z]{1,5}://[^ ]{0,30}", fullmatch=True))
def test_any_text_as_a_boot_url_is_settings_or_a_config_error(text: str) -> None:
    config = dataclasses.replace(LEASE, dhcp_boot_url=text)
    try:
        dhcp_settings(config, BOOT_URL, ADDRESS)
    except ConfigError:
        return
