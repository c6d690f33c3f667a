"""Site rules: subnet parsing and longest-prefix matching (cloud.md "Sites")."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.sites import (
    PublicSubnet,
    SiteIndex,
    SiteSubnets,
    parse_cidr,
    parse_ip,
    validate_site_subnets,
)


def net(text: str) -> IPv4Network:
    return IPv4Network(text, strict=False)


def ip(text: str) -> IPv4Address:
    return IPv4Address(text)


def site(name: str, *public: tuple[str, tuple[str, ...]]) -> SiteSubnets:
    return SiteSubnets(
        name, tuple(PublicSubnet(net(p), tuple(net(q) for q in priv)) for p, priv in public)
    )


# The vendor guide's example ("Adding a Site"), written exactly as the guide does.
GUIDE = SiteIndex(
    [
        site("Site A-1", ("20.1.0.0/16", ("10.0.0.0/8",))),
        site("Site A-2", ("20.1.0.0/16", ("10.33.24.0/24",))),
        site("Site B-1", ("20.56.31.0/8", ("3.1.0.0/16",))),
        site("Site B-2", ("20.56.31.0/8", ())),
    ]
)


# --- parse_cidr ---


def test_parse_cidr_returns_network() -> None:
    assert parse_cidr("20.1.0.0/16", "subnet") == IPv4Network("20.1.0.0/16")


def test_parse_cidr_clears_host_bits_as_in_guide_examples() -> None:
    assert parse_cidr("20.56.31.0/8", "subnet") == IPv4Network("20.0.0.0/8")
    assert parse_cidr("172.21.120.1/28", "subnet") == IPv4Network("172.21.120.0/28")


def test_parse_cidr_accepts_prefix_zero_and_thirty_two() -> None:
    assert parse_cidr("0.0.0.0/0", "subnet") == IPv4Network("0.0.0.0/0")
    assert parse_cidr("1.2.3.4/32", "subnet") == IPv4Network("1.2.3.4/32")


def test_parse_cidr_strips_surrounding_whitespace() -> None:
    assert parse_cidr("  10.0.0.0/8\t", "subnet") == IPv4Network("10.0.0.0/8")


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("2001:db8::/32", "IPv6"),
        ("10.0.0.0", "no prefix length"),
        ("10.0.0.0/33", "0 to 32"),
        ("10.0.0.0/-1", "0 to 32"),
        ("10.0.0.0/", "0 to 32"),
        ("10.0.0.0/255.0.0.0", "0 to 32"),
        ("10.0.0.0/\uff11\uff16", "0 to 32"),
        ("10.0.0/8", "not an IPv4 address"),
        ("256.0.0.0/8", "not an IPv4 address"),
        ("hello/8", "not an IPv4 address"),
    ],
)
def test_parse_cidr_rejects_bad_input_with_reason_and_example(text: str, hint: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_cidr(text, "public_subnet")
    err = caught.value
    assert err.code == "invalid_cidr"
    assert err.field == "public_subnet"
    assert err.status == 422
    assert hint in err.message
    assert "20.1.0.0/16" in err.message


# --- parse_ip ---


def test_parse_ip_returns_address() -> None:
    assert parse_ip(" 10.33.24.7 ", "ip") == IPv4Address("10.33.24.7")


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("", "not an IPv4 address"),
        ("::1", "IPv6"),
        ("10.0.0.1/32", "not an IPv4 address"),
        ("10.0.0.256", "not an IPv4 address"),
        ("010.0.0.1", "not an IPv4 address"),
    ],
)
def test_parse_ip_rejects_bad_input_with_reason(text: str, hint: str) -> None:
    with pytest.raises(RuleError) as caught:
        parse_ip(text, "private_ip")
    assert caught.value.code == "invalid_ip"
    assert caught.value.field == "private_ip"
    assert hint in caught.value.message


# --- validate_site_subnets ---


def test_validate_accepts_overlapping_distinct_subnets() -> None:
    validate_site_subnets(
        [
            PublicSubnet(net("20.0.0.0/8"), (net("10.0.0.0/8"), net("10.1.0.0/16"))),
            PublicSubnet(net("20.1.0.0/16")),
        ]
    )


def test_validate_rejects_duplicate_public_subnet() -> None:
    with pytest.raises(RuleError) as caught:
        validate_site_subnets([PublicSubnet(net("20.1.0.0/16")), PublicSubnet(net("20.1.0.0/16"))])
    assert caught.value.code == "duplicate_subnet"
    assert "20.1.0.0/16" in caught.value.message


def test_validate_rejects_private_subnet_listed_twice_under_one_public() -> None:
    public = PublicSubnet(net("20.1.0.0/16"), (net("10.0.0.0/8"), net("10.0.0.0/8")))
    with pytest.raises(RuleError) as caught:
        validate_site_subnets([public])
    assert caught.value.code == "duplicate_subnet"
    assert "10.0.0.0/8" in caught.value.message


def test_validate_allows_same_private_subnet_under_different_publics() -> None:
    validate_site_subnets(
        [
            PublicSubnet(net("20.1.0.0/16"), (net("10.0.0.0/8"),)),
            PublicSubnet(net("20.2.0.0/16"), (net("10.0.0.0/8"),)),
        ]
    )


# --- the vendor guide's four-site example ---


def test_guide_a_private_in_narrow_private_subnet_goes_to_a2() -> None:
    assert GUIDE.match(ip("20.1.5.5"), ip("10.33.24.9")) == "Site A-2"


def test_guide_a_private_only_in_wide_private_subnet_goes_to_a1() -> None:
    assert GUIDE.match(ip("20.1.5.5"), ip("10.34.0.1")) == "Site A-1"


def test_guide_a_private_outside_both_falls_back_to_b2_via_shorter_public() -> None:
    assert GUIDE.match(ip("20.1.5.5"), ip("192.168.1.1")) == "Site B-2"


def test_guide_b_private_in_b1_private_subnet_goes_to_b1() -> None:
    assert GUIDE.match(ip("20.9.9.9"), ip("3.1.200.4")) == "Site B-1"


def test_guide_b_other_private_goes_to_b2_without_private_subnets() -> None:
    assert GUIDE.match(ip("20.9.9.9"), ip("3.2.0.1")) == "Site B-2"


def test_guide_b_without_private_ip_goes_to_b2() -> None:
    assert GUIDE.match(ip("20.9.9.9")) == "Site B-2"


def test_guide_public_ip_outside_all_sites_matches_nothing() -> None:
    assert GUIDE.match(ip("21.0.0.1"), ip("10.33.24.9")) is None


# --- matching rule details ---


def test_longest_public_prefix_wins_regardless_of_private() -> None:
    index = SiteIndex(
        [
            site("Wide", ("20.0.0.0/8", ("10.33.24.0/24",))),
            site("Narrow", ("20.1.0.0/16", ("10.0.0.0/8",))),
        ]
    )
    assert index.match(ip("20.1.0.1"), ip("10.33.24.1")) == "Narrow"


def test_explicit_private_match_beats_public_without_private_subnets() -> None:
    index = SiteIndex(
        [
            site("Any", ("20.1.0.0/16", ())),
            site("Whole", ("20.1.0.0/16", ("0.0.0.0/0",))),
        ]
    )
    assert index.match(ip("20.1.0.1"), ip("172.16.0.1")) == "Whole"


def test_wider_private_subnet_matches_again_after_a_nested_one_ends() -> None:
    index = SiteIndex(
        [
            site("Wide", ("20.1.0.0/16", ("10.0.0.0/8",))),
            site("Inner", ("20.1.0.0/16", ("10.1.0.0/16",))),
            site("Later", ("20.1.0.0/16", ("10.3.0.0/16",))),
        ]
    )
    assert index.match(ip("20.1.0.1"), ip("10.1.255.255")) == "Inner"
    assert index.match(ip("20.1.0.1"), ip("10.2.0.1")) == "Wide"
    assert index.match(ip("20.1.0.1"), ip("10.3.0.1")) == "Later"


def test_private_subnets_with_same_start_prefer_the_longer() -> None:
    index = SiteIndex(
        [
            site("Wide", ("20.1.0.0/16", ("10.0.0.0/8",))),
            site("Narrow", ("20.1.0.0/16", ("10.0.0.0/16",))),
        ]
    )
    assert index.match(ip("20.1.0.1"), ip("10.0.5.5")) == "Narrow"
    assert index.match(ip("20.1.0.1"), ip("10.5.0.0")) == "Wide"


def test_public_without_private_subnets_matches_missing_private_ip() -> None:
    index = SiteIndex([site("Any", ("20.1.0.0/16", ()))])
    assert index.match(ip("20.1.0.1")) == "Any"


def test_missing_private_ip_skips_sites_that_need_one() -> None:
    index = SiteIndex(
        [
            site("Needs", ("20.1.0.0/16", ("10.0.0.0/8",))),
            site("Fallback", ("20.0.0.0/8", ())),
        ]
    )
    assert index.match(ip("20.1.0.1")) == "Fallback"


def test_no_private_match_at_any_prefix_returns_none() -> None:
    index = SiteIndex([site("Needs", ("20.1.0.0/16", ("10.0.0.0/8",)))])
    assert index.match(ip("20.1.0.1"), ip("11.0.0.1")) is None


def test_falls_back_through_several_shorter_prefixes() -> None:
    index = SiteIndex(
        [
            site("P24", ("20.1.1.0/24", ("10.0.0.0/8",))),
            site("P16", ("20.1.0.0/16", ("11.0.0.0/8",))),
            site("P8", ("20.0.0.0/8", ("12.0.0.0/8",))),
        ]
    )
    assert index.match(ip("20.1.1.1"), ip("12.0.0.1")) == "P8"


def test_one_site_with_several_public_subnets_matches_each() -> None:
    index = SiteIndex([site("Multi", ("1.2.3.4/32", ()), ("2.3.4.5/32", ()))])
    assert index.match(ip("1.2.3.4")) == "Multi"
    assert index.match(ip("2.3.4.5")) == "Multi"
    assert index.match(ip("1.2.3.5")) is None


def test_zero_prefix_public_subnet_catches_every_address() -> None:
    index = SiteIndex([site("Intranet", ("0.0.0.0/0", ()))])
    assert index.match(ip("203.0.113.9")) == "Intranet"


def test_host_route_public_subnet_matches_only_that_address() -> None:
    index = SiteIndex([site("Host", ("1.2.3.4/32", ()))])
    assert index.match(ip("1.2.3.4")) == "Host"
    assert index.match(ip("1.2.3.5")) is None


def test_tie_on_same_public_and_private_goes_to_first_name() -> None:
    index = SiteIndex(
        [
            site("beta", ("20.1.0.0/16", ("10.0.0.0/8",))),
            site("Alpha", ("20.1.0.0/16", ("10.0.0.0/8",))),
        ]
    )
    assert index.match(ip("20.1.0.1"), ip("10.0.0.1")) == "Alpha"


def test_tie_between_sites_without_private_subnets_goes_to_first_name() -> None:
    index = SiteIndex([site("b", ("20.1.0.0/16", ())), site("a", ("20.1.0.0/16", ()))])
    assert index.match(ip("20.1.0.1")) == "a"


def test_tie_break_does_not_depend_on_input_order() -> None:
    sites = [
        site("x", ("20.1.0.0/16", ("10.0.0.0/8",))),
        site("y", ("20.1.0.0/16", ("10.0.0.0/8",))),
    ]
    assert SiteIndex(sites).match(ip("20.1.0.1"), ip("10.1.1.1")) == "x"
    assert SiteIndex(reversed(sites)).match(ip("20.1.0.1"), ip("10.1.1.1")) == "x"


def test_empty_index_matches_nothing() -> None:
    assert SiteIndex([]).match(ip("10.0.0.1"), ip("10.0.0.1")) is None


def test_site_without_public_subnets_matches_nothing() -> None:
    assert SiteIndex([SiteSubnets("Empty", ())]).match(ip("10.0.0.1")) is None
