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
from dataclasses import dataclass, fields
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

# The four addresses as integers: IPv4Address converts from and to those cheapest.
_HEADER = struct.Struct("!BBBBIHHIIII16s64s128s")
# An option's code and length bytes.
_TAG = struct.Struct("BB")
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


# Lengths checked at parse time, (minimum, maximum) by option code: exact for
# fixed-size values, a minimum otherwise.
_LENGTHS: Mapping[int, tuple[int, int]] = {
    Option.MESSAGE_TYPE: (1, 1),
    Option.OVERLOAD: (1, 1),
    Option.REQUESTED_IP: (4, 4),
    Option.SERVER_ID: (4, 4),
    Option.LEASE_TIME: (4, 4),
    Option.RENEWAL_TIME: (4, 4),
    Option.REBINDING_TIME: (4, 4),
    Option.MAX_MESSAGE_SIZE: (2, 2),
    Option.PARAMETER_REQUEST_LIST: (1, MAX_PACKET),
    Option.CLIENT_ID: (1, MAX_PACKET),
    Option.VENDOR_CLASS: (1, MAX_PACKET),
}
# RFC 2132 section 9.3: 1 = `file` holds options, 2 = `sname`, 3 = both.
_OVERLOAD_FILE = 1
_OVERLOAD_SNAME = 2
# Plain ints for the byte loops (looking an IntEnum member up costs a call).
_PAD = int(Option.PAD)
_END = int(Option.END)
_END_BYTE = bytes((_END,))
_OVERLOAD_CODE = int(Option.OVERLOAD)
_MESSAGE_TYPE = int(Option.MESSAGE_TYPE)


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
        value = self.option(_MESSAGE_TYPE)
        if value is None:
            return None
        if len(value) != 1:
            raise DhcpError(_length_error(_MESSAGE_TYPE, len(value), (1, 1)))
        return value[0]

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


# The frozen dataclass's generated __init__ stores each field through
# object.__setattr__ and takes keyword arguments: it cost more than the rest
# of parsing. The hot paths (every datagram parsed, every reply built) store
# the slots directly; the object is the same frozen DhcpPacket.
_new_object = object.__new__
(
    _set_op,
    _set_xid,
    _set_chaddr,
    _set_options,
    _set_htype,
    _set_hlen,
    _set_hops,
    _set_secs,
    _set_flags,
    _set_ciaddr,
    _set_yiaddr,
    _set_siaddr,
    _set_giaddr,
    _set_sname,
    _set_file,
) = (DhcpPacket.__dict__[field.name].__set__ for field in fields(DhcpPacket))


def assemble(
    op: int,
    xid: int,
    chaddr: bytes,
    options: tuple[tuple[int, bytes], ...],
    htype: int,
    hlen: int,
    hops: int,
    secs: int,
    flags: int,
    ciaddr: IPv4Address,
    yiaddr: IPv4Address,
    siaddr: IPv4Address,
    giaddr: IPv4Address,
    sname: bytes,
    file: bytes,
) -> DhcpPacket:
    """`DhcpPacket(...)` with every field, in declaration order, for the hot paths."""
    packet: DhcpPacket = _new_object(DhcpPacket)
    _set_op(packet, op)
    _set_xid(packet, xid)
    _set_chaddr(packet, chaddr)
    _set_options(packet, options)
    _set_htype(packet, htype)
    _set_hlen(packet, hlen)
    _set_hops(packet, hops)
    _set_secs(packet, secs)
    _set_flags(packet, flags)
    _set_ciaddr(packet, ciaddr)
    _set_yiaddr(packet, yiaddr)
    _set_siaddr(packet, siaddr)
    _set_giaddr(packet, giaddr)
    _set_sname(packet, sname)
    _set_file(packet, file)
    return packet


