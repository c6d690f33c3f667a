"""SiteIndex.match agrees with a brute-force reading of cloud.md's site rule."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.cloud.rules.sites import PublicSubnet, SiteIndex, SiteSubnets

# Everything lives inside 0.0.0.0/4 so that random subnets overlap often.
SPACE = 1 << 28


@st.composite
def networks(draw: st.DrawFn) -> IPv4Network:
    address = draw(st.integers(0, SPACE - 1))
    return IPv4Network((address, draw(st.integers(0, 32))), strict=False)


@st.composite
def public_subnets(draw: st.DrawFn) -> PublicSubnet:
    return PublicSubnet(draw(networks()), tuple(draw(st.lists(networks(), max_size=3))))


@st.composite
def site_lists(draw: st.DrawFn) -> list[SiteSubnets]:
    names = draw(st.lists(st.sampled_from("ABCDEFab"), min_size=0, max_size=6, unique=True))
    return [
        SiteSubnets(name, tuple(draw(st.lists(public_subnets(), max_size=3)))) for name in names
    ]


def address_near(data: st.DataObject, nets: list[IPv4Network]) -> IPv4Address:
    """A random address, often inside one of the given networks so long prefixes match."""
    if data.draw(st.booleans()) and nets:
        chosen = data.draw(st.sampled_from(nets))
        offset = data.draw(st.integers(0, chosen.num_addresses - 1))
        return IPv4Address(int(chosen.network_address) + offset)
    return IPv4Address(data.draw(st.integers(0, SPACE - 1)))


def oracle(
    sites: list[SiteSubnets], public_ip: IPv4Address, private_ip: IPv4Address | None
) -> str | None:
    """The rule as written: longest public prefix, then longest private, then name."""
    candidates = [
        (entry.cidr.prefixlen, s.site, entry)
        for s in sites
        for entry in s.public
        if public_ip in entry.cidr
    ]
    for length in sorted({c[0] for c in candidates}, reverse=True):
        scored: list[tuple[int, str]] = []
        for plen, name, entry in candidates:
            if plen != length:
                continue
            if not entry.private:
                scored.append((-1, name))
            elif private_ip is not None:
                hits = [p.prefixlen for p in entry.private if private_ip in p]
                if hits:
                    scored.append((max(hits), name))
        if scored:
            best = max(score for score, _ in scored)
            return min(name for score, name in scored if score == best)
    return None


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_match_agrees_with_brute_force(data: st.DataObject) -> None:
    sites = data.draw(site_lists())
    publics = [e.cidr for s in sites for e in s.public]
    privates = [p for s in sites for e in s.public for p in e.private]
    index = SiteIndex(sites)
    for _ in range(5):
        public_ip = address_near(data, publics)
        private_ip = address_near(data, privates) if data.draw(st.booleans()) else None
        assert index.match(public_ip, private_ip) == oracle(sites, public_ip, private_ip)
