"""relay.sim.dhcpclient: a simulated phone's DHCP client, without sockets (phones.md section 1).

Server replies are built with the project's own server-side reply code
(relay.proto.dhcp.reply), so both ends agree on RFC 2131's fields.
"""

from __future__ import annotations

import random
from ipaddress import IPv4Address

import pytest

from relay.proto.dhcp.packet import (
    BOOTREPLY,
    BROADCAST_FLAG,
    POLYCOM_ENTERPRISE,
    DhcpPacket,
    MessageType,
    Option,
    build,
    encode_u32,
    enterprise_blocks,
    parse,
)
from relay.proto.dhcp.reply import reply_to
from relay.sim.dhcpclient import (
    PARAMETER_REQUEST_LIST,
    BootServer,
    Bound,
    ClientIdentity,
    DhcpClient,
    Failed,
    Lost,
    Ready,
    Send,
    State,
    Step,
    Timing,
    boot_server_url,
    parse_vlan,
)

SERVER = IPv4Address("192.0.2.1")
OTHER_SERVER = IPv4Address("192.0.2.2")
ADDRESS = IPv4Address("192.0.2.100")
BROADCAST = IPv4Address("255.255.255.255")
VVX = ClientIdentity.of("0004f2a1b2c3", "VVX500", "3111-44500-001", "5.9.7.4477")
TRIO = ClientIdentity.of("64167f0a0b0c", "Trio8800", "3111-65290-001", "7.2.0.1234")
EDGE = ClientIdentity.of("64167f0a0b0d", "EdgeE450", "2200-49740-001", "8.0.0.15602")
URL160 = "https://PlcmSpIp:pw@prov.example/vvx/"
URL161 = "ftp://PlcmSpIp:pw@prov.example/trio/"
LEASE_OPTIONS = (
    (Option.LEASE_TIME.value, encode_u32(3600)),
    (Option.SUBNET_MASK.value, IPv4Address("255.255.255.0").packed),
    (Option.ROUTER.value, SERVER.packed),
    (Option.DNS.value, SERVER.packed + OTHER_SERVER.packed),
)


def client(
    identity: ClientIdentity = VVX,
    *,
    inform: bool = True,
    seed: int = 1,
    timing: Timing | None = None,
) -> DhcpClient:
    return DhcpClient(identity, inform=inform, rng=random.Random(seed), timing=timing)


def only(step: Step) -> DhcpPacket:
    """The one packet a step sends, through build and parse as on the wire."""
    assert len(step.sends) == 1, step
    return parse(build(step.sends[0].packet))


def answer(
    request: DhcpPacket,
    kind: MessageType,
    *,
    yiaddr: IPv4Address = ADDRESS,
    options: tuple[tuple[int, bytes], ...] = (),
    server: IPv4Address = SERVER,
) -> DhcpPacket:
    """The server's reply to `request`, through build and parse as on the wire."""
    reply = reply_to(request, kind, server, yiaddr=yiaddr, options=options)
    return parse(build(reply.packet))


def leased(
    dhcp: DhcpClient,
    options: tuple[tuple[int, bytes], ...] = LEASE_OPTIONS,
    *,
    now: float = 0.0,
) -> tuple[Step, DhcpPacket]:
    """DISCOVER, OFFER, REQUEST, ACK with `options`: the ACK's step and the REQUEST."""
    discover = only(dhcp.start(now))
    request = only(dhcp.receive(answer(discover, MessageType.OFFER, options=options), now))
    return dhcp.receive(answer(request, MessageType.ACK, options=options), now), request


def ready_lease(step: Step) -> Ready:
    ready = [event for event in step.events if isinstance(event, Ready)]
    assert len(ready) == 1, step
    return ready[0]


# What the phone sends -------------------------------------------------------------


def test_discover_asks_for_the_boot_server_and_vlan_options() -> None:
    discover = only(client().start(0.0))
    assert discover.message_type == MessageType.DISCOVER
    assert discover.parameter_request_list == (
        1, 3, 6, 15, 42, 66, 128, 129, 144, 157, 160, 161, 191,
    )  # fmt: skip
    assert discover.parameter_request_list == PARAMETER_REQUEST_LIST


def test_discover_is_broadcast_from_the_phones_mac_with_the_broadcast_bit() -> None:
    step = client().start(0.0)
    discover = only(step)
    assert step.sends[0].destination == BROADCAST
    assert discover.mac == VVX.mac
    assert discover.client_id == b"\x01" + bytes.fromhex(VVX.mac)
    assert discover.flags & BROADCAST_FLAG


