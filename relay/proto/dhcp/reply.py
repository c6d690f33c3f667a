"""Server replies: which fields are copied from the request, and where the reply goes.

Shared by the lease engine and the inform-only responder, so that both
follow RFC 2131 section 4.1 (destination), table 3 (fields), RFC 3046
section 2.2 (option 82 echoed unchanged) and RFC 6842 (client identifier
echoed) the same way.

Pure stdlib (relay.proto rules).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address

from relay.proto.dhcp.packet import (
    BOOTREPLY,
    BROADCAST_FLAG,
    CLIENT_PORT,
    SERVER_PORT,
    DhcpPacket,
    MessageType,
    Option,
    assemble,
)

ZERO = IPv4Address(0)
LIMITED_BROADCAST = IPv4Address("255.255.255.255")
# Plain ints and the encoded option 53 values: enum attribute access costs a call per reply.
_MESSAGE_TYPE = int(Option.MESSAGE_TYPE)
_SERVER_ID = int(Option.SERVER_ID)
_CLIENT_ID = int(Option.CLIENT_ID)
_RELAY_AGENT_INFO = int(Option.RELAY_AGENT_INFO)
_KINDS = {kind: bytes((kind,)) for kind in MessageType}


@dataclass(frozen=True, slots=True)
class Reply:
    """A reply and the UDP destination RFC 2131 section 4.1 gives it.

    `link_unicast` marks the one case a plain socket cannot send as is:
    unicast to a client that has no address yet (yiaddr, at chaddr). The
    adapter either installs an ARP entry for it or, as section 4.1 allows,
    broadcasts instead.
    """

    packet: DhcpPacket
    ip: IPv4Address
    port: int
    link_unicast: bool = False


def reply_to(
    request: DhcpPacket,
    kind: MessageType,
    server_ip: IPv4Address,
    *,
    yiaddr: IPv4Address = ZERO,
    options: Iterable[tuple[int, bytes]] = (),
) -> Reply:
    """Build the `kind` reply (OFFER, ACK or NAK) to `request`, addressed per section 4.1."""
    nak = kind == MessageType.NAK
    giaddr = request.giaddr
    relayed = giaddr != ZERO
    flags = request.flags
    if nak and relayed:
        # RFC 2131 section 4.3.2: a relayed NAK has the broadcast bit set, so
        # the relay agent broadcasts it to a client whose address is wrong.
        flags |= BROADCAST_FLAG
    # Table 3: ciaddr is echoed in an ACK (it is 0 in OFFER and NAK).
    ciaddr = request.ciaddr if kind == MessageType.ACK else ZERO
    echoed = [
        (code, value) for code, value in request.options if code in (_CLIENT_ID, _RELAY_AGENT_INFO)
    ]
    echoed.sort()
    packet = assemble(
        BOOTREPLY,
        request.xid,
        request.chaddr,
        ((_MESSAGE_TYPE, _KINDS[kind]), (_SERVER_ID, server_ip.packed), *options, *echoed),
        request.htype,
        request.hlen,
        0,
        0,
        flags,
        ciaddr,
        yiaddr,
        ZERO,
        giaddr,
        b"",
        b"",
    )
    if relayed:
        return Reply(packet, request.giaddr, SERVER_PORT)
    if nak:
        return Reply(packet, LIMITED_BROADCAST, CLIENT_PORT)
    if request.ciaddr != ZERO:
        return Reply(packet, request.ciaddr, CLIENT_PORT)
    if request.broadcast or yiaddr == ZERO:
        return Reply(packet, LIMITED_BROADCAST, CLIENT_PORT)
    return Reply(packet, yiaddr, CLIENT_PORT, link_unicast=True)