def parse(data: bytes) -> DhcpPacket:
    """Parse one UDP payload: 240 to 1500 bytes, the magic cookie, options within bounds."""
    if not isinstance(data, bytes):
        if not isinstance(data, bytearray | memoryview):
            raise DhcpError("a DHCP packet is bytes")
        data = bytes(data)
    size = len(data)
    if size < MIN_PACKET:
        raise DhcpError(f"packet of {size} bytes is shorter than the {MIN_PACKET}-byte minimum")
    if size > MAX_PACKET:
        raise DhcpError(f"packet of {size} bytes is over the {MAX_PACKET}-byte limit")
    if data[HEADER_SIZE:MIN_PACKET] != MAGIC_COOKIE:
        raise DhcpError("no DHCP magic cookie 63 82 53 63 (RFC 2131 section 3)")
    (op, htype, hlen, hops, xid, secs, flags, ci, yi, si, gi, chaddr, sname, file) = (
        _HEADER.unpack_from(data)
    )
    if hlen > CHADDR_SIZE:
        raise DhcpError(f"hardware address length {hlen} is over {CHADDR_SIZE}")
    found: dict[int, bytes] = {}
    repeated: dict[int, bytearray] = {}
    _read_options(data, MIN_PACKET, found, repeated, "options")
    overload = found.pop(_OVERLOAD_CODE, None)
    if overload is not None:
        if len(overload) != 1 or not 1 <= overload[0] <= 3:
            raise DhcpError("option 52 (overload) must be one byte, 1, 2 or 3 (RFC 2132 9.3)")
        # RFC 3396 section 7: options field, then `file`, then `sname`.
        if overload[0] & _OVERLOAD_FILE:
            _read_options(file, 0, found, repeated, "file")
            file = b""
        if overload[0] & _OVERLOAD_SNAME:
            _read_options(sname, 0, found, repeated, "sname")
            sname = b""
        found.pop(_OVERLOAD_CODE, None)
        repeated.pop(_OVERLOAD_CODE, None)
    if repeated:
        for code, joined in repeated.items():
            found[code] = bytes(joined)
    for code, value in found.items():
        bounds = _LENGTHS.get(code)
        if bounds is not None and not bounds[0] <= len(value) <= bounds[1]:
            raise DhcpError(_length_error(code, len(value), bounds))
    return assemble(
        op,
        xid,
        chaddr,
        tuple(found.items()),
        htype,
        hlen,
        hops,
        secs,
        flags,
        _ZERO if ci == 0 else IPv4Address(ci),
        _ZERO if yi == 0 else IPv4Address(yi),
        _ZERO if si == 0 else IPv4Address(si),
        _ZERO if gi == 0 else IPv4Address(gi),
        sname.split(b"\x00", 1)[0],
        file.split(b"\x00", 1)[0],
    )


def _read_options(
    field: bytes, at: int, found: dict[int, bytes], repeated: dict[int, bytearray], where: str
) -> None:
    """Collect the options of `field` from offset `at` into `found`, concatenating repeats.

    RFC 3396 section 7. A repeated option is joined in `repeated` (a
    bytearray: many repeats cost linear time) and keeps its first position
    in `found`.
    """
    end_of_field = len(field)
    while at < end_of_field:
        code = field[at]
        if code == _END:
            return
        if code == _PAD:
            at += 1
            continue
        if at + 1 >= end_of_field:
            raise DhcpError(f"option {code} in the {where} field has no length byte")
        length = field[at + 1]
        end = at + 2 + length
        if end > end_of_field:
            raise DhcpError(
                f"option {code} in the {where} field says {length} bytes, "
                f"only {end_of_field - at - 2} are left"
            )
        value = field[at + 2 : end]
        if code not in found:
            found[code] = value
        elif code in repeated:
            repeated[code] += value
        else:
            repeated[code] = bytearray(found[code]) + value
        at = end