def test_option_60_is_an_rfc_3925_block_of_enterprise_13885() -> None:
    value = only(client().start(0.0)).vendor_class
    assert value is not None
    assert value[:4] == bytes.fromhex("0000363d")
    ((enterprise, _data),) = enterprise_blocks(value)
    assert enterprise == POLYCOM_ENTERPRISE


def test_option_60_carries_part_number_and_boot_rom_version_as_sub_options() -> None:
    value = only(client().start(0.0)).vendor_class
    assert value is not None
    ((_, data),) = enterprise_blocks(value)
    subs: dict[int, bytes] = {}
    at = 0
    while data[at] != 0xFF:
        code, length = data[at], data[at + 1]
        subs[code] = data[at + 2 : at + 2 + length]
        at += 2 + length
    assert at == len(data) - 1
    assert subs[1] == b"Polycom"
    assert subs[2] == b"VVX-VVX_500"
    assert subs[3] == b"3111-44500-001"
    assert subs[4].startswith(b"SIP/5.9.7.4477/")
    assert subs[5].startswith(b"BR/5.9.7.4477/")


def test_an_offer_is_requested_with_its_address_and_server_in_the_same_transaction() -> None:
    dhcp = client()
    discover = only(dhcp.start(0.0))
    request = only(dhcp.receive(answer(discover, MessageType.OFFER, options=LEASE_OPTIONS), 0.5))
    assert request.message_type == MessageType.REQUEST
    assert request.xid == discover.xid
    assert request.requested_ip == ADDRESS
    assert request.server_id == SERVER
    assert request.parameter_request_list == PARAMETER_REQUEST_LIST
    assert dhcp.state is State.REQUESTING


# The lease --------------------------------------------------------------------------


def test_the_ack_gives_address_mask_router_dns_and_lease_times() -> None:
    step, _ = leased(client(inform=False), now=10.0)
    lease = ready_lease(step).lease
    assert (lease.address, lease.prefix, lease.server) == (ADDRESS, 24, SERVER)
    assert lease.router == SERVER
    assert lease.dns == (SERVER, OTHER_SERVER)
    assert (lease.lease_seconds, lease.t1, lease.t2, lease.obtained) == (3600, 1800, 3150, 10.0)


def test_the_ack_asks_the_adapter_to_configure_the_address_before_it_is_ready() -> None:
    step, _ = leased(client(inform=False))
    assert [type(event) for event in step.events] == [Bound, Ready]


def test_t1_and_t2_come_from_options_58_and_59_when_given() -> None:
    options = (*LEASE_OPTIONS, (58, encode_u32(600)), (59, encode_u32(900)))
    lease = ready_lease(leased(client(inform=False), options)[0]).lease
    assert (lease.t1, lease.t2) == (600, 900)


def test_an_ack_without_a_lease_time_is_ignored() -> None:
    dhcp = client()
    step, _ = leased(dhcp, ((Option.SUBNET_MASK.value, bytes(4)),))
    assert step == Step()
    assert dhcp.state is State.REQUESTING


def test_a_reply_for_another_transaction_or_phone_is_ignored() -> None:
    dhcp = client()
    discover = only(dhcp.start(0.0))
    offer = answer(discover, MessageType.OFFER, options=LEASE_OPTIONS)
    for stray in (
        DhcpPacket(op=BOOTREPLY, xid=offer.xid + 1, chaddr=offer.chaddr, options=offer.options),
        DhcpPacket(op=BOOTREPLY, xid=offer.xid, chaddr=bytes(6), options=offer.options),
    ):
        assert dhcp.receive(stray, 0.1) == Step()
    assert dhcp.state is State.SELECTING


# Which boot server (phones.md 1.2, CustomAndDefault) --------------------------------


def boot_server(identity: ClientIdentity, *extra: tuple[int, bytes]) -> BootServer | None:
    return ready_lease(leased(client(identity), (*LEASE_OPTIONS, *extra))[0]).lease.boot_server


def test_a_vvx_reads_option_160_before_66() -> None:
    found = boot_server(VVX, (66, b"192.0.2.9"), (160, URL160.encode()), (161, URL161.encode()))
    assert found == BootServer(URL160, 160, "lease")


def test_a_trio_reads_option_161_before_66() -> None:
    found = boot_server(TRIO, (66, b"192.0.2.9"), (160, URL160.encode()), (161, URL161.encode()))
    assert found == BootServer(URL161, 161, "lease")


def test_an_edge_reads_option_161() -> None:
    found = boot_server(EDGE, (160, URL160.encode()), (161, URL161.encode()))
    assert found is not None and found.option == 161


