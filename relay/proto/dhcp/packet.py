"""DHCP packets (RFC 2131 section 2, options RFC 2132): parse with hard caps, build, decode options.

The parser sees datagrams from anyone on the LAN (and, relayed, from other
subnets), so it is strict and bounded: between 240 and 1500 bytes, the magic
cookie, no option running past its field. Any bad input raises `DhcpError` and
nothing else.

Choices where the RFCs leave room:
- repeated options are concatenated in order (RFC 3396 section 7: a receiver
  MUST treat several instances of one option as one long value);
- option overload (RFC 2132 section 9.3, option 52) is supported: `file`, then
  `sname`, are read as more options after the options field, in the order
  RFC 3396 section 7 gives; the consumed field is returned empty and option 52
  itself is dropped from the result, since it describes the encoding only;
- a missing END is accepted when the options end exactly at a field's end
  (nothing is ambiguous then); anything after END is padding and ignored;
- the options the server interprets (53, 50, 54, 51, 58, 59, 57, 55, 52) have
  their lengths checked at parse time, so the accessors of a parsed packet
  never fail.

Pure stdlib (relay.proto rules): no sockets, no asyncio, no logging.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from ipaddress import IPv4Address

# RFC 2131 section 2: the fixed BOOTP header is 236 bytes, then the 4-byte cookie.
HEADER_SIZE = 236
MAGIC_COOKIE = b"\x63\x82\x53\x63"
MIN_PACKET = HEADER_SIZE + len(MAGIC_COOKIE)
# A DHCP message travels in one unfragmented UDP datagram on an Ethernet LAN
# (RFC 2131 section 2 asks only for 576); nothing legitimate is larger than
# an Ethernet MTU, so anything larger is refused before any work is done.
MAX_PACKET = 1500
# RFC 1542 section 3.5 / RFC 2131 section 2: BOOTP relays and old clients
# expect at least the 300-byte BOOTP message, so built packets are padded.
MIN_BUILT = 300
SNAME_SIZE = 64
FILE_SIZE = 128
CHADDR_SIZE = 16

BOOTREQUEST = 1
BOOTREPLY = 2
SERVER_PORT = 67
CLIENT_PORT = 68
# RFC 2131 section 2, figure 2: the leftmost bit of `flags`; the rest MBZ.
BROADCAST_FLAG = 0x8000
HTYPE_ETHERNET = 1
# RFC 3925 section 4: the IANA enterprise number of Polycom (phones.md section 1).
POLYCOM_ENTERPRISE = 13885

_HEADER = struct.Struct("!BBBBIHH4s4s4s4s16s64s128s")
_ZERO = IPv4Address(0)


class DhcpError(ValueError):
    """Input that is not a DHCP packet this module accepts (or cannot be built)."""


class MessageType(IntEnum):
    """Option 53 values (RFC 2132 section 9.6)."""

    DISCOVER = 1
    OFFER = 2
    REQUEST = 3
    DECLINE = 4
    ACK = 5
    NAK = 6
    RELEASE = 7
    INFORM = 8


class Option(IntEnum):
    """The option codes this package reads or writes (RFC 2132 unless noted)."""

    PAD = 0
    SUBNET_MASK = 1
    ROUTER = 3
    DNS = 6
    DOMAIN_NAME = 15
    NTP = 42
    REQUESTED_IP = 50
    LEASE_TIME = 51
    OVERLOAD = 52
    MESSAGE_TYPE = 53
    SERVER_ID = 54
    PARAMETER_REQUEST_LIST = 55
    MESSAGE = 56
    MAX_MESSAGE_SIZE = 57
    RENEWAL_TIME = 58
    REBINDING_TIME = 59
    VENDOR_CLASS = 60
    CLIENT_ID = 61
    TFTP_SERVER = 66
    RELAY_AGENT_INFO = 82  # RFC 3046
    VI_VENDOR_CLASS = 124  # RFC 3925 section 3
    VI_VENDOR_INFO = 125  # RFC 3925 section 4
    END = 255


# Lengths checked at parse time: exact for fixed-size values, a minimum otherwise.
_EXACT_LENGTHS: Mapping[int, int] = {
    Option.MESSAGE_TYPE: 1,
    Option.OVERLOAD: 1,
    Option.REQUESTED_IP: 4,
    Option.SERVER_ID: 4,
    Option.LEASE_TIME: 4,
    Option.RENEWAL_TIME: 4,
    Option.REBINDING_TIME: 4,
    Option.MAX_MESSAGE_SIZE: 2,
}
_MIN_LENGTHS: Mapping[int, int] = {
    Option.PARAMETER_REQUEST_LIST: 1,
    Option.CLIENT_ID: 1,
    Option.VENDOR_CLASS: 1,
}
# RFC 2132 section 9.3: 1 = `file` holds options, 2 = `sname`, 3 = both.
_OVERLOAD_FILE = 1
_OVERLOAD_SNAME = 2


@dataclass(frozen=True, slots=True)
class DhcpPacket:
    """One BOOTP/DHCP message (RFC 2131 section 2, figure 1), options in first-seen order.

    `options` holds each code once, its instances already concatenated
    (RFC 3396); PAD, END and OVERLOAD are never in it. `sname` and `file` are
    the fields up to their first NUL.
    """

    op: int
    xid: int
    chaddr: bytes
    options: tuple[tuple[int, bytes], ...] = ()
    htype: int = HTYPE_ETHERNET
    hlen: int = 6
    hops: int = 0
    secs: int = 0
    flags: int = 0
    ciaddr: IPv4Address = _ZERO
    yiaddr: IPv4Address = _ZERO
    siaddr: IPv4Address = _ZERO
    giaddr: IPv4Address = _ZERO
    sname: bytes = b""
    file: bytes = b""

    @property
    def broadcast(self) -> bool:
        """The client cannot take unicast before it has an address (RFC 2131 section 4.1)."""
        return bool(self.flags & BROADCAST_FLAG)

    @property
    def mac(self) -> str | None:
        """12 lower-case hex digits for an Ethernet client, else None."""
        if self.htype != HTYPE_ETHERNET or self.hlen != 6 or len(self.chaddr) < 6:
            return None
        return self.chaddr[:6].hex()

    def option(self, code: int) -> bytes | None:
        """The value of option `code`, or None when absent."""
        for key, value in self.options:
            if key == code:
                return value
        return None

    @property
    def message_type(self) -> int | None:
        """Option 53 (RFC 2132 section 9.6); None for a plain BOOTP message."""
        value = self.option(Option.MESSAGE_TYPE)
        return None if value is None else _exact(value, 1, Option.MESSAGE_TYPE)[0]

    @property
    def requested_ip(self) -> IPv4Address | None:
        """Option 50 (RFC 2132 section 9.1)."""
        return self._ip(Option.REQUESTED_IP)

    @property
    def server_id(self) -> IPv4Address | None:
        """Option 54 (RFC 2132 section 9.7)."""
        return self._ip(Option.SERVER_ID)

    @property
    def parameter_request_list(self) -> tuple[int, ...] | None:
        """Option 55 (RFC 2132 section 9.8): the codes the client asks for, in its order."""
        value = self.option(Option.PARAMETER_REQUEST_LIST)
        return None if value is None else tuple(value)

    @property
    def vendor_class(self) -> bytes | None:
        """Option 60 (RFC 2132 section 9.13); phones put RFC 3925 data here (phones.md)."""
        return self.option(Option.VENDOR_CLASS)

    @property
    def client_id(self) -> bytes | None:
        """Option 61 (RFC 2132 section 9.14)."""
        return self.option(Option.CLIENT_ID)

    @property
    def relay_agent_info(self) -> bytes | None:
        """Option 82 kept as raw bytes: servers echo it unchanged (RFC 3046 section 2.2)."""
        return self.option(Option.RELAY_AGENT_INFO)

    def _ip(self, code: Option) -> IPv4Address | None:
        value = self.option(code)
        return None if value is None else decode_ip(value)


def parse(data: bytes) -> DhcpPacket:
    """Parse one UDP payload: 240 to 1500 bytes, the magic cookie, options within bounds."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DhcpError("a DHCP packet is bytes")
    data = bytes(data)
    if len(data) < MIN_PACKET:
        raise DhcpError(
            f"packet of {len(data)} bytes is shorter than the {MIN_PACKET}-byte minimum"
        )
    if len(data) > MAX_PACKET:
        raise DhcpError(f"packet of {len(data)} bytes is over the {MAX_PACKET}-byte limit")
    if data[HEADER_SIZE:MIN_PACKET] != MAGIC_COOKIE:
        raise DhcpError("no DHCP magic cookie 63 82 53 63 (RFC 2131 section 3)")
    (op, htype, hlen, hops, xid, secs, flags, ci, yi, si, gi, chaddr, sname, file) = (
        _HEADER.unpack_from(data)
    )
    if hlen > CHADDR_SIZE:
        raise DhcpError(f"hardware address length {hlen} is over {CHADDR_SIZE}")
    found: dict[int, bytearray] = {}
    _read_options(data[MIN_PACKET:], found, "options")
    overload = found.pop(Option.OVERLOAD, None)
    if overload is not None:
        if len(overload) != 1 or not 1 <= overload[0] <= 3:
            raise DhcpError("option 52 (overload) must be one byte, 1, 2 or 3 (RFC 2132 9.3)")
        # RFC 3396 section 7: options field, then `file`, then `sname`.
        if overload[0] & _OVERLOAD_FILE:
            _read_options(file, found, "file")
            file = b""
        if overload[0] & _OVERLOAD_SNAME:
            _read_options(sname, found, "sname")
            sname = b""
        found.pop(Option.OVERLOAD, None)
    options = tuple((code, bytes(value)) for code, value in found.items())
    for code, value in options:
        _check_length(code, value)
    return DhcpPacket(
        op=op,
        htype=htype,
        hlen=hlen,
        hops=hops,
        xid=xid,
        secs=secs,
        flags=flags,
        ciaddr=IPv4Address(ci),
        yiaddr=IPv4Address(yi),
        siaddr=IPv4Address(si),
        giaddr=IPv4Address(gi),
        chaddr=chaddr,
        sname=sname.split(b"\x00", 1)[0],
        file=file.split(b"\x00", 1)[0],
        options=options,
    )


