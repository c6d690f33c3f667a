"""The boot options a site gives its phones, and which of them go into one reply.

Phones find the provisioning server in option 66 (a host or a URL), or in
the custom option 160 (VVX) or 161 (Trio, Edge), URLs that may carry
credentials; DHCP VLAN discovery reads `VLAN-A=<id>;` from 128, 129, 144,
157 or 191 (phones.md section 1). Only what the client asked for in option 55
is sent, plus what the site forces (RFC 2132 section 9.8).

Pure stdlib (relay.proto rules).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address

from relay.proto.dhcp.packet import DhcpError, Option, encode_ips

# phones.md section 1: the options DHCP VLAN discovery examines (Trio uses 129).
VLAN_OPTIONS = (128, 129, 144, 157, 191)
BOOT_SERVER_OPTIONS = (66, 160, 161)
# One option instance holds at most 255 bytes (RFC 2132 section 2); phones are
# not known to reassemble RFC 3396 long options, so a longer value is refused.
_MAX_VALUE = 255
# phones.md section 2: "URLs may not contain spaces or backslashes"; and
# control characters or non-ASCII have no place in an option string.
_STRING_RE = re.compile(r"[\x21-\x5b\x5d-\x7e]+")
_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://\S+")
_DOMAIN_RE = re.compile(r"[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*\.?")


@dataclass(frozen=True, slots=True)
class BootOptions:
    """What one site tells its phones at boot; every field is optional.

    `forced` lists codes sent even when the client did not ask for them
    (for phones whose option 55 omits 160/161, say).
    """

    option66: str | None = None
    option160: str | None = None
    option161: str | None = None
    vlan_id: int | None = None
    vlan_options: tuple[int, ...] = ()
    routers: tuple[IPv4Address, ...] = ()
    dns: tuple[IPv4Address, ...] = ()
    ntp: tuple[IPv4Address, ...] = ()
    domain: str | None = None
    forced: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _check_string(66, self.option66, url=False)
        _check_string(160, self.option160, url=True)
        _check_string(161, self.option161, url=True)
        if self.vlan_id is not None and not 1 <= self.vlan_id <= 4094:
            raise DhcpError(f"VLAN id {self.vlan_id} is outside 1..4094 (IEEE 802.1Q)")
        wrong = [code for code in self.vlan_options if code not in VLAN_OPTIONS]
        if wrong:
            raise DhcpError(f"VLAN options {wrong} are not among {list(VLAN_OPTIONS)}")
        if (self.vlan_id is None) != (not self.vlan_options):
            raise DhcpError("a VLAN id needs the options to carry it, and those need the id")
        for name, addresses in (("routers", self.routers), ("dns", self.dns), ("ntp", self.ntp)):
            if len(addresses) * 4 > _MAX_VALUE:
                raise DhcpError(f"{len(addresses)} {name} addresses do not fit in one option")
        if self.domain is not None and (
            len(self.domain) > _MAX_VALUE or _DOMAIN_RE.fullmatch(self.domain) is None
        ):
            raise DhcpError(f"domain {self.domain[:60]!r} is not a domain name")
        bad = [code for code in self.forced if not 0 < code < Option.END]
        if bad:
            raise DhcpError(f"forced option codes {bad} are outside 1..254")

    def configured(self) -> dict[int, bytes]:
        """Every option this site sets, by code, encoded for the wire."""
        values: dict[int, bytes] = {}
        if self.routers:
            values[Option.ROUTER] = encode_ips(self.routers)
        if self.dns:
            values[Option.DNS] = encode_ips(self.dns)
        if self.domain is not None:
            values[Option.DOMAIN_NAME] = self.domain.encode("ascii")
        if self.ntp:
            values[Option.NTP] = encode_ips(self.ntp)
        for code, text in ((66, self.option66), (160, self.option160), (161, self.option161)):
            if text is not None:
                values[code] = text.encode("ascii")
        if self.vlan_id is not None:
            for code in self.vlan_options:
                values[code] = vlan_string(self.vlan_id)
        return dict(sorted(values.items()))


def vlan_string(vlan_id: int) -> bytes:
    """`VLAN-A=<id>;`, the id in decimal (phones.md section 1)."""
    return f"VLAN-A={vlan_id};".encode("ascii")


def answer_options(
    boot: BootOptions,
    requested: Sequence[int] | None,
    *,
    subnet_mask: IPv4Address | None = None,
) -> list[tuple[int, bytes]]:
    """The configured options for a client whose option 55 is `requested`.

    RFC 2132 section 9.8: in the client's order, then the forced ones. A
    client that sent no option 55 (`None`) gets everything configured: it
    named no subset to keep to. The subnet mask belongs to the pool, not the
    site, and is passed in by the lease engine.
    """
    available = boot.configured()
    if subnet_mask is not None:
        available[Option.SUBNET_MASK] = subnet_mask.packed
    return pick_options(available, requested, boot.forced)


def pick_options(
    available: Mapping[int, bytes], requested: Sequence[int] | None, forced: Sequence[int]
) -> list[tuple[int, bytes]]:
    """`answer_options` over options encoded once (the lease engine keeps them per pool)."""
    if requested is None:
        return sorted(available.items())
    answer: list[tuple[int, bytes]] = []
    for code in dict.fromkeys((*requested, *forced)):
        value = available.get(code)
        if value is not None:
            answer.append((code, value))
    return answer


def _check_string(code: int, value: str | None, *, url: bool) -> None:
    """Validate one boot-server string; messages never quote it (160/161 carry passwords)."""
    if value is None:
        return
    if not isinstance(value, str) or not 0 < len(value) <= _MAX_VALUE:
        raise DhcpError(f"option {code} must be 1 to {_MAX_VALUE} characters")
    if _STRING_RE.fullmatch(value) is None:
        raise DhcpError(f"option {code} holds spaces, backslashes or non-ASCII characters")
    if url and _URL_RE.fullmatch(value) is None:
        raise DhcpError(f"option {code} is not a URL (scheme://host/...)")