def test_without_its_custom_option_the_phone_reads_option_66() -> None:
    found = boot_server(VVX, (66, b"http://192.0.2.9/prov/"), (161, URL161.encode()))
    assert found == BootServer("http://192.0.2.9/prov/", 66, "lease")


def test_an_unusable_custom_option_falls_back_to_66() -> None:
    found = boot_server(VVX, (66, b"192.0.2.9"), (160, b"https://bad host/"))
    assert found == BootServer("tftp://192.0.2.9/", 66, "lease")


@pytest.mark.parametrize(
    ("value", "url"),
    [
        (b"192.0.2.9", "tftp://192.0.2.9/"),
        (b"prov.example", "tftp://prov.example/"),
        (b"prov.example:6969/phones", "tftp://prov.example:6969/phones"),
        (b"192.0.2.9\x00", "tftp://192.0.2.9/"),
        (b"ftps://u:p@prov.example/", "ftps://u:p@prov.example/"),
        (b"tftp://192.0.2.9/", "tftp://192.0.2.9/"),
    ],
)
def test_option_66_is_a_bare_host_meaning_tftp_or_a_url(value: bytes, url: str) -> None:
    assert boot_server_url(value) == url


@pytest.mark.parametrize(
    "value",
    [b"", b"http://with space/", b"http:\\\\host\\", b"gopher://host/", b"\xff\xfe", b"a" * 300],
)
def test_a_boot_server_no_phone_could_use_is_none(value: bytes) -> None:
    assert boot_server_url(value) is None


# DHCP VLAN discovery (phones.md 1.1) ------------------------------------------------


@pytest.mark.parametrize(
    ("value", "vlan"),
    [
        (b"VLAN-A=10;", 10),
        (b"VLAN-A=0x0a;", 10),
        (b"VLAN-A=0X0A;", None),
        (b"VLAN-A=012;", 10),
        (b"VLAN-A=20+30;", 20),
        (b"VLAN-A=10;anything after", 10),
        (b"VLAN-A=10", None),
        (b"VLAN-A=08;", None),
        (b"VLAN-A=0;", None),
        (b"VLAN-A=4095;", None),
        (b"vlan-a=10;", None),
        (b"VLAN-A= 10;", None),
    ],
)
def test_vlan_strings_are_decimal_hex_or_octal_ending_in_a_semicolon(
    value: bytes, vlan: int | None
) -> None:
    assert parse_vlan(value) == vlan


def vlan(identity: ClientIdentity, *extra: tuple[int, bytes]) -> int | None:
    options = (*LEASE_OPTIONS, (160, URL160.encode()), (161, URL161.encode()), *extra)
    return ready_lease(leased(client(identity), options)[0]).lease.vlan


def test_vlan_options_are_read_128_144_157_191_in_that_order() -> None:
    assert vlan(VVX, (191, b"VLAN-A=4;"), (144, b"VLAN-A=2;"), (157, b"VLAN-A=3;")) == 2
    assert vlan(VVX, (128, b"VLAN-A=1;"), (144, b"VLAN-A=2;")) == 1


def test_an_unusable_vlan_option_gives_way_to_the_next() -> None:
    assert vlan(VVX, (128, b"VLAN-A=x;"), (157, b"VLAN-A=0x1f;")) == 31


def test_a_trio_reads_129_instead_of_128() -> None:
    assert vlan(TRIO, (128, b"VLAN-A=1;"), (129, b"VLAN-A=9;"), (144, b"VLAN-A=2;")) == 9
    assert vlan(VVX, (129, b"VLAN-A=9;")) is None


# DHCPINFORM fallback (phones.md 1.4) --------------------------------------------------


def inform_started(dhcp: DhcpClient) -> tuple[Step, DhcpPacket]:
    step, _ = leased(dhcp)
    return step, only(step)


def test_an_ack_without_a_boot_server_binds_the_address_then_informs() -> None:
    dhcp = client(inform=True)
    step, inform = inform_started(dhcp)
    assert [type(event) for event in step.events] == [Bound]
    assert step.sends[0].destination == BROADCAST
    assert inform.message_type == MessageType.INFORM
    assert inform.ciaddr == ADDRESS
    assert not inform.flags & BROADCAST_FLAG
    assert dhcp.state is State.INFORMING


def test_the_inform_answer_naming_a_boot_server_makes_the_phone_ready() -> None:
    dhcp = client(inform=True)
    _, inform = inform_started(dhcp)
    reply = answer(inform, MessageType.ACK, yiaddr=IPv4Address(0), server=OTHER_SERVER,
                   options=((160, URL160.encode()), (144, b"VLAN-A=7;")))  # fmt: skip
    ready = ready_lease(dhcp.receive(reply, 1.0))
    assert ready.lease.boot_server == BootServer(URL160, 160, "inform")
    assert ready.lease.address == ADDRESS
    assert ready.lease.server == SERVER
    assert ready.lease.vlan == 7


