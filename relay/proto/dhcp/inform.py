"""Inform mode: answer phones' DHCPINFORM with the boot options, and allocate nothing.

On a network whose DHCP server the appliance does not own, a phone whose
lease carried no boot server sends DHCPINFORM and takes the boot-server
option from whichever server answers (phones.md section 1.4). This responder
answers only INFORMs from phones, recognised by MAC OUI or by an RFC 3925
block of enterprise 13885 in option 60 (how Polycom phones send it,
phones.md section 1.3), 124 or 125, so that the network's own DHCP server
stays the only one answering every other host. DISCOVER and REQUEST are
never answered: no address is ever handed out.

Pure stdlib (relay.proto rules).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address

from relay.proto.dhcp.options import BootOptions, answer_options
from relay.proto.dhcp.packet import (
    BOOTREQUEST,
    POLYCOM_ENTERPRISE,
    DhcpPacket,
    MessageType,
    Option,
    carries_enterprise,
)
from relay.proto.dhcp.reply import Reply, reply_to
from relay.proto.polycom.models import OUIS

_ENTERPRISE_OPTIONS = (Option.VENDOR_CLASS, Option.VI_VENDOR_CLASS, Option.VI_VENDOR_INFO)


def is_phone(packet: DhcpPacket, ouis: Sequence[str] = OUIS) -> bool:
    """Whether `packet` comes from a Polycom/Poly phone (phones.md section 1.3)."""
    mac = packet.mac
    if mac is not None and mac[:6] in ouis:
        return True
    return carries_enterprise(packet, POLYCOM_ENTERPRISE, _ENTERPRISE_OPTIONS)


@dataclass(frozen=True, slots=True)
class InformResponder:
    """Answers phones' DHCPINFORM (RFC 2131 section 4.3.5) with `boot`; stateless."""

    server_ip: IPv4Address
    boot: BootOptions
    ouis: tuple[str, ...] = OUIS

    def handle(self, packet: DhcpPacket) -> Reply | None:
        """The DHCPACK for a phone's INFORM; None for everything and everyone else."""
        if packet.op != BOOTREQUEST or packet.message_type != MessageType.INFORM:
            return None
        if not is_phone(packet, self.ouis):
            return None
        options = answer_options(self.boot, packet.parameter_request_list)
        return reply_to(packet, MessageType.ACK, self.server_ip, options=options)
