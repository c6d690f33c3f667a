"""relay.proto.dhcp.leases: the RFC 2131 section 4.3 server, one behaviour per test, no sockets."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from relay.proto.dhcp.leases import (
    AddressDeclined,
    Lease,
    LeaseConfig,
    LeaseGranted,
    LeaseReleased,
    LeaseTable,
    Outcome,
    Pool,
    Reservation,
)
from relay.proto.dhcp.options import BootOptions
from relay.proto.dhcp.packet import (
    BOOTREPLY,
    BOOTREQUEST,
    BROADCAST_FLAG,
    DhcpError,
    DhcpPacket,
    MessageType,
    Option,
    build,
    decode_u32,
    parse,
)
from relay.proto.dhcp.reply import Reply

SERVER = IPv4Address("10.0.0.1")
RELAY = IPv4Address("10.1.0.1")
BROADCAST = IPv4Address("255.255.255.255")
ZERO = IPv4Address(0)
PHONE = "0004f2a1b2c3"
OTHER = "0004f2000002"
RESERVED_PHONE = "64167f000001"
RESERVED_IP = IPv4Address("10.0.0.50")
BOOT = BootOptions(option66="relay.example", option160="https://u:p@relay.example/prov")
NOW = 1_700_000_000.0
LOCAL = Pool(
    IPv4Network("10.0.0.0/24"),
    IPv4Address("10.0.0.100"),
    IPv4Address("10.0.0.103"),
    lease_seconds=3600,
    boot=BOOT,
    reservations=(Reservation(RESERVED_PHONE, RESERVED_IP),),
)
REMOTE = Pool(
    IPv4Network("10.1.0.0/24"), IPv4Address("10.1.0.100"), IPv4Address("10.1.0.110"), boot=BOOT
)
CONFIG = LeaseConfig(SERVER, (LOCAL, REMOTE), offer_seconds=10, max_offers=8)


def ip(last: int) -> IPv4Address:
    return IPv4Address(f"10.0.0.{last}")


def mac_of(n: int) -> str:
    return f"02{n:010x}"


def request(
    kind: MessageType,
    mac: str = PHONE,
    *,
    requested: IPv4Address | None = None,
    server_id: IPv4Address | None = None,
    prl: bytes = bytes((1, 3, 66, 160)),
    extra: tuple[tuple[int, bytes], ...] = (),
    **fields: object,
) -> DhcpPacket:
    """A client message, sent through the wire codec as a phone would send it."""
    options: list[tuple[int, bytes]] = [(Option.MESSAGE_TYPE, bytes((kind,)))]
    if requested is not None:
        options.append((Option.REQUESTED_IP, requested.packed))
    if server_id is not None:
        options.append((Option.SERVER_ID, server_id.packed))
    options.append((Option.PARAMETER_REQUEST_LIST, prl))
    options.extend(extra)
    packet = DhcpPacket(
        op=BOOTREQUEST, xid=0xC0FFEE, chaddr=bytes.fromhex(mac), options=tuple(options), **fields
    )  # type: ignore[arg-type]
    return parse(build(packet))


def reply_of(outcome: Outcome) -> Reply:
    assert outcome.reply is not None
    return outcome.reply


def sent(outcome: Outcome) -> DhcpPacket:
    """The reply as the client receives it (through the wire codec)."""
    return parse(build(reply_of(outcome).packet))


def lease_for(table: LeaseTable, mac: str = PHONE, now: float = NOW) -> IPv4Address:
    offer = sent(table.handle(request(MessageType.DISCOVER, mac), now))
    ack = table.handle(
        request(MessageType.REQUEST, mac, requested=offer.yiaddr, server_id=SERVER), now
    )
    assert sent(ack).message_type == MessageType.ACK
    return offer.yiaddr


def test_discover_request_ack_grants_the_offered_address() -> None:
    table = LeaseTable(CONFIG)

    offer = sent(table.handle(request(MessageType.DISCOVER), NOW))
    outcome = table.handle(
        request(MessageType.REQUEST, requested=offer.yiaddr, server_id=SERVER), NOW
    )

    assert offer.op == BOOTREPLY
    assert offer.message_type == MessageType.OFFER
    assert offer.yiaddr == ip(100)
    ack = sent(outcome)
    assert ack.message_type == MessageType.ACK
    assert ack.yiaddr == ip(100)
    assert ack.xid == 0xC0FFEE
    assert outcome.events == (LeaseGranted(PHONE, ip(100), NOW + 3600),)
    assert table.leases(NOW) == (Lease(PHONE, ip(100), NOW + 3600),)


def test_an_offer_carries_server_id_lease_time_and_t1_t2() -> None:
    offer = sent(LeaseTable(CONFIG).handle(request(MessageType.DISCOVER), NOW))

    assert offer.server_id == SERVER
    assert decode_u32(offer.option(Option.LEASE_TIME) or b"") == 3600
    assert decode_u32(offer.option(Option.RENEWAL_TIME) or b"") == 1800
    assert decode_u32(offer.option(Option.REBINDING_TIME) or b"") == 3150


def test_an_offer_has_only_the_asked_for_boot_options() -> None:
    offer = sent(LeaseTable(CONFIG).handle(request(MessageType.DISCOVER, prl=b"\x01\x42"), NOW))

    assert offer.option(1) == IPv4Address("255.255.255.0").packed
    assert offer.option(66) == b"relay.example"
    assert offer.option(160) is None


def test_an_offer_is_not_persisted() -> None:
    assert LeaseTable(CONFIG).handle(request(MessageType.DISCOVER), NOW).events == ()


def test_a_repeated_discover_gets_the_same_offer() -> None:
    table = LeaseTable(CONFIG)
    first = sent(table.handle(request(MessageType.DISCOVER), NOW))

    again = sent(table.handle(request(MessageType.DISCOVER), NOW + 2))

    assert again.yiaddr == first.yiaddr


def test_an_offered_address_is_held_from_other_clients() -> None:
    table = LeaseTable(CONFIG)
    first = sent(table.handle(request(MessageType.DISCOVER), NOW))

    second = sent(table.handle(request(MessageType.DISCOVER, OTHER), NOW + 1))

    assert second.yiaddr != first.yiaddr


def test_a_free_requested_address_is_offered() -> None:
    offer = sent(LeaseTable(CONFIG).handle(request(MessageType.DISCOVER, requested=ip(102)), NOW))

    assert offer.yiaddr == ip(102)


def test_a_requested_address_outside_the_range_is_not_offered() -> None:
    offer = sent(LeaseTable(CONFIG).handle(request(MessageType.DISCOVER, requested=ip(7)), NOW))

    assert offer.yiaddr == ip(100)


def test_a_request_to_another_server_drops_our_offer() -> None:
    table = LeaseTable(CONFIG)
    offer = sent(table.handle(request(MessageType.DISCOVER), NOW))

    outcome = table.handle(
        request(MessageType.REQUEST, requested=offer.yiaddr, server_id=IPv4Address("10.0.0.9")),
        NOW,
    )

    assert outcome == Outcome()
    assert sent(table.handle(request(MessageType.DISCOVER, OTHER), NOW)).yiaddr == offer.yiaddr


def test_selecting_an_address_bound_to_another_client_is_naked() -> None:
    table = LeaseTable(CONFIG)
    taken = lease_for(table, OTHER)

    nak = sent(table.handle(request(MessageType.REQUEST, requested=taken, server_id=SERVER), NOW))

    assert nak.message_type == MessageType.NAK
    assert nak.yiaddr == ZERO


def test_renewing_extends_the_lease_and_answers_by_unicast() -> None:
    table = LeaseTable(CONFIG)
    address = lease_for(table)

    outcome = table.handle(request(MessageType.REQUEST, ciaddr=address), NOW + 1800)

    assert reply_of(outcome).ip == address
    assert reply_of(outcome).port == 68
    assert sent(outcome).message_type == MessageType.ACK
    assert sent(outcome).ciaddr == address
    assert outcome.events == (LeaseGranted(PHONE, address, NOW + 1800 + 3600),)


def test_rebinding_by_broadcast_extends_the_lease() -> None:
    table = LeaseTable(CONFIG)
    address = lease_for(table)

    outcome = table.handle(
        request(MessageType.REQUEST, ciaddr=address, flags=BROADCAST_FLAG), NOW + 3200
    )

    assert sent(outcome).message_type == MessageType.ACK
    assert table.leases(NOW + 3600) == (Lease(PHONE, address, NOW + 3200 + 3600),)


def test_renewing_an_address_that_expired_and_went_to_another_is_naked() -> None:
    table = LeaseTable(CONFIG)
    address = lease_for(table)
    later = NOW + 3601
    for n in range(4):
        lease_for(table, mac_of(n), later)

    nak = sent(table.handle(request(MessageType.REQUEST, ciaddr=address), later))

    assert nak.message_type == MessageType.NAK


def test_the_longest_expired_address_is_reused_first_once_none_is_unused() -> None:
    stored = [
        LeaseGranted(mac_of(0), ip(100), NOW + 30),
        LeaseGranted(mac_of(1), ip(101), NOW + 10),
        LeaseGranted(mac_of(2), ip(102), NOW + 20),
        LeaseGranted(mac_of(3), ip(103), NOW + 40),
    ]
    table = LeaseTable.restore(CONFIG, stored, NOW)

    offer = sent(table.handle(request(MessageType.DISCOVER), NOW + 100))

    assert offer.yiaddr == ip(101)


def test_an_expired_lease_is_no_longer_listed() -> None:
    table = LeaseTable(CONFIG)
    lease_for(table)

    assert table.leases(NOW + 3600) == ()


def test_init_reboot_on_the_wrong_subnet_is_naked_by_broadcast() -> None:
    outcome = LeaseTable(CONFIG).handle(
        request(MessageType.REQUEST, requested=IPv4Address("192.168.1.20")), NOW
    )

    assert sent(outcome).message_type == MessageType.NAK
    assert (reply_of(outcome).ip, reply_of(outcome).port) == (BROADCAST, 68)
    assert outcome.events == ()


def test_init_reboot_with_the_recorded_address_is_acked() -> None:
    table = LeaseTable(CONFIG)
    address = lease_for(table)

    ack = sent(table.handle(request(MessageType.REQUEST, requested=address), NOW + 60))

    assert ack.message_type == MessageType.ACK
    assert ack.yiaddr == address


def test_init_reboot_with_another_address_than_recorded_is_naked() -> None:
    table = LeaseTable(CONFIG)
    lease_for(table)

    nak = sent(table.handle(request(MessageType.REQUEST, requested=ip(103)), NOW + 60))

    assert nak.message_type == MessageType.NAK


def test_init_reboot_from_a_client_without_a_record_is_ignored() -> None:
    outcome = LeaseTable(CONFIG).handle(request(MessageType.REQUEST, requested=ip(101)), NOW)

    assert outcome == Outcome()


def test_decline_puts_the_address_in_conflict() -> None:
    table = LeaseTable(CONFIG)
    address = lease_for(table)

    outcome = table.handle(
        request(MessageType.DECLINE, requested=address, server_id=SERVER), NOW + 1
    )

    assert outcome == Outcome(events=(AddressDeclined(PHONE, address, NOW + 1, NOW + 3601),))
    assert table.leases(NOW + 1) == ()


def test_an_address_in_conflict_is_never_offered() -> None:
    table = LeaseTable(CONFIG)
    address = lease_for(table)
    table.handle(request(MessageType.DECLINE, requested=address, server_id=SERVER), NOW)

    offered = {
        sent(table.handle(request(MessageType.DISCOVER, mac_of(n)), NOW + 1)).yiaddr
        for n in range(8)
    }

    assert address not in offered
    assert sent(table.handle(request(MessageType.DISCOVER), NOW + 2)).yiaddr != address


def test_a_conflict_ends_after_its_hold_time() -> None:
    table = LeaseTable(CONFIG)
    address = lease_for(table)
    table.handle(request(MessageType.DECLINE, requested=address, server_id=SERVER), NOW)
    for n in range(3):
        lease_for(table, mac_of(n), NOW + 3601)

    offer = sent(table.handle(request(MessageType.DISCOVER, OTHER), NOW + 3601))

    assert offer.yiaddr == address


def test_a_decline_for_an_address_the_client_does_not_hold_is_ignored() -> None:
    table = LeaseTable(CONFIG)
    taken = lease_for(table, OTHER)

    outcome = table.handle(request(MessageType.DECLINE, requested=taken), NOW)

    assert outcome == Outcome()
    assert table.leases(NOW) == (Lease(OTHER, taken, NOW + 3600),)


def test_release_frees_the_address() -> None:
    table = LeaseTable(CONFIG)
    address = lease_for(table)

    outcome = table.handle(request(MessageType.RELEASE, ciaddr=address, server_id=SERVER), NOW + 5)

    assert outcome == Outcome(events=(LeaseReleased(PHONE, address, NOW + 5),))
    assert table.leases(NOW + 5) == ()


def test_a_released_client_gets_its_previous_address_back() -> None:
    table = LeaseTable(CONFIG)
    address = lease_for(table)
    table.handle(request(MessageType.RELEASE, ciaddr=address, server_id=SERVER), NOW + 5)

    offer = sent(table.handle(request(MessageType.DISCOVER), NOW + 6))

    assert offer.yiaddr == address


def test_a_release_of_another_clients_address_is_ignored() -> None:
    table = LeaseTable(CONFIG)
    taken = lease_for(table, OTHER)

    assert table.handle(request(MessageType.RELEASE, ciaddr=taken), NOW) == Outcome()
    assert len(table.leases(NOW)) == 1


def test_moving_to_another_address_releases_the_old_one() -> None:
    table = LeaseTable(CONFIG)
    old = lease_for(table)

    outcome = table.handle(
        request(MessageType.REQUEST, requested=ip(103), server_id=SERVER), NOW + 1
    )

    assert outcome.events == (
        LeaseReleased(PHONE, old, NOW + 1),
        LeaseGranted(PHONE, ip(103), NOW + 1 + 3600),
    )
    assert table.leases(NOW + 1) == (Lease(PHONE, ip(103), NOW + 1 + 3600),)


def test_a_relayed_discover_is_served_from_the_giaddr_subnet_and_answered_to_the_relay() -> None:
    outcome = LeaseTable(CONFIG).handle(request(MessageType.DISCOVER, giaddr=RELAY, hops=1), NOW)

    assert sent(outcome).yiaddr == IPv4Address("10.1.0.100")
    assert sent(outcome).giaddr == RELAY
    assert (reply_of(outcome).ip, reply_of(outcome).port) == (RELAY, 67)
    assert sent(outcome).option(1) == IPv4Address("255.255.255.0").packed


def test_a_relayed_request_from_an_unknown_subnet_is_ignored() -> None:
    outcome = LeaseTable(CONFIG).handle(
        request(MessageType.DISCOVER, giaddr=IPv4Address("172.16.0.1")), NOW
    )

    assert outcome == Outcome()


def test_option_82_is_echoed_unchanged() -> None:
    agent_info = b"\x01\x06port-7\x02\x04\xde\xad\xbe\xef"
    discover = request(MessageType.DISCOVER, giaddr=RELAY, extra=((82, agent_info),))

    offer = sent(LeaseTable(CONFIG).handle(discover, NOW))

    assert offer.relay_agent_info == agent_info
    assert offer.options[-1] == (82, agent_info)


def test_the_client_identifier_is_echoed() -> None:
    client_id = b"\x01" + bytes.fromhex(PHONE)

    offer = sent(
        LeaseTable(CONFIG).handle(request(MessageType.DISCOVER, extra=((61, client_id),)), NOW)
    )

    assert offer.client_id == client_id


def test_the_broadcast_flag_makes_the_offer_a_broadcast() -> None:
    outcome = LeaseTable(CONFIG).handle(request(MessageType.DISCOVER, flags=BROADCAST_FLAG), NOW)

    assert (reply_of(outcome).ip, reply_of(outcome).port) == (BROADCAST, 68)
    assert not reply_of(outcome).link_unicast
    assert sent(outcome).broadcast


def test_without_the_broadcast_flag_the_offer_is_unicast_to_the_new_address() -> None:
    outcome = LeaseTable(CONFIG).handle(request(MessageType.DISCOVER), NOW)

    assert (reply_of(outcome).ip, reply_of(outcome).port) == (ip(100), 68)
    assert reply_of(outcome).link_unicast


def test_a_relayed_nak_asks_the_relay_to_broadcast() -> None:
    outcome = LeaseTable(CONFIG).handle(
        request(MessageType.REQUEST, requested=ip(100), giaddr=RELAY), NOW
    )

    assert sent(outcome).message_type == MessageType.NAK
    assert sent(outcome).broadcast
    assert (reply_of(outcome).ip, reply_of(outcome).port) == (RELAY, 67)


def test_inform_is_answered_with_options_and_no_address() -> None:
    table = LeaseTable(CONFIG)

    outcome = table.handle(request(MessageType.INFORM, ciaddr=ip(20), prl=b"\x42\xa0"), NOW)

    ack = sent(outcome)
    assert ack.message_type == MessageType.ACK
    assert ack.yiaddr == ZERO
    assert ack.ciaddr == ip(20)
    assert ack.option(Option.LEASE_TIME) is None
    assert ack.option(160) == b"https://u:p@relay.example/prov"
    assert (reply_of(outcome).ip, reply_of(outcome).port) == (ip(20), 68)
    assert outcome.events == ()
    assert table.leases(NOW) == ()


def test_a_reserved_mac_gets_its_reserved_address() -> None:
    table = LeaseTable(CONFIG)

    assert lease_for(table, RESERVED_PHONE) == RESERVED_IP


def test_a_reserved_mac_asking_for_another_address_is_naked() -> None:
    outcome = LeaseTable(CONFIG).handle(
        request(MessageType.REQUEST, RESERVED_PHONE, requested=ip(100), server_id=SERVER), NOW
    )

    assert sent(outcome).message_type == MessageType.NAK


def test_a_reserved_address_is_never_given_to_another_mac() -> None:
    outcome = LeaseTable(CONFIG).handle(
        request(MessageType.REQUEST, requested=RESERVED_IP, server_id=SERVER), NOW
    )

    assert sent(outcome).message_type == MessageType.NAK


def test_a_reserved_address_inside_the_range_is_excluded_from_it() -> None:
    pool = Pool(
        LOCAL.subnet,
        ip(100),
        ip(101),
        reservations=(Reservation(RESERVED_PHONE, ip(100)),),
    )
    table = LeaseTable(LeaseConfig(SERVER, (pool,)))

    assert lease_for(table, PHONE) == ip(101)
    assert table.handle(request(MessageType.DISCOVER, OTHER), NOW) == Outcome()


def test_an_exhausted_pool_offers_nothing_to_a_new_client() -> None:
    table = LeaseTable(CONFIG)
    for n in range(4):
        lease_for(table, mac_of(n))

    assert table.handle(request(MessageType.DISCOVER), NOW) == Outcome()


def test_a_flood_that_binds_every_address_still_leaves_reservations_working() -> None:
    table = LeaseTable(CONFIG)
    for n in range(500):
        offer = table.handle(request(MessageType.DISCOVER, mac_of(n)), NOW)
        if offer.reply is not None:
            table.handle(
                request(
                    MessageType.REQUEST,
                    mac_of(n),
                    requested=offer.reply.packet.yiaddr,
                    server_id=SERVER,
                ),
                NOW,
            )

    assert len(table.leases(NOW)) == 4
    assert lease_for(table, RESERVED_PHONE) == RESERVED_IP


def test_a_discover_flood_cannot_starve_a_known_phone() -> None:
    table = LeaseTable(CONFIG)
    address = lease_for(table)
    for n in range(1000):
        table.handle(request(MessageType.DISCOVER, mac_of(n)), NOW + 1)

    renewed = sent(table.handle(request(MessageType.REQUEST, ciaddr=address), NOW + 2))
    offered = sent(table.handle(request(MessageType.DISCOVER, OTHER), NOW + 2))

    assert renewed.message_type == MessageType.ACK
    assert offered.message_type == MessageType.OFFER


def test_offers_expire_after_their_hold_time() -> None:
    table = LeaseTable(CONFIG)
    for n in range(3):
        lease_for(table, mac_of(n))
    held = sent(table.handle(request(MessageType.DISCOVER), NOW)).yiaddr

    offer = sent(table.handle(request(MessageType.DISCOVER, OTHER), NOW + 11))

    assert offer.yiaddr == held


def test_restore_rebuilds_the_leases_from_the_events() -> None:
    table = LeaseTable(CONFIG)
    events = []
    for mac in (PHONE, OTHER):
        offer = sent(table.handle(request(MessageType.DISCOVER, mac), NOW))
        events += table.handle(
            request(MessageType.REQUEST, mac, requested=offer.yiaddr, server_id=SERVER), NOW
        ).events
    events += table.handle(
        request(MessageType.RELEASE, OTHER, ciaddr=ip(101), server_id=SERVER), NOW + 1
    ).events

    restored = LeaseTable.restore(CONFIG, events, NOW + 2)

    assert restored.leases(NOW + 2) == table.leases(NOW + 2) == (Lease(PHONE, ip(100), NOW + 3600),)
    renewed = sent(restored.handle(request(MessageType.REQUEST, ciaddr=ip(100)), NOW + 3))
    assert renewed.message_type == MessageType.ACK


def test_restore_keeps_a_declined_address_in_conflict() -> None:
    declined = AddressDeclined(PHONE, ip(100), NOW, NOW + 3600)

    table = LeaseTable.restore(CONFIG, [LeaseGranted(PHONE, ip(100), NOW + 3600), declined], NOW)

    assert sent(table.handle(request(MessageType.DISCOVER, OTHER), NOW + 1)).yiaddr == ip(101)
    assert table.leases(NOW + 1) == ()


def test_restore_ends_a_lease_declined_even_after_the_conflict_is_over() -> None:
    stored = [
        LeaseGranted(PHONE, ip(100), NOW + 3600),
        AddressDeclined(PHONE, ip(100), NOW + 1, NOW + 60),
    ]

    table = LeaseTable.restore(CONFIG, stored, NOW + 120)

    assert table.leases(NOW + 120) == ()
    assert sent(table.handle(request(MessageType.DISCOVER, OTHER), NOW + 120)).yiaddr == ip(101)


def test_restore_skips_leases_the_configuration_no_longer_allows() -> None:
    stored = [
        LeaseGranted(PHONE, IPv4Address("192.168.9.9"), NOW + 3600),
        LeaseGranted(OTHER, RESERVED_IP, NOW + 3600),
    ]

    assert LeaseTable.restore(CONFIG, stored, NOW).leases(NOW) == ()


def test_a_restored_lease_is_not_offered_to_another_client() -> None:
    table = LeaseTable.restore(CONFIG, [LeaseGranted(PHONE, ip(100), NOW + 3600)], NOW)

    assert sent(table.handle(request(MessageType.DISCOVER, OTHER), NOW)).yiaddr == ip(101)


def test_plain_bootp_requests_are_not_served() -> None:
    bootp = DhcpPacket(op=BOOTREQUEST, xid=1, chaddr=bytes.fromhex(PHONE))

    assert LeaseTable(CONFIG).handle(bootp, NOW) == Outcome()


def test_server_replies_seen_on_the_wire_are_ignored() -> None:
    table = LeaseTable(CONFIG)
    offer = reply_of(table.handle(request(MessageType.DISCOVER), NOW)).packet

    assert table.handle(offer, NOW) == Outcome()


def test_non_ethernet_clients_are_ignored() -> None:
    token_ring = request(MessageType.DISCOVER, htype=6)

    assert LeaseTable(CONFIG).handle(token_ring, NOW) == Outcome()


def test_a_hand_built_packet_with_a_malformed_option_raises_dhcp_error() -> None:
    packet = DhcpPacket(op=BOOTREQUEST, xid=1, chaddr=bytes.fromhex(PHONE), options=((53, b""),))

    with pytest.raises(DhcpError):
        LeaseTable(CONFIG).handle(packet, NOW)


def test_overlapping_pools_are_refused() -> None:
    with pytest.raises(DhcpError, match="overlap"):
        LeaseConfig(SERVER, (LOCAL, LOCAL))


def test_t1_must_come_before_t2_and_t2_before_the_lease_end() -> None:
    with pytest.raises(DhcpError, match="T1"):
        Pool(LOCAL.subnet, ip(100), ip(110), lease_seconds=3600, t1=3000, t2=2000)


def test_a_range_outside_its_subnet_is_refused() -> None:
    with pytest.raises(DhcpError, match="not a host"):
        Pool(LOCAL.subnet, ip(100), IPv4Address("10.0.1.5"))


def test_the_broadcast_address_cannot_be_in_the_range() -> None:
    with pytest.raises(DhcpError, match="not a host"):
        Pool(LOCAL.subnet, ip(100), ip(255))


def test_a_reservation_needs_a_normalised_mac() -> None:
    with pytest.raises(DhcpError, match="12 lower-case hex"):
        Reservation("00:04:F2:A1:B2:C3", RESERVED_IP)
