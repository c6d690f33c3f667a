"""relay.proto.dhcp.packet: parsing with hard caps, building, option helpers (RFC 2131/2132)."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from ipaddress import IPv4Address
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.proto.dhcp.packet import (
    BOOTREPLY,
    BOOTREQUEST,
    BROADCAST_FLAG,
    MAGIC_COOKIE,
    MAX_PACKET,
    MIN_BUILT,
    MIN_PACKET,
    POLYCOM_ENTERPRISE,
    DhcpError,
    DhcpPacket,
    MessageType,
    Option,
    assemble,
    build,
    carries_enterprise,
    decode_ip,
    decode_u32,
    encode_ips,
    encode_u32,
    enterprise_blocks,
    parse,
    peek_message_type,
)

MAC = bytes.fromhex("0004f2a1b2c3")


def discover(**changes: object) -> DhcpPacket:
    fields: dict[str, object] = {
        "op": BOOTREQUEST,
        "xid": 0x1234ABCD,
        "chaddr": MAC,
        "options": ((Option.MESSAGE_TYPE, bytes((MessageType.DISCOVER,))),),
    }
    fields.update(changes)
    return DhcpPacket(**fields)  # type: ignore[arg-type]


def raw_with_options(options: bytes, *, sname: bytes = b"", file: bytes = b"") -> bytes:
    header = bytearray(build(discover()))[:MIN_PACKET]
    header[44 : 44 + len(sname)] = sname
    header[108 : 108 + len(file)] = file
    return bytes(header) + options


@pytest.fixture(scope="module")
def scapy_dhcp() -> Iterator[ModuleType]:
    """scapy's DHCP layer, imported quietly: its import-time warnings are not ours to fail on."""
    logging.getLogger("scapy").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from scapy.layers import dhcp

    yield dhcp


def test_a_built_packet_parses_back_to_the_same_fields() -> None:
    packet = discover(
        hops=2,
        secs=9,
        flags=BROADCAST_FLAG,
        ciaddr=IPv4Address("10.0.0.5"),
        yiaddr=IPv4Address("10.0.0.6"),
        siaddr=IPv4Address("10.0.0.7"),
        giaddr=IPv4Address("10.0.0.8"),
        chaddr=MAC + bytes(10),
        sname=b"server",
        file=b"boot.file",
        options=((53, b"\x01"), (55, b"\x01\x03\x42"), (82, b"\x01\x03abc")),
    )

    assert parse(build(packet)) == packet


def test_built_packets_are_padded_to_the_bootp_minimum() -> None:
    data = build(discover())

    assert len(data) == MIN_BUILT
    assert data[MIN_PACKET:].rstrip(b"\x00") == b"\x35\x01\x01\xff"


def test_the_magic_cookie_follows_the_fixed_header() -> None:
    assert build(discover())[236:240] == MAGIC_COOKIE


def test_a_packet_shorter_than_the_header_and_cookie_is_refused() -> None:
    with pytest.raises(DhcpError, match="shorter"):
        parse(build(discover())[: MIN_PACKET - 1])


def test_a_packet_over_the_size_cap_is_refused() -> None:
    with pytest.raises(DhcpError, match="over the 1500-byte limit"):
        parse(build(discover()) + bytes(MAX_PACKET))


def test_a_wrong_magic_cookie_is_refused() -> None:
    data = bytearray(build(discover()))
    data[236:240] = b"\x63\x82\x53\x64"

    with pytest.raises(DhcpError, match="magic cookie"):
        parse(bytes(data))


def test_an_option_running_past_the_packet_is_refused() -> None:
    with pytest.raises(DhcpError, match="says 10 bytes"):
        parse(raw_with_options(b"\x35\x01\x01\x0c\x0aabc"))


def test_an_option_without_its_length_byte_is_refused() -> None:
    with pytest.raises(DhcpError, match="no length byte"):
        parse(raw_with_options(b"\x35\x01\x01\x0c"))