def test_an_inform_answer_without_a_boot_server_is_not_the_last_word() -> None:
    dhcp = client(inform=True)
    _, inform = inform_started(dhcp)
    empty = answer(inform, MessageType.ACK, yiaddr=IPv4Address(0), options=LEASE_OPTIONS[1:])
    assert dhcp.receive(empty, 0.5) == Step()
    useful = answer(inform, MessageType.ACK, yiaddr=IPv4Address(0), server=OTHER_SERVER,
                    options=((66, b"192.0.2.2"),))  # fmt: skip
    assert ready_lease(dhcp.receive(useful, 0.6)).lease.boot_server == BootServer(
        "tftp://192.0.2.2/", 66, "inform"
    )


def test_unanswered_informs_end_with_no_boot_server_after_the_last_try() -> None:
    dhcp = client(inform=True, timing=Timing(inform_tries=2))
    inform_started(dhcp)
    assert dhcp.deadline is not None
    again = dhcp.tick(dhcp.deadline)
    assert only(again).message_type == MessageType.INFORM
    assert dhcp.deadline is not None
    ready = ready_lease(dhcp.tick(dhcp.deadline))
    assert ready.lease.boot_server is None
    assert dhcp.state is State.BOUND


def test_a_phone_with_a_server_in_flash_does_not_inform() -> None:
    step, _ = leased(client(inform=False))
    assert step.sends == ()
    assert ready_lease(step).lease.boot_server is None


# Retransmission (RFC 2131 section 4.1) -------------------------------------------------


def schedule(dhcp: DhcpClient) -> list[float]:
    """The gaps between DISCOVERs until the client gives up."""
    dhcp.start(0.0)
    sent_at, gaps = 0.0, []
    while dhcp.deadline is not None:
        now = dhcp.deadline
        step = dhcp.tick(now)
        gaps.append(now - sent_at)
        sent_at = now
        if not step.sends:
            break
    return gaps


def test_discovers_back_off_4_8_16_32_seconds_randomised_by_one() -> None:
    gaps = schedule(client(timing=Timing(max_tries=5)))
    assert len(gaps) == 5
    for gap, nominal in zip(gaps, (4, 8, 16, 32, 64), strict=True):
        assert nominal - 1 <= gap <= nominal + 1


def test_the_backoff_stops_doubling_at_64_seconds() -> None:
    gaps = schedule(client(timing=Timing(max_tries=8)))
    assert all(63 <= gap <= 65 for gap in gaps[5:])


def test_the_backoff_base_is_configurable() -> None:
    gaps = schedule(client(timing=Timing(retry_base=0.2, max_tries=3)))
    for gap, nominal in zip(gaps, (0.2, 0.4, 0.8), strict=True):
        assert nominal - 0.05 <= gap <= nominal + 0.05


def test_retransmissions_keep_the_xid_and_count_seconds() -> None:
    dhcp = client()
    first = only(dhcp.start(100.0))
    deadline = dhcp.deadline
    assert deadline is not None
    second = only(dhcp.tick(deadline))
    assert second.xid == first.xid
    assert (first.secs, second.secs) == (0, int(deadline - 100.0))


def test_a_tick_before_the_deadline_does_nothing() -> None:
    dhcp = client()
    dhcp.start(0.0)
    assert dhcp.tick(1.0) == Step()


def test_the_client_gives_up_after_max_tries_discovers() -> None:
    dhcp = client(timing=Timing(max_tries=2))
    dhcp.start(0.0)
    assert dhcp.deadline is not None
    dhcp.tick(dhcp.deadline)
    assert dhcp.deadline is not None
    step = dhcp.tick(dhcp.deadline)
    assert step.sends == ()
    assert step.events == (Failed("no DHCPOFFER after 2 DHCPDISCOVERs"),)
    assert (dhcp.state, dhcp.deadline) == (State.STOPPED, None)


def test_an_unanswered_request_starts_over_with_a_discover() -> None:
    dhcp = client(timing=Timing(max_tries=1))
    discover = only(dhcp.start(0.0))
    dhcp.receive(answer(discover, MessageType.OFFER, options=LEASE_OPTIONS), 0.1)
    assert dhcp.deadline is not None
    again = only(dhcp.tick(dhcp.deadline))
    assert again.message_type == MessageType.DISCOVER
    assert again.xid != discover.xid


# NAK -----------------------------------------------------------------------------------


