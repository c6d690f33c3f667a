"""Sites: subnet parsing and the longest-prefix rule that gives a device its site.

cloud.md "Sites": a device's site is the public subnet with the longest prefix
match on its public IP; among equal public matches, the private subnet with the
longest match on its private IP. The vendor guide ("Adding a Site") says the
same: "it first chooses the public subnet with the longest IP match. If public
subnets are the same, the system chooses the private subnet with the longest IP
match". Nothing matching means the Internet site, which the caller applies.
"""

from __future__ import annotations

import ipaddress
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from relay.cloud.rules.errors import RuleError

MAX_SITES = 2000
INTERNET = "Internet"
INTRANET = "Intranet"

_FULL = 0xFFFFFFFF
_CIDR_EXAMPLE = "write it as address/prefix-length, for example 20.1.0.0/16"
_IP_EXAMPLE = "write it as four decimal numbers, for example 192.0.2.7"


def _mask(prefixlen: int) -> int:
    return (_FULL << (32 - prefixlen)) & _FULL


def parse_cidr(text: str, field: str) -> IPv4Network:
    """Parse an IPv4 subnet, clearing host bits.

    Host bits are allowed because the vendor guide's own examples carry them
    (20.56.31.0/8, 172.21.120.1/28); a subnet only ever means its network.
    The prefix length must be given: a bare address silently meaning /32 would
    be a subnet that almost never matches.
    """
    stripped = text.strip()
    if not stripped:
        raise RuleError("invalid_cidr", f"The subnet is empty; {_CIDR_EXAMPLE}.", field)
    if ":" in stripped:
        raise RuleError(
            "invalid_cidr",
            f"{stripped!r} is IPv6; only IPv4 subnets are supported, {_CIDR_EXAMPLE}.",
            field,
        )
    address, slash, prefix = stripped.partition("/")
    if not slash:
        raise RuleError(
            "invalid_cidr",
            f"{stripped!r} has no prefix length; {_CIDR_EXAMPLE}.",
            field,
        )
    if not (prefix.isascii() and prefix.isdigit() and len(prefix) <= 2 and int(prefix) <= 32):
        raise RuleError(
            "invalid_cidr",
            f"{stripped!r} has prefix length {prefix!r}; it must be a number from 0 to 32, "
            f"{_CIDR_EXAMPLE}.",
            field,
        )
    try:
        network_address = IPv4Address(address)
    except ipaddress.AddressValueError:
        raise RuleError(
            "invalid_cidr",
            f"{address!r} in {stripped!r} is not an IPv4 address; {_CIDR_EXAMPLE}.",
            field,
        ) from None
    return IPv4Network((network_address, int(prefix)), strict=False)


def parse_ip(text: str, field: str) -> IPv4Address:
    """Parse one IPv4 address (a device's or agent's public or private IP)."""
    stripped = text.strip()
    if ":" in stripped:
        raise RuleError(
            "invalid_ip",
            f"{stripped!r} is IPv6; only IPv4 addresses are supported, {_IP_EXAMPLE}.",
            field,
        )
    try:
        return IPv4Address(stripped)
    except ipaddress.AddressValueError:
        raise RuleError(
            "invalid_ip", f"{stripped!r} is not an IPv4 address; {_IP_EXAMPLE}.", field
        ) from None


@dataclass(frozen=True, slots=True)
class PublicSubnet:
    """A public subnet of a site and the private subnets defined under it."""

    cidr: IPv4Network
    private: tuple[IPv4Network, ...] = ()


@dataclass(frozen=True, slots=True)
class SiteSubnets:
    """Everything matching needs to know about one site."""

    site: str
    public: tuple[PublicSubnet, ...]