def test_a_hardware_address_length_over_sixteen_is_refused() -> None:
    data = bytearray(build(discover()))
    data[2] = 17

    with pytest.raises(DhcpError, match="hardware address length"):
        parse(bytes(data))


def test_input_that_is_not_bytes_is_refused() -> None:
    with pytest.raises(DhcpError, match="bytes"):
        parse("not bytes")  # type: ignore[arg-type]


def test_repeated_options_are_concatenated_in_order() -> None:
    packet = parse(raw_with_options(b"\x35\x01\x01\x0c\x02ab\x37\x01\x01\x0c\x02cd\xff"))

    assert packet.option(12) == b"abcd"
    assert [code for code, _ in packet.options] == [53, 12, 55]


def test_an_option_repeated_many_times_is_joined_in_order() -> None:
    packet = parse(raw_with_options(b"\x35\x01\x01" + b"\x0c\x01x\x0c\x01y" * 200 + b"\xff"))

    assert packet.option(12) == b"xy" * 200


def test_pad_bytes_are_skipped_and_bytes_after_end_ignored() -> None:
    packet = parse(raw_with_options(b"\x00\x00\x35\x01\x03\x00\xff\x0c\x63garbage"))

    assert packet.options == ((53, b"\x03"),)


def test_options_ending_without_end_are_accepted() -> None:
    assert parse(raw_with_options(b"\x35\x01\x01")).message_type == MessageType.DISCOVER


def test_overloaded_file_field_carries_more_options() -> None:
    file = b"\x0c\x04host\xff"

    packet = parse(raw_with_options(b"\x35\x01\x01\x34\x01\x01\xff", file=file))

    assert packet.option(12) == b"host"
    assert packet.file == b""
    assert packet.option(Option.OVERLOAD) is None


def test_overloaded_options_continue_in_file_then_sname() -> None:
    packet = parse(
        raw_with_options(
            b"\x35\x01\x01\x34\x01\x03\x0c\x01a\xff", file=b"\x0c\x01b\xff", sname=b"\x0c\x01c\xff"
        )
    )

    assert packet.option(12) == b"abc"
    assert packet.sname == b""


def test_an_overload_value_outside_one_to_three_is_refused() -> None:
    with pytest.raises(DhcpError, match="overload"):
        parse(raw_with_options(b"\x35\x01\x01\x34\x01\x04\xff"))


def test_an_overrun_inside_an_overloaded_field_is_refused() -> None:
    with pytest.raises(DhcpError, match="file field"):
        parse(raw_with_options(b"\x35\x01\x01\x34\x01\x01\xff", file=bytes(126) + b"\x0c\x09"))


def test_a_message_type_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(DhcpError, match="option 53 is 2 bytes"):
        parse(raw_with_options(b"\x35\x02\x01\x01\xff"))


def test_an_empty_parameter_request_list_is_refused() -> None:
    with pytest.raises(DhcpError, match="option 55 is empty"):
        parse(raw_with_options(b"\x35\x01\x01\x37\x00\xff"))


def test_values_over_255_bytes_are_split_into_several_instances() -> None:
    long = bytes(range(256)) * 2

    data = build(discover(options=((53, b"\x01"), (43, long))))

    assert data.count(b"\x2b\xff") == 2
    assert parse(data).option(43) == long


def test_building_refuses_pad_end_and_overload_as_option_codes() -> None:
    for code in (0, 52, 255):
        with pytest.raises(DhcpError, match=f"option code {code}"):
            build(discover(options=((code, b"\x01"),)))


def test_building_refuses_a_packet_over_the_size_cap() -> None:
    options = tuple((code, bytes(255)) for code in range(200, 206))

    with pytest.raises(DhcpError, match="over the 1500-byte limit"):
        build(discover(options=options))


def test_building_refuses_header_values_that_do_not_fit() -> None:
    with pytest.raises(DhcpError, match="xid"):
        build(discover(xid=1 << 32))