def _read_options(field: bytes, found: dict[int, bytearray], where: str) -> None:
    """Collect the options of one field into `found`, concatenating repeats (RFC 3396)."""
    at = 0
    while at < len(field):
        code = field[at]
        if code == Option.END:
            return
        if code == Option.PAD:
            at += 1
            continue
        if at + 1 >= len(field):
            raise DhcpError(f"option {code} in the {where} field has no length byte")
        length = field[at + 1]
        end = at + 2 + length
        if end > len(field):
            raise DhcpError(
                f"option {code} in the {where} field says {length} bytes, "
                f"only {len(field) - at - 2} are left"
            )
        found.setdefault(code, bytearray()).extend(field[at + 2 : end])
        at = end


def _check_length(code: int, value: bytes) -> None:
    exact = _EXACT_LENGTHS.get(code)
    if exact is not None:
        _exact(value, exact, code)
    minimum = _MIN_LENGTHS.get(code)
    if minimum is not None and len(value) < minimum:
        raise DhcpError(f"option {code} is empty; RFC 2132 requires at least {minimum} byte")


def _exact(value: bytes, length: int, code: int) -> bytes:
    if len(value) != length:
        raise DhcpError(f"option {code} is {len(value)} bytes, RFC 2132 says {length}")
    return value


def build(packet: DhcpPacket) -> bytes:
    """Encode `packet` (RFC 2131 section 2), END-terminated and zero-padded to 300 bytes.

    Values longer than 255 bytes are split into several instances of their
    option (RFC 3396 section 5). Overload is never used: a reply that does not
    fit in 1500 bytes is refused.
    """
    for name, number, bits in (
        ("op", packet.op, 8),
        ("htype", packet.htype, 8),
        ("hlen", packet.hlen, 8),
        ("hops", packet.hops, 8),
        ("xid", packet.xid, 32),
        ("secs", packet.secs, 16),
        ("flags", packet.flags, 16),
    ):
        if not 0 <= number < 1 << bits:
            raise DhcpError(f"{name} {number} does not fit in {bits} bits")
    for name, field, size in (
        ("chaddr", packet.chaddr, CHADDR_SIZE),
        ("sname", packet.sname, SNAME_SIZE),
        ("file", packet.file, FILE_SIZE),
    ):
        if len(field) > size:
            raise DhcpError(f"{name} of {len(field)} bytes is over its {size}-byte field")
    header = _HEADER.pack(
        packet.op,
        packet.htype,
        packet.hlen,
        packet.hops,
        packet.xid,
        packet.secs,
        packet.flags,
        packet.ciaddr.packed,
        packet.yiaddr.packed,
        packet.siaddr.packed,
        packet.giaddr.packed,
        packet.chaddr,
        packet.sname,
        packet.file,
    )
    out = bytearray(header + MAGIC_COOKIE)
    for code, value in packet.options:
        if not 0 < code < Option.END or code == Option.OVERLOAD:
            raise DhcpError(f"option code {code} cannot be carried as a value")
        if not value:
            out += bytes((code, 0))
        for start in range(0, len(value), 255):
            chunk = value[start : start + 255]
            out += bytes((code, len(chunk))) + chunk
    out.append(Option.END)
    if len(out) > MAX_PACKET:
        raise DhcpError(f"the packet is {len(out)} bytes, over the {MAX_PACKET}-byte limit")
    out += bytes(max(0, MIN_BUILT - len(out)))
    return bytes(out)


