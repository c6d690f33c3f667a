"""relay.proto.dhcp.leaselog: a compacted log restores the same active leases and conflicts."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.proto.dhcp.leaselog import compact
from relay.proto.dhcp.leases import (
    AddressDeclined,
    LeaseConfig,
    LeaseEvent,
    LeaseGranted,
    LeaseReleased,
    LeaseTable,
    Pool,
    Reservation,
)
from relay.proto.dhcp.packet import BOOTREQUEST, DhcpPacket, MessageType, Option

SERVER = IPv4Address("10.0.0.1")
SUBNET = IPv4Network("10.0.0.0/24")
NOW = 1_700_000_000.0
PHONE = "0004f2a1b2c3"
OTHER = "0004f2000002"
MACS = (PHONE, OTHER, "64167f000003", "020000000004", "020000000005", "020000000006")
CONFIG = LeaseConfig(
    SERVER,
    (Pool(SUBNET, IPv4Address("10.0.0.100"), IPv4Address("10.0.0.103"), lease_seconds=3600),),
    offer_seconds=10,
    max_offers=4,
    conflict_seconds=600,
)
# What an operator may change between two starts: a narrower range and a new reservation.
CHANGED = LeaseConfig(
    SERVER,
    (
        Pool(
            SUBNET,
            IPv4Address("10.0.0.100"),
            IPv4Address("10.0.0.102"),
            lease_seconds=3600,
            reservations=(Reservation(OTHER, IPv4Address("10.0.0.101")),),
        ),
    ),
)


def ip(last: int) -> IPv4Address:
    return IPv4Address(f"10.0.0.{last}")


def state(config: LeaseConfig, events: list[LeaseEvent], now: float) -> object:
    table = LeaseTable.restore(config, events, now)
    return table.leases(now), table.conflicts(now)


def test_renewals_collapse_to_the_last_grant() -> None:
    renewals: list[LeaseEvent] = [LeaseGranted(PHONE, ip(100), NOW + n * 1800) for n in range(50)]

    assert compact(renewals, NOW) == [renewals[-1]]


def test_a_release_after_the_last_grant_is_kept() -> None:
    log: list[LeaseEvent] = [
        LeaseGranted(PHONE, ip(100), NOW + 3600),
        LeaseReleased(PHONE, ip(100), NOW + 10),
    ]

    assert compact(log, NOW + 20) == log


def test_the_events_of_an_address_before_its_last_grant_are_dropped() -> None:
    log: list[LeaseEvent] = [
        LeaseGranted(PHONE, ip(100), NOW + 3600),
        LeaseReleased(PHONE, ip(100), NOW + 10),
        AddressDeclined(OTHER, ip(100), NOW + 20, NOW + 620),
        LeaseGranted(OTHER, ip(100), NOW + 4000),
    ]

    assert compact(log, NOW + 700) == [log[-1]]


def test_a_decline_is_kept_while_its_conflict_lasts() -> None:
    declined = AddressDeclined(OTHER, ip(101), NOW, NOW + 600)

    assert compact([declined], NOW + 599) == [declined]
    assert compact([declined], NOW + 600) == []


def test_the_owners_decline_is_kept_after_its_conflict_is_over() -> None:
    log: list[LeaseEvent] = [
        LeaseGranted(PHONE, ip(100), NOW + 3600),
        AddressDeclined(PHONE, ip(100), NOW + 5, NOW + 605),
    ]

    assert compact(log, NOW + 1000) == log


def test_a_lease_the_configuration_skips_is_kept_for_when_it_allows_it_again() -> None:
    log: list[LeaseEvent] = [
        LeaseGranted(PHONE, ip(100), NOW + 3600),
        LeaseGranted(OTHER, ip(103), NOW + 3600),
    ]

    assert state(CHANGED, log, NOW)[0] != state(CONFIG, log, NOW)[0]
    assert compact(log, NOW) == log


def test_compaction_is_idempotent() -> None:
    log: list[LeaseEvent] = [
        LeaseGranted(PHONE, ip(100), NOW + 3600),
        LeaseGranted(PHONE, ip(100), NOW + 7200),
        AddressDeclined(OTHER, ip(101), NOW, NOW + 600),
    ]

    assert compact(compact(log, NOW), NOW) == compact(log, NOW)


# Property: the engine itself produces the log ------------------------------------


@dataclass
class Clients:
    """What each simulated client last heard: its offer and its bound address."""

    offered: dict[str, IPv4Address] = field(default_factory=dict)
    bound: dict[str, IPv4Address] = field(default_factory=dict)


def packet(kind: MessageType, mac: str, **fields: object) -> DhcpPacket:
    options: list[tuple[int, bytes]] = [(Option.MESSAGE_TYPE, bytes((kind,)))]
    requested = fields.pop("requested", None)
    if isinstance(requested, IPv4Address):
        options.append((Option.REQUESTED_IP, requested.packed))
    if fields.pop("selecting", False):
        options.append((Option.SERVER_ID, SERVER.packed))
    return DhcpPacket(
        op=BOOTREQUEST, xid=1, chaddr=bytes.fromhex(mac), options=tuple(options), **fields
    )  # type: ignore[arg-type]


def step(
    table: LeaseTable, clients: Clients, action: str, mac: str, now: float
) -> list[LeaseEvent]:
    """One client action against the engine; the events it persisted."""
    if action == "lease":
        first = step(table, clients, "discover", mac, now)
        return first + step(table, clients, "select", mac, now)
    offered, bound = clients.offered.get(mac), clients.bound.get(mac)
    if action == "discover":
        message = packet(MessageType.DISCOVER, mac)
    elif action == "select" and offered is not None:
        message = packet(MessageType.REQUEST, mac, requested=offered, selecting=True)
    elif action == "renew" and bound is not None:
        message = packet(MessageType.REQUEST, mac, ciaddr=bound)
    elif action == "release" and bound is not None:
        message = packet(MessageType.RELEASE, mac, ciaddr=bound, selecting=True)
    elif action == "decline" and (offered or bound) is not None:
        message = packet(MessageType.DECLINE, mac, requested=offered or bound, selecting=True)
    else:
        return []
    outcome = table.handle(message, now)
    if outcome.reply is not None:
        reply = outcome.reply.packet
        if reply.message_type == MessageType.OFFER:
            clients.offered[mac] = reply.yiaddr
        elif reply.message_type == MessageType.ACK:
            clients.bound[mac] = reply.yiaddr
    return list(outcome.events)


actions = st.lists(
    st.tuples(
        st.sampled_from(["lease", "lease", "discover", "select", "renew", "release", "decline"]),
        st.sampled_from(MACS),
        st.sampled_from([0.0, 1.0, 30.0, 700.0, 2000.0]),
    ),
    max_size=80,
)


@settings(max_examples=300, deadline=None)
@given(actions, st.sampled_from([0.0, 100.0, 1000.0, 5000.0]))
def test_a_compacted_log_restores_the_same_active_leases_and_conflicts(
    script: list[tuple[str, str, float]], later: float
) -> None:
    table, clients, log, now = LeaseTable(CONFIG), Clients(), [], NOW
    for action, mac, pause in script:
        now += pause
        log += step(table, clients, action, mac, now)
    restart = now + later

    compacted = compact(log, restart)

    # At most a grant, a release and two declines for each of the four addresses.
    assert len(compacted) <= 4 * 4
    for config in (CONFIG, CHANGED):
        assert state(config, compacted, restart) == state(config, log, restart)
    assert state(CONFIG, log, restart) == (table.leases(restart), table.conflicts(restart))