def test_building_refuses_a_file_name_longer_than_its_field() -> None:
    with pytest.raises(DhcpError, match="file of 129 bytes"):
        build(discover(file=bytes(129)))


def test_the_broadcast_flag_is_the_leftmost_bit() -> None:
    assert discover(flags=0x8000).broadcast
    assert not discover(flags=0x7FFF).broadcast


def test_the_mac_of_a_non_ethernet_client_is_none() -> None:
    assert discover().mac == "0004f2a1b2c3"
    assert discover(htype=6).mac is None
    assert discover(hlen=8).mac is None


def test_option_accessors_decode_the_common_options() -> None:
    packet = discover(
        options=(
            (53, b"\x03"),
            (50, IPv4Address("10.0.0.9").packed),
            (54, IPv4Address("10.0.0.1").packed),
            (55, b"\x01\x42\xa0"),
            (60, b"vendor"),
            (61, b"\x01" + MAC),
            (82, b"\x01\x02ab"),
        )
    )

    assert packet.message_type == MessageType.REQUEST
    assert packet.requested_ip == IPv4Address("10.0.0.9")
    assert packet.server_id == IPv4Address("10.0.0.1")
    assert packet.parameter_request_list == (1, 66, 160)
    assert packet.vendor_class == b"vendor"
    assert packet.client_id == b"\x01" + MAC
    assert packet.relay_agent_info == b"\x01\x02ab"