def validate_site_subnets(public: Sequence[PublicSubnet]) -> None:
    """Refuse a site that lists the same public subnet, or a private one under it, twice.

    Overlaps between different subnets are allowed (vendor guide: "you can
    define overlapping public or private subnets within sites"); exact repeats
    are only ever typing mistakes.
    """
    seen_public: set[IPv4Network] = set()
    for entry in public:
        if entry.cidr in seen_public:
            raise RuleError(
                "duplicate_subnet",
                f"Public subnet {entry.cidr} is listed twice in this site; remove one.",
                "subnets",
            )
        seen_public.add(entry.cidr)
        seen_private: set[IPv4Network] = set()
        for private in entry.private:
            if private in seen_private:
                raise RuleError(
                    "duplicate_subnet",
                    f"Private subnet {private} is listed twice under public subnet "
                    f"{entry.cidr}; remove one.",
                    "subnets",
                )
            seen_private.add(private)


# One public network shared by one or more sites: the site winning when the
# private IP matches nothing explicit (first by name among sites without a
# private list, else None), then the private subnets flattened into sorted
# range starts and, per range, the site of the longest private subnet there.
_Bucket = tuple[str | None, list[int], list[str | None]]


def _first(current: str | None, name: str) -> str:
    """Deterministic tie-break: the site whose name sorts first wins."""
    return name if current is None or name < current else current


def _flatten(private: dict[tuple[int, int], str]) -> tuple[list[int], list[str | None]]:
    """Turn {(network int, prefix length): site} into disjoint ranges for bisect.

    Subnets either nest or are disjoint, so one sweep with a stack of the open
    subnets gives, for each range, the innermost (longest-prefix) subnet's site.
    """
    starts: list[int] = []
    owners: list[str | None] = []

    def mark(position: int, owner: str | None) -> None:
        if starts and starts[-1] == position:
            owners[-1] = owner
        else:
            starts.append(position)
            owners.append(owner)

    open_nets: list[tuple[int, str]] = []
    for (begin, prefixlen), site in sorted(private.items()):
        while open_nets and open_nets[-1][0] < begin:
            last, _ = open_nets.pop()
            mark(last + 1, open_nets[-1][1] if open_nets else None)
        open_nets.append((begin + (1 << (32 - prefixlen)) - 1, site))
        mark(begin, site)
    while open_nets:
        last, _ = open_nets.pop()
        mark(last + 1, open_nets[-1][1] if open_nets else None)
    return starts, owners


class SiteIndex:
    """Longest-prefix site lookup, precomputed so match() costs a few probes.

    Public subnets are grouped by prefix length into {network int: bucket};
    match() walks only the prefix lengths that occur, longest first, and inside
    a bucket finds the longest private match with one bisect.
    """

    __slots__ = ("_levels",)

    def __init__(self, sites: Iterable[SiteSubnets]) -> None:
        wildcard: dict[tuple[int, int], str] = {}
        private: dict[tuple[int, int], dict[tuple[int, int], str]] = {}
        for site in sites:
            for entry in site.public:
                key = (entry.cidr.prefixlen, int(entry.cidr.network_address))
                if not entry.private:
                    wildcard[key] = _first(wildcard.get(key), site.site)
                    continue
                nets = private.setdefault(key, {})
                for net in entry.private:
                    net_key = (int(net.network_address), net.prefixlen)
                    nets[net_key] = _first(nets.get(net_key), site.site)
        levels: dict[int, dict[int, _Bucket]] = {}
        for key in wildcard.keys() | private.keys():
            starts, owners = _flatten(private.get(key, {}))
            levels.setdefault(key[0], {})[key[1]] = (wildcard.get(key), starts, owners)
        self._levels = tuple((_mask(n), levels[n]) for n in sorted(levels, reverse=True))

    def match(self, public_ip: IPv4Address, private_ip: IPv4Address | None = None) -> str | None:
        """The site of a device seen at public_ip (and private_ip), or None for Internet.

        An explicit private-subnet match beats a public subnet without private
        subnets; when nothing at the longest public prefix accepts the device,
        shorter public prefixes are tried.
        """
        public_int = int(public_ip)
        private_int = None if private_ip is None else int(private_ip)
        for mask, buckets in self._levels:
            bucket = buckets.get(public_int & mask)
            if bucket is None:
                continue
            wildcard, starts, owners = bucket
            if private_int is not None:
                at = bisect_right(starts, private_int) - 1
                if at >= 0 and owners[at] is not None:
                    return owners[at]
            if wildcard is not None:
                return wildcard
        return None