def test_a_nak_restarts_from_discover_with_a_new_transaction() -> None:
    dhcp = client()
    discover = only(dhcp.start(0.0))
    request = only(dhcp.receive(answer(discover, MessageType.OFFER, options=LEASE_OPTIONS), 0.1))
    restart = only(dhcp.receive(answer(request, MessageType.NAK), 0.2))
    assert restart.message_type == MessageType.DISCOVER
    assert restart.xid != discover.xid
    assert dhcp.state is State.SELECTING


def test_a_nak_from_a_server_whose_offer_was_not_taken_is_ignored() -> None:
    dhcp = client()
    discover = only(dhcp.start(0.0))
    request = only(dhcp.receive(answer(discover, MessageType.OFFER, options=LEASE_OPTIONS), 0.1))
    assert dhcp.receive(answer(request, MessageType.NAK, server=OTHER_SERVER), 0.2) == Step()
    assert dhcp.state is State.REQUESTING


def test_repeated_naks_end_in_failure_after_max_restarts() -> None:
    dhcp = client(timing=Timing(max_restarts=1))
    discover = only(dhcp.start(0.0))
    request = only(dhcp.receive(answer(discover, MessageType.OFFER, options=LEASE_OPTIONS), 0.1))
    discover = only(dhcp.receive(answer(request, MessageType.NAK), 0.2))
    request = only(dhcp.receive(answer(discover, MessageType.OFFER, options=LEASE_OPTIONS), 0.3))
    step = dhcp.receive(answer(request, MessageType.NAK), 0.4)
    assert step.events == (Failed("DHCPNAK; gave up after 1 restarts"),)
    assert dhcp.state is State.STOPPED


# Renewal, rebinding, release (RFC 2131 sections 4.4.5, 4.4.6) -----------------------------


def bound(dhcp: DhcpClient) -> None:
    leased(dhcp, (*LEASE_OPTIONS, (160, URL160.encode())))
    assert dhcp.state is State.BOUND


def test_at_t1_the_phone_renews_by_unicast_to_its_server() -> None:
    dhcp = client()
    bound(dhcp)
    assert dhcp.deadline == 1800
    step = dhcp.tick(1800)
    renew = only(step)
    assert step.sends[0].destination == SERVER
    assert (renew.message_type, renew.ciaddr) == (MessageType.REQUEST, ADDRESS)
    assert renew.server_id is None and renew.requested_ip is None
    assert dhcp.state is State.RENEWING


def test_a_renewal_ack_extends_the_lease_and_keeps_the_boot_server() -> None:
    dhcp = client()
    bound(dhcp)
    renew = only(dhcp.tick(1800))
    step = dhcp.receive(answer(renew, MessageType.ACK, options=LEASE_OPTIONS), 1801)
    (event,) = step.events
    assert isinstance(event, Bound)
    assert event.lease.obtained == 1801
    assert event.lease.boot_server == BootServer(URL160, 160, "lease")
    assert (dhcp.state, dhcp.deadline) == (State.BOUND, 1801 + 1800)


def test_at_t2_the_phone_rebinds_by_broadcast_and_loses_the_lease_at_its_end() -> None:
    dhcp = client()
    bound(dhcp)
    dhcp.tick(1800)
    while dhcp.state is State.RENEWING:
        assert dhcp.deadline is not None
        step = dhcp.tick(dhcp.deadline)
    assert step.sends[0].destination == BROADCAST
    assert dhcp.state is State.REBINDING
    while dhcp.state is State.REBINDING:
        assert dhcp.deadline is not None
        step = dhcp.tick(dhcp.deadline)
    assert step.events == (Lost(ADDRESS, "the lease expired without renewal"),)
    assert dhcp.deadline is None


def test_a_nak_on_renewal_loses_the_lease() -> None:
    dhcp = client()
    bound(dhcp)
    renew = only(dhcp.tick(1800))
    step = dhcp.receive(answer(renew, MessageType.NAK), 1801)
    assert step.events == (Lost(ADDRESS, "DHCPNAK on renewal"),)
    assert dhcp.state is State.STOPPED


def test_release_tells_the_server_and_stops() -> None:
    dhcp = client()
    bound(dhcp)
    step = dhcp.release()
    release = only(step)
    assert step.sends[0] == Send(step.sends[0].packet, SERVER)
    assert (release.message_type, release.ciaddr, release.server_id) == (
        MessageType.RELEASE,
        ADDRESS,
        SERVER,
    )
    assert dhcp.state is State.STOPPED


def test_a_client_without_a_lease_releases_nothing() -> None:
    dhcp = client()
    dhcp.start(0.0)
    assert dhcp.release() == Step()