def test_value_codecs_round_trip() -> None:
    addresses = (IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2"))

    assert encode_ips(addresses) == bytes([10, 0, 0, 1, 10, 0, 0, 2])
    assert decode_ip(addresses[0].packed) == addresses[0]
    assert decode_u32(encode_u32(86_400)) == 86_400


def test_value_codecs_refuse_wrong_sizes() -> None:
    with pytest.raises(DhcpError):
        decode_ip(b"\x01\x02\x03")
    with pytest.raises(DhcpError):
        decode_u32(b"\x01")
    with pytest.raises(DhcpError):
        encode_u32(1 << 32)


def test_rfc_3925_blocks_split_by_enterprise() -> None:
    value = b"\x00\x00\x36\x3d\x05\x01\x03abc" + b"\x00\x00\x00\x09\x00"

    assert enterprise_blocks(value) == ((POLYCOM_ENTERPRISE, b"\x01\x03abc"), (9, b""))


def test_an_rfc_3925_block_overrunning_its_option_is_refused() -> None:
    with pytest.raises(DhcpError, match="overruns"):
        enterprise_blocks(b"\x00\x00\x36\x3d\x09abc")


def test_a_malformed_rfc_3925_option_carries_no_enterprise() -> None:
    packet = discover(options=((53, b"\x08"), (60, b"\x00\x00\x36\x3d\x09abc")))

    assert not carries_enterprise(packet, POLYCOM_ENTERPRISE, (60,))


def test_a_scapy_discover_parses(scapy_dhcp: ModuleType) -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    frame = (
        Ether()
        / IP(src=str(IPv4Address(0)), dst="255.255.255.255")
        / UDP(sport=68, dport=67)
        / scapy_dhcp.BOOTP(chaddr=MAC, xid=42, flags=0x8000)
        / scapy_dhcp.DHCP(
            options=[
                ("message-type", "discover"),
                ("requested_addr", "10.0.0.50"),
                ("param_req_list", [1, 3, 6, 66, 160]),
                ("vendor_class_id", b"\x00\x00\x36\x3d\x03\x01\x01x"),
                "end",
            ]
        )
    )

    packet = parse(bytes(frame[scapy_dhcp.BOOTP]))

    assert packet.op == BOOTREQUEST
    assert packet.xid == 42
    assert packet.broadcast
    assert packet.mac == "0004f2a1b2c3"
    assert packet.message_type == MessageType.DISCOVER
    assert packet.requested_ip == IPv4Address("10.0.0.50")
    assert packet.parameter_request_list == (1, 3, 6, 66, 160)
    assert carries_enterprise(packet, POLYCOM_ENTERPRISE, (60,))


def test_a_built_ack_parses_with_scapy(scapy_dhcp: ModuleType) -> None:
    ack = DhcpPacket(
        op=BOOTREPLY,
        xid=42,
        chaddr=MAC,
        yiaddr=IPv4Address("10.0.0.50"),
        options=(
            (53, b"\x05"),
            (54, IPv4Address("10.0.0.1").packed),
            (51, encode_u32(3600)),
            (66, b"relay.example"),
            (160, b"https://u:p@relay.example/prov"),
        ),
    )

    seen = scapy_dhcp.BOOTP(build(ack))

    assert seen.op == BOOTREPLY
    assert seen.xid == 42
    assert seen.yiaddr == "10.0.0.50"
    options = dict(o for o in seen[scapy_dhcp.DHCP].options if isinstance(o, tuple))
    assert options["message-type"] == MessageType.ACK
    assert options["server_id"] == "10.0.0.1"
    assert options["lease_time"] == 3600
    assert options["tftp_server_name"] == b"relay.example"
    assert options["v4-captive-portal"] == b"https://u:p@relay.example/prov"  # scapy's name for 160


# Building packets on the hot paths -------------------------------------------------


def test_assemble_makes_the_same_frozen_packet_as_the_constructor() -> None:
    fields = {
        "op": BOOTREPLY,
        "xid": 7,
        "chaddr": MAC,
        "options": ((53, b"\x02"),),
        "htype": 1,
        "hlen": 6,
        "hops": 1,
        "secs": 2,
        "flags": BROADCAST_FLAG,
        "ciaddr": IPv4Address("198.51.100.1"),
        "yiaddr": IPv4Address("198.51.100.2"),
        "siaddr": IPv4Address("198.51.100.3"),
        "giaddr": IPv4Address("198.51.100.4"),
        "sname": b"server",
        "file": b"boot",
    }

    packet = assemble(*fields.values())  # type: ignore[arg-type]

    assert packet == DhcpPacket(**fields)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        packet.xid = 8  # type: ignore[misc]


# Triage: the message type without a parse -----------------------------------------


@pytest.mark.parametrize("kind", [MessageType.DISCOVER, MessageType.REQUEST, MessageType.INFORM])
def test_peek_reads_the_message_type_parse_would(kind: MessageType) -> None:
    data = build(discover(options=((55, b"\x01\x03"), (53, bytes((kind,))))))

    assert peek_message_type(data) == parse(data).message_type == kind


@pytest.mark.parametrize(
    ("what", "data"),
    [
        ("too short", build(discover())[: MIN_PACKET - 1]),
        ("no cookie", build(discover())[:236] + b"\x00\x00\x00\x00" + build(discover())[240:]),
        ("no option 53", raw_with_options(b"\x37\x01\x01\xff")),
        ("53 repeated", raw_with_options(b"\x35\x01\x01\x35\x01\x03\xff")),
        ("53 of two bytes", raw_with_options(b"\x35\x02\x01\x01\xff")),
        ("overloaded fields", raw_with_options(b"\x34\x01\x01\x35\x01\x01\xff")),
        ("an option overrun", raw_with_options(b"\x35\x01\x01\x0c\x09ab")),
    ],
)
def test_peek_answers_none_where_only_a_full_parse_can_tell(what: str, data: bytes) -> None:
    assert peek_message_type(data) is None, what


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80), st.sampled_from([b"", b"\x35\x01\x01", b"\x35\x01\x03"]))
def test_peek_never_raises_and_never_contradicts_parse(options: bytes, prefix: bytes) -> None:
    data = raw_with_options(prefix + options)

    peeked = peek_message_type(data)

    try:
        parsed = parse(data).message_type
    except DhcpError:
        return
    assert peeked is None or peeked == parsed