def decode_ip(value: bytes) -> IPv4Address:
    """One IPv4 address option value (4 bytes)."""
    if len(value) != 4:
        raise DhcpError(f"an address option is 4 bytes, got {len(value)}")
    return IPv4Address(value)


def decode_u32(value: bytes) -> int:
    """A 32-bit unsigned option value (lease time 51, T1 58, T2 59)."""
    if len(value) != 4:
        raise DhcpError(f"a 32-bit option is 4 bytes, got {len(value)}")
    number: int = struct.unpack("!I", value)[0]
    return number


def encode_ips(addresses: Iterable[IPv4Address]) -> bytes:
    """Address-list option value (router 3, DNS 6, NTP 42: RFC 2132 sections 3.5, 3.8, 8.3)."""
    return b"".join(address.packed for address in addresses)


def encode_u32(value: int) -> bytes:
    """32-bit unsigned option value (RFC 2132 sections 9.2, 9.11, 9.12)."""
    if not 0 <= value <= 0xFFFFFFFF:
        raise DhcpError(f"{value} does not fit in 32 bits")
    return struct.pack("!I", value)


def enterprise_blocks(value: bytes) -> tuple[tuple[int, bytes], ...]:
    """Split an RFC 3925 value into (enterprise number, data) blocks.

    The V-I vendor class (124, section 3) and V-I vendor-specific information
    (125, section 4) share this layout: a 4-byte enterprise number, a length
    byte, that many bytes of data, repeated. Polycom phones put the same
    layout in option 60 (phones.md section 1).
    """
    blocks: list[tuple[int, bytes]] = []
    at = 0
    while at < len(value):
        if at + 5 > len(value):
            raise DhcpError("an RFC 3925 block is cut short before its length byte")
        enterprise = int.from_bytes(value[at : at + 4], "big")
        end = at + 5 + value[at + 4]
        if end > len(value):
            raise DhcpError(f"the RFC 3925 block of enterprise {enterprise} overruns its option")
        blocks.append((enterprise, value[at + 5 : end]))
        at = end
    return tuple(blocks)


def carries_enterprise(packet: DhcpPacket, enterprise: int, codes: Sequence[int]) -> bool:
    """Whether any of options `codes` holds a well-formed RFC 3925 block of `enterprise`."""
    for code in codes:
        value = packet.option(code)
        if value is None:
            continue
        try:
            blocks = enterprise_blocks(value)
        except DhcpError:
            continue
        if any(number == enterprise for number, _data in blocks):
            return True
    return False
