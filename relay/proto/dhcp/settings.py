"""The operator's DHCP settings as text: address ranges, MACs, reservations, the boot URL.

These come from flags, environment variables and the TOML file (relay/config.py),
so they are parsed strictly, with a length cap, and every malformed value
raises `DhcpError` naming the setting but never quoting a URL (boot URLs
carry the provisioning password).

Pure stdlib (relay.proto rules).
"""

from __future__ import annotations

import re
from ipaddress import AddressValueError, IPv4Address
from urllib.parse import SplitResult, urlsplit

from relay.proto.dhcp.leases import Reservation
from relay.proto.dhcp.packet import DhcpError

# Longer than any legitimate value (a range is 31 characters, a reservation 33,
# a boot URL fits one 255-byte option); anything longer is refused unread.
MAX_TEXT = 255
_HEX_MAC = re.compile(r"[0-9a-f]{12}")
# 00:04:f2:a1:b2:c3, 00-04-f2-a1-b2-c3, 0004.f2a1.b2c3 or 0004f2a1b2c3, any case.
_MAC_FORMS = re.compile(
    r"(?:[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4})|(?:[0-9a-f]{4}\.){2}[0-9a-f]{4}"
    r"|[0-9a-f]{12}"
)


def _capped(text: object, what: str) -> str:
    if not isinstance(text, str):
        raise DhcpError(f"{what} must be text")
    if len(text) > MAX_TEXT:
        raise DhcpError(f"{what} is over {MAX_TEXT} characters")
    return text.strip()


def parse_address(text: object, what: str) -> IPv4Address:
    """One dotted-quad IPv4 address."""
    value = _capped(text, what)
    try:
        return IPv4Address(value)
    except AddressValueError as exc:
        raise DhcpError(f"{what} {value!r} is not an IPv4 address") from exc


def parse_range(text: object) -> tuple[IPv4Address, IPv4Address]:
    """`FIRST-LAST`, both included (the dynamic range of a pool)."""
    value = _capped(text, "the pool")
    first, dash, last = value.partition("-")
    if not dash:
        raise DhcpError(f"the pool {value!r} is not FIRST-LAST (e.g. 192.0.2.100-192.0.2.199)")
    low, high = parse_address(first, "the pool start"), parse_address(last, "the pool end")
    if low > high:
        raise DhcpError(f"the pool {value!r} is empty: {low} comes after {high}")
    return low, high


def parse_mac(text: object) -> str:
    """An Ethernet address in any common notation, as 12 lower-case hex digits."""
    value = _capped(text, "a MAC address").lower()
    if _MAC_FORMS.fullmatch(value) is None:
        raise DhcpError(f"{value!r} is not a MAC address (00:04:f2:a1:b2:c3 or 0004f2a1b2c3)")
    digits = re.sub(r"[:.\-]", "", value)
    assert _HEX_MAC.fullmatch(digits) is not None
    return digits


def parse_reservation(text: object) -> Reservation:
    """`MAC=IP`: a fixed address for one phone."""
    value = _capped(text, "a reservation")
    mac, equals, ip = value.partition("=")
    if not equals:
        raise DhcpError(f"the reservation {value!r} is not MAC=IP")
    return Reservation(parse_mac(mac), parse_address(ip, f"the address reserved for {mac}"))


def _split(url: object, what: str) -> SplitResult:
    value = _capped(url, what)
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - a port outside 0-65535 raises ValueError here
    except ValueError as exc:
        raise DhcpError(f"{what} is not a URL") from exc
    if not parts.scheme or not host:
        raise DhcpError(f"{what} is not a URL with a scheme and a host (https://host/...)")
    return parts


def check_url(url: object, what: str) -> str:
    """`url` if it is a URL with a scheme and a host; the message never quotes it."""
    _split(url, what)
    assert isinstance(url, str)
    return url.strip()


def without_credentials(url: str) -> str:
    """`url` minus any `user:password@` (for option 66, which any host on the LAN may ask for)."""
    parts = _split(url, "the boot URL")
    netloc = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=netloc).geturl()


def with_host(url: str, host: IPv4Address) -> str:
    """`url` with its host replaced by `host`, keeping credentials and port."""
    parts = _split(url, "the boot URL")
    userinfo, at, _host = parts.netloc.rpartition("@")
    port = f":{parts.port}" if parts.port is not None else ""
    return parts._replace(netloc=f"{userinfo}{at}{host}{port}").geturl()
