"""DHCP parsing and serving never crash on hostile datagrams: DhcpError or a result, bounded time.

The lease engine and the inform responder are fed whatever the parser lets
through, in sequences, and may raise nothing but DhcpError.
"""

from __future__ import annotations

import time
from ipaddress import IPv4Address, IPv4Network

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.proto.dhcp.inform import InformResponder
from relay.proto.dhcp.leases import LeaseConfig, LeaseTable, Pool, Reservation
from relay.proto.dhcp.options import BootOptions
from relay.proto.dhcp.packet import (
    BOOTREQUEST,
    MIN_PACKET,
    DhcpError,
    DhcpPacket,
    MessageType,
    build,
    parse,
)

FUZZ = settings(max_examples=400, deadline=None)
SECONDS_PER_PACKET = 0.5
SERVER = IPv4Address("10.0.0.1")
RELAY = IPv4Address("10.1.0.1")
BOOT = BootOptions(
    option66="relay.example",
    option160="https://u:p@relay.example/prov",
    vlan_id=10,
    vlan_options=(128, 144),
    forced=(66,),
)
CONFIG = LeaseConfig(
    SERVER,
    (
        Pool(
            IPv4Network("10.0.0.0/24"),
            IPv4Address("10.0.0.100"),
            IPv4Address("10.0.0.104"),
            lease_seconds=60,
            boot=BOOT,
            reservations=(Reservation("0004f2000001", IPv4Address("10.0.0.50")),),
        ),
        Pool(IPv4Network("10.1.0.0/24"), IPv4Address("10.1.0.10"), IPv4Address("10.1.0.12")),
    ),
    offer_seconds=5,
    max_offers=3,
    conflict_seconds=30,
)
VALID = build(
    DhcpPacket(
        op=BOOTREQUEST,
        xid=7,
        chaddr=bytes.fromhex("0004f2a1b2c3"),
        options=((53, b"\x01"), (55, b"\x01\x03\x42\xa0"), (61, b"\x01\x00\x04\xf2\xa1\xb2\xc3")),
    )
)
HEADER = VALID[:MIN_PACKET]

mutated = st.tuples(st.integers(0, len(VALID)), st.integers(0, 40), st.binary(max_size=64)).map(
    lambda cut: VALID[: cut[0]] + cut[2] + VALID[cut[0] + cut[1] :]
)
addresses = st.sampled_from(
    [
        IPv4Address(0),
        SERVER,
        RELAY,
        IPv4Address("10.0.0.50"),
        IPv4Address("10.0.0.100"),
        IPv4Address("10.0.0.101"),
        IPv4Address("10.0.0.104"),
        IPv4Address("10.1.0.11"),
        IPv4Address("192.168.1.1"),
    ]
)
option_values = {
    53: st.integers(0, 20).map(lambda n: bytes((n,))),
    50: addresses.map(lambda a: a.packed),
    54: addresses.map(lambda a: a.packed),
    55: st.binary(min_size=1, max_size=12),
    60: st.sampled_from([b"\x00\x00\x36\x3d\x03\x01\x01x", b"\x00\x00\x36\x3d\x09", b"MSFT 5.0"]),
    61: st.binary(min_size=1, max_size=300),
    82: st.binary(max_size=300),
    125: st.binary(max_size=40),
}
tlv_options = st.lists(
    st.sampled_from(sorted(option_values)).flatmap(
        lambda code: option_values[code].map(lambda value: (code, value))
    ),
    max_size=8,
)
macs = st.sampled_from(["0004f2a1b2c3", "0004f2000001", "64167f000002", "020000000003"]).map(
    bytes.fromhex
) | st.binary(min_size=16, max_size=16)
packets = st.builds(
    DhcpPacket,
    op=st.sampled_from([1, 1, 1, 2]),
    xid=st.integers(0, 2**32 - 1),
    chaddr=macs,
    options=tlv_options.map(lambda pairs: tuple(dict(pairs).items())),
    htype=st.sampled_from([1, 1, 1, 6]),
    hlen=st.sampled_from([6, 6, 6, 0, 16]),
    flags=st.sampled_from([0, 0x8000, 0xFFFF]),
    ciaddr=addresses,
    giaddr=addresses,
)
option_bytes = st.lists(
    st.sampled_from([b"\x00", b"\xff", b"\x35\x01\x01", b"\x34\x01\x03", b"\x0c", b"\x0c\x05ab"])
    | st.binary(max_size=8),
    max_size=40,
).map(b"".join)
dhcp_ish = st.tuples(option_bytes, st.binary(max_size=192)).map(
    lambda parts: HEADER[:44] + parts[1].ljust(192, b"\x00") + HEADER[236:] + parts[0]
)
datagrams = st.one_of(st.binary(max_size=2000), mutated, dhcp_ish)


def parse_or_error(data: bytes) -> DhcpPacket | None:
    started = time.monotonic()
    try:
        packet = parse(data)
    except DhcpError:
        packet = None
    assert time.monotonic() - started < SECONDS_PER_PACKET
    return packet


@FUZZ
@given(datagrams)
def test_any_bytes_parse_to_a_packet_or_dhcp_error(data: bytes) -> None:
    packet = parse_or_error(data)

    if packet is not None:
        codes = [code for code, _ in packet.options]
        assert len(codes) == len(set(codes))
        assert not {0, 52, 255} & set(codes)


@FUZZ
@given(datagrams)
def test_a_parsed_packet_builds_back_to_itself_or_dhcp_error(data: bytes) -> None:
    packet = parse_or_error(data)
    if packet is None:
        return
    try:
        again = build(packet)
    except DhcpError:
        return

    assert parse(again) == packet


@FUZZ
@given(st.lists(st.one_of(packets, datagrams.map(parse_or_error)), max_size=30))
def test_the_lease_engine_raises_nothing_but_dhcp_error(batch: list[DhcpPacket | None]) -> None:
    table = LeaseTable(CONFIG)
    now = 1_700_000_000.0
    for packet in batch:
        if packet is None:
            continue
        now += 7
        try:
            outcome = table.handle(packet, now)
        except DhcpError:
            continue
        if outcome.reply is not None:
            assert outcome.reply.packet.op == 2
            assert outcome.reply.packet.message_type in (
                MessageType.OFFER,
                MessageType.ACK,
                MessageType.NAK,
            )
    leases = table.leases(now)
    assert len({lease.ip for lease in leases}) == len(leases)
    per_pool = {(lease.mac, lease.ip in CONFIG.pools[0].subnet) for lease in leases}
    assert len(per_pool) == len(leases)


@FUZZ
@given(st.one_of(packets, datagrams.map(parse_or_error)))
def test_the_inform_responder_raises_nothing_but_dhcp_error(packet: DhcpPacket | None) -> None:
    if packet is None:
        return
    try:
        reply = InformResponder(SERVER, BOOT).handle(packet)
    except DhcpError:
        return

    if reply is not None:
        assert reply.packet.yiaddr == IPv4Address(0)
