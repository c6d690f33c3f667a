"""The simulated phone's DHCP client and ZTP lookup never crash on what a network sends.

Replies the parser lets through reach the client in every state of its
conversation; the client may ignore them but must never raise. The ZTP
answer parser raises ZtpError and nothing else.
"""

from __future__ import annotations

import json
import random
from ipaddress import IPv4Address

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.proto.dhcp.packet import (
    BOOTREPLY,
    DhcpError,
    DhcpPacket,
    MessageType,
    build,
    encode_u32,
    parse,
)
from relay.proto.dhcp.reply import reply_to
from relay.sim.dhcpclient import (
    BOOT_SCHEMES,
    ClientIdentity,
    DhcpClient,
    Ready,
    State,
    Timing,
    boot_server_url,
    parse_vlan,
)
from relay.sim.ztpclient import ZtpAnswer, ZtpError, parse_answer

FUZZ = settings(max_examples=400, deadline=None)
SERVER = IPv4Address("192.0.2.1")
ADDRESS = IPv4Address("192.0.2.100")
MAC = "0004f2a1b2c3"
IDENTITY = ClientIdentity.of(MAC, "VVX500", "3111-44500-001", "5.9.7.4477")
LEASE = ((51, encode_u32(3600)), (1, bytes((255, 255, 255, 0))))
STATES = ("selecting", "requesting", "informing", "bound-renewing")

option_values = st.binary(max_size=80) | st.sampled_from(
    [b"VLAN-A=0x1f;", b"VLAN-A=012;", b"https://u:p@h/x/", b"192.0.2.9", b"\x00" * 4, b""]
)
options = st.lists(
    st.tuples(st.integers(1, 254).filter(lambda code: code not in (52, 53)), option_values),
    max_size=12,
)


def client_in(state: str) -> tuple[DhcpClient, DhcpPacket]:
    """A client in `state` and the last packet it sent (the one a reply answers)."""
    dhcp = DhcpClient(IDENTITY, inform=True, rng=random.Random(0), timing=Timing())
    sent = dhcp.start(0.0).sends[0].packet
    if state == "selecting":
        return dhcp, sent
    offer = reply_to(sent, MessageType.OFFER, SERVER, yiaddr=ADDRESS, options=LEASE).packet
    sent = dhcp.receive(offer, 0.1).sends[0].packet
    if state == "requesting":
        return dhcp, sent
    ack = reply_to(sent, MessageType.ACK, SERVER, yiaddr=ADDRESS, options=LEASE).packet
    sent = dhcp.receive(ack, 0.2).sends[0].packet
    if state == "informing":
        return dhcp, sent
    assert dhcp.deadline is not None
    while dhcp.state is not State.BOUND:
        assert dhcp.deadline is not None
        dhcp.tick(dhcp.deadline)
    assert dhcp.deadline is not None
    return dhcp, dhcp.tick(dhcp.deadline).sends[0].packet


def reply_bytes(request: DhcpPacket, kind: int, extra: list[tuple[int, bytes]]) -> bytes:
    packet = DhcpPacket(
        op=BOOTREPLY,
        xid=request.xid,
        chaddr=request.chaddr,
        yiaddr=ADDRESS,
        options=((53, bytes((kind,))), (54, SERVER.packed), *extra),
    )
    return build(packet)


@FUZZ
@given(
    st.sampled_from(STATES),
    st.integers(1, 8),
    options,
    st.tuples(st.integers(0, 600), st.integers(0, 24), st.binary(max_size=48)),
)
def test_any_reply_to_the_clients_transaction_is_taken_or_ignored_never_raised(
    state: str, kind: int, extra: list[tuple[int, bytes]], cut: tuple[int, int, bytes]
) -> None:
    dhcp, request = client_in(state)
    wire = reply_bytes(request, kind, extra)
    at, length, insert = cut
    for data in (wire, wire[:at] + insert + wire[at + length :]):
        try:
            packet = parse(data)
        except DhcpError:
            continue
        step = dhcp.receive(packet, 1.0)
        for happened in step.events:
            if isinstance(happened, Ready) and happened.lease.boot_server is not None:
                url = happened.lease.boot_server.url
                assert url.split("://", 1)[0].lower() in BOOT_SCHEMES
                assert " " not in url and "\\" not in url


@FUZZ
@given(st.binary(max_size=600))
def test_vlan_and_boot_server_values_are_none_or_usable(value: bytes) -> None:
    vlan = parse_vlan(value)
    assert vlan is None or 1 <= vlan <= 4094
    url = boot_server_url(value)
    assert url is None or (url.split("://", 1)[0].lower() in BOOT_SCHEMES and len(url) < 300)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
answers = st.fixed_dictionaries(
    {},
    optional={
        "mac": st.sampled_from([MAC, "00:04:F2:A1:B2:C3", "ffffffffffff"]) | json_values,
        "url": st.sampled_from(["https://relay/prov/", "tftp://192.0.2.1/", "x://"]) | json_values,
        "user": json_values,
        "password": json_values,
    },
)


@FUZZ
@given(answers.map(lambda document: json.dumps(document).encode()) | st.binary(max_size=200))
def test_a_ztp_answer_is_usable_or_a_ztp_error(body: bytes) -> None:
    try:
        answer = parse_answer(body, MAC)
    except ZtpError:
        return
    assert isinstance(answer, ZtpAnswer)
    assert answer.url.split("://", 1)[0].lower() in BOOT_SCHEMES
    assert answer.server().startswith(answer.url.split("://", 1)[0])