def peek_message_type(data: bytes) -> int | None:
    """Option 53 read straight from the options field of a datagram, without parsing it.

    For triage only (which datagrams wait and which are decided first):
    it never raises, and answers None wherever `parse` would have to look
    further (no cookie, option 53 absent, repeated, in an overloaded field,
    or malformed); the datagram is then parsed in full like any other.
    """
    size = len(data)
    if not MIN_PACKET <= size <= MAX_PACKET or data[HEADER_SIZE:MIN_PACKET] != MAGIC_COOKIE:
        return None
    at = MIN_PACKET
    found = None
    while at < size:
        code = data[at]
        if code == _END:
            break
        if code == _PAD:
            at += 1
            continue
        if at + 1 >= size:
            return None
        end = at + 2 + data[at + 1]
        if end > size or code == _OVERLOAD_CODE:
            return None
        if code == _MESSAGE_TYPE:
            if found is not None or end != at + 3:
                return None
            found = data[at + 2]
        at = end
    return found


def _length_error(code: int, length: int, bounds: tuple[int, int]) -> str:
    if bounds[0] == bounds[1]:
        return f"option {code} is {length} bytes, RFC 2132 says {bounds[0]}"
    return f"option {code} is empty; RFC 2132 requires at least {bounds[0]} byte"


def build(packet: DhcpPacket) -> bytes:
    """Encode `packet` (RFC 2131 section 2), END-terminated and zero-padded to 300 bytes.

    Values longer than 255 bytes are split into several instances of their
    option (RFC 3396 section 5). Overload is never used: a reply that does not
    fit in 1500 bytes is refused.
    """
    chaddr, sname, file = packet.chaddr, packet.sname, packet.file
    if len(chaddr) > CHADDR_SIZE or len(sname) > SNAME_SIZE or len(file) > FILE_SIZE:
        raise DhcpError(_oversized(packet))
    try:
        header = _HEADER.pack(
            packet.op,
            packet.htype,
            packet.hlen,
            packet.hops,
            packet.xid,
            packet.secs,
            packet.flags,
            _integer(packet.ciaddr),
            _integer(packet.yiaddr),
            _integer(packet.siaddr),
            _integer(packet.giaddr),
            chaddr,
            sname,
            file,
        )
    except struct.error as exc:
        raise DhcpError(_misfit(packet) or f"the header cannot be encoded: {exc}") from exc
    parts = [header, MAGIC_COOKIE]
    append = parts.append
    for code, value in packet.options:
        length = len(value)
        if length <= 255 and 0 < code < _END and code != _OVERLOAD_CODE:
            append(_TAG.pack(code, length))
            append(value)
        else:
            parts.extend(_long_option(code, value))
    parts.append(_END_BYTE)
    out = b"".join(parts)
    if len(out) > MAX_PACKET:
        raise DhcpError(f"the packet is {len(out)} bytes, over the {MAX_PACKET}-byte limit")
    if len(out) < MIN_BUILT:
        return out + bytes(MIN_BUILT - len(out))
    return out


def _integer(address: IPv4Address) -> int:
    # Most address fields are the parser's zero: no conversion for it.
    return 0 if address is _ZERO else int(address)


def _long_option(code: int, value: bytes) -> list[bytes]:
    """An option value over 255 bytes as several instances (RFC 3396 section 5)."""
    if not 0 < code < _END or code == _OVERLOAD_CODE:
        raise DhcpError(f"option code {code} cannot be carried as a value")
    parts: list[bytes] = []
    for start in range(0, len(value), 255):
        chunk = value[start : start + 255]
        parts += (_TAG.pack(code, len(chunk)), chunk)
    return parts


def _oversized(packet: DhcpPacket) -> str:
    """Which variable-size header field is too long (asked only once one was)."""
    for name, field, size in (
        ("chaddr", packet.chaddr, CHADDR_SIZE),
        ("sname", packet.sname, SNAME_SIZE),
        ("file", packet.file, FILE_SIZE),
    ):
        if len(field) > size:
            return f"{name} of {len(field)} bytes is over its {size}-byte field"
    return "a header field is over its size"


def _misfit(packet: DhcpPacket) -> str | None:
    """Which integer header field is out of range (asked only once packing failed)."""
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
            return f"{name} {number} does not fit in {bits} bits"
    return None


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
