"""The lease engine: RFC 2131 section 4.3 server behaviour over pools and MAC reservations.

A `LeaseTable` holds the state of one interface (its pools are selected by
giaddr for relayed requests, else the pool holding the server's own
address). It takes parsed packets and `now` (Unix seconds, wall clock, since
lease ends are persisted) and returns an `Outcome`: the reply to send, if any,
and the lease changes to persist first. The adapter appends the events to its
store *before* sending the ACK, so a crash never loses a granted lease, and
rebuilds the table at start with `LeaseTable.restore`.

Choices where RFC 2131 leaves room:
- clients are keyed by their Ethernet address (chaddr), not option 61:
  reservations are by MAC and phones send `01 <mac>` as client id anyway;
  non-Ethernet and plain BOOTP requests (no option 53) are not served;
- address choice follows section 4.3.1: the client's current or previous
  binding, then its requested address, then a never-used address, then the
  longest-expired one, finally the address of the oldest outstanding offer;
- an offer holds its address for `offer_seconds` only, and at most
  `max_offers` offers are outstanding per pool (the oldest is dropped first),
  so a DISCOVER flood from random MACs holds nothing for long and cannot
  starve a known phone; reservations are never dynamic, so they are served
  even when every dynamic address is bound;
- the lease time is the pool's; a client's option 51 is not honoured;
- INIT-REBOOT for an address on the wrong subnet is NAKed even without a
  record of the client (section 4.3.2 "SHOULD send DHCPNAK"); otherwise a
  server with no record stays silent (section 4.3.2 "MUST remain silent");
- DECLINE and RELEASE are honoured only for the sender's own address, so
  that no host can poison or free another client's lease.

Pure stdlib (relay.proto rules): no sockets, no SQLite, no clock.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from relay.proto.dhcp.options import BootOptions, pick_options
from relay.proto.dhcp.packet import (
    BOOTREQUEST,
    DhcpError,
    DhcpPacket,
    MessageType,
    Option,
    encode_u32,
)
from relay.proto.dhcp.reply import ZERO, Reply, reply_to

_MAC_RE = re.compile(r"[0-9a-f]{12}")
# RFC 2132 section 9.2: 0xffffffff means "infinity", which this server never grants.
_MAX_LEASE = 0xFFFFFFFE


@dataclass(frozen=True, slots=True)
class Reservation:
    """A fixed address for one MAC (12 lower-case hex digits)."""

    mac: str
    ip: IPv4Address

    def __post_init__(self) -> None:
        if not isinstance(self.mac, str) or _MAC_RE.fullmatch(self.mac) is None:
            raise DhcpError(f"reservation MAC {self.mac!r} is not 12 lower-case hex digits")


@dataclass(frozen=True, slots=True)
class Pool:
    """One subnet: a dynamic range `first`..`last`, lease times and the site's boot options.

    Reserved addresses may lie inside the range: they are excluded from it.
    T1 and T2 default to 0.5 and 0.875 of the lease (RFC 2131 section 4.4.5).
    """

    subnet: IPv4Network
    first: IPv4Address
    last: IPv4Address
    lease_seconds: int = 86_400
    t1: int | None = None
    t2: int | None = None
    boot: BootOptions = field(default_factory=BootOptions)
    reservations: tuple[Reservation, ...] = ()

    def __post_init__(self) -> None:
        for name, address in (("first", self.first), ("last", self.last)):
            if not self.holds(address):
                raise DhcpError(f"{name} address {address} is not a host of {self.subnet}")
        if self.first > self.last:
            raise DhcpError(f"the range {self.first}..{self.last} is empty")
        if not 0 < self.lease_seconds <= _MAX_LEASE:
            raise DhcpError(f"lease time {self.lease_seconds} is outside 1..{_MAX_LEASE}")
        if not 0 < self.renewal < self.rebinding < self.lease_seconds:
            raise DhcpError(
                f"need 0 < T1 ({self.renewal}) < T2 ({self.rebinding}) < lease "
                f"({self.lease_seconds}) (RFC 2131 section 4.4.5)"
            )
        for reservation in self.reservations:
            if not self.holds(reservation.ip):
                raise DhcpError(f"reserved address {reservation.ip} is not a host of {self.subnet}")
        if len({r.mac for r in self.reservations}) != len(self.reservations):
            raise DhcpError("a MAC is reserved twice")
        if len({r.ip for r in self.reservations}) != len(self.reservations):
            raise DhcpError("an address is reserved twice")

    @property
    def renewal(self) -> int:
        """T1, option 58 (RFC 2132 section 9.11)."""
        return self.lease_seconds // 2 if self.t1 is None else self.t1

    @property
    def rebinding(self) -> int:
        """T2, option 59 (RFC 2132 section 9.12)."""
        return self.lease_seconds * 7 // 8 if self.t2 is None else self.t2

    def holds(self, address: IPv4Address) -> bool:
        """Whether `address` is a usable host address of the subnet."""
        if address not in self.subnet:
            return False
        if self.subnet.prefixlen >= 31:
            return True
        return address not in (self.subnet.network_address, self.subnet.broadcast_address)


@dataclass(frozen=True, slots=True)
class LeaseConfig:
    """The lease-mode setup of one interface; `server_ip` is our address there (option 54)."""

    server_ip: IPv4Address
    pools: tuple[Pool, ...]
    offer_seconds: float = 10.0
    max_offers: int = 64
    conflict_seconds: float = 3600.0

    def __post_init__(self) -> None:
        for i, pool in enumerate(self.pools):
            for other in self.pools[i + 1 :]:
                if pool.subnet.overlaps(other.subnet):
                    raise DhcpError(f"pools {pool.subnet} and {other.subnet} overlap")
        if self.offer_seconds <= 0 or self.conflict_seconds <= 0:
            raise DhcpError("offer and conflict hold times must be positive")
        if self.max_offers < 1:
            raise DhcpError("at least one offer must be allowed per pool")


@dataclass(frozen=True, slots=True)
class Lease:
    """A binding; it is active while `now < expires`, and remembered after for reuse."""

    mac: str
    ip: IPv4Address
    expires: float


@dataclass(frozen=True, slots=True)
class LeaseGranted:
    """An ACK bound `ip` to `mac` until `expires`: persist before sending the ACK."""

    mac: str
    ip: IPv4Address
    expires: float


@dataclass(frozen=True, slots=True)
class LeaseReleased:
    """`mac` gave `ip` back at `at` (RELEASE, or a move to another address)."""

    mac: str
    ip: IPv4Address
    at: float


@dataclass(frozen=True, slots=True)
class AddressDeclined:
    """`mac` found `ip` in use at `at` (DECLINE); it is not offered before `until`."""

    mac: str
    ip: IPv4Address
    at: float
    until: float


LeaseEvent = LeaseGranted | LeaseReleased | AddressDeclined


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one packet caused: a reply to send (after persisting `events`), or none."""

    reply: Reply | None = None
    events: tuple[LeaseEvent, ...] = ()


_NOTHING = Outcome()


class _PoolState:
    """The mutable bookkeeping of one pool; every address map is bounded by the pool's size."""

    __slots__ = (
        "available",
        "by_mac",
        "conflicts",
        "cursor",
        "expiry",
        "lease_times",
        "leases",
        "offered",
        "offers",
        "pool",
        "reserved_by_mac",
        "reserved_ips",
        "returned",
    )

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        # Encoded once: every OFFER and ACK of the pool carries them.
        self.available = {**pool.boot.configured(), Option.SUBNET_MASK: pool.subnet.netmask.packed}
        self.lease_times = (
            (Option.LEASE_TIME.value, encode_u32(pool.lease_seconds)),
            (Option.RENEWAL_TIME.value, encode_u32(pool.renewal)),
            (Option.REBINDING_TIME.value, encode_u32(pool.rebinding)),
        )
        self.reserved_by_mac = {r.mac: r.ip for r in pool.reservations}
        self.reserved_ips = {r.ip: r.mac for r in pool.reservations}
        self.leases: dict[IPv4Address, Lease] = {}
        self.by_mac: dict[str, IPv4Address] = {}
        # Insertion order is expiry order: offers all last `offer_seconds`.
        self.offers: dict[str, tuple[IPv4Address, float]] = {}
        self.offered: dict[IPv4Address, str] = {}
        self.conflicts: dict[IPv4Address, float] = {}
        # Never-used dynamic addresses lie at or after `cursor`; an offered
        # address passed over by it comes back through `returned`.
        self.cursor = int(pool.first)
        self.returned: set[IPv4Address] = set()
        # A min-heap of (lease end, address) over dynamic leases, so the
        # longest-expired address is found without a scan; entries whose
        # lease has changed since are stale and skipped.
        self.expiry: list[tuple[float, int]] = []

    def store(self, lease: Lease) -> None:
        """Record `lease`, keeping the expiry heap within twice the lease count."""
        self.leases[lease.ip] = lease
        self.returned.discard(lease.ip)
        if lease.ip in self.reserved_ips:
            return
        heapq.heappush(self.expiry, (lease.expires, int(lease.ip)))
        if len(self.expiry) > 2 * len(self.leases) + 64:
            self.expiry = [(kept.expires, int(kept.ip)) for kept in self.leases.values()]
            heapq.heapify(self.expiry)


class LeaseTable:
    """RFC 2131 server state for one interface; call `handle` for every request."""

    def __init__(self, config: LeaseConfig) -> None:
        self.config = config
        self._states = tuple(_PoolState(pool) for pool in config.pools)

    @classmethod
    def restore(cls, config: LeaseConfig, events: Iterable[LeaseEvent], now: float) -> LeaseTable:
        """Rebuild the table from the persisted events, oldest first.

        Events for addresses the current configuration no longer serves to
        that MAC (outside every range, or now reserved for another) are
        skipped: the client will be NAKed on its next renewal.
        """
        table = cls(config)
        for event in events:
            state = table._state_holding(event.ip)
            if state is None or not table._assignable(state, event.mac, event.ip):
                continue
            if isinstance(event, LeaseGranted):
                table._bind(state, Lease(event.mac, event.ip, event.expires))
            elif isinstance(event, LeaseReleased):
                table._end(state, event.mac, event.ip, event.at)
            else:
                table._end(state, event.mac, event.ip, event.at)
                state.by_mac.pop(event.mac, None)
                if event.until > now:
                    state.conflicts[event.ip] = event.until
        return table

    def leases(self, now: float) -> tuple[Lease, ...]:
        """The active leases, by address."""
        active = [
            lease
            for state in self._states
            for lease in state.leases.values()
            if lease.expires > now
        ]
        return tuple(sorted(active, key=lambda lease: lease.ip))

    def conflicts(self, now: float) -> tuple[tuple[IPv4Address, float], ...]:
        """The addresses held back after a DECLINE (section 4.3.3), with the end of the hold."""
        held = [
            (ip, until)
            for state in self._states
            for ip, until in state.conflicts.items()
            if until > now
        ]
        return tuple(sorted(held))

    def handle(self, packet: DhcpPacket, now: float) -> Outcome:
        """Answer one request (RFC 2131 section 4.3); ignored packets give an empty Outcome.

        Raises DhcpError only for a packet built by hand with malformed
        options (a parsed packet has them checked already).
        """
        mac = packet.mac
        kind = packet.message_type
        if packet.op != BOOTREQUEST or mac is None or kind is None:
            return _NOTHING
        state = self._select(packet)
        if state is None:
            return _NOTHING
        self._expire_offers(state, now)
        if kind == MessageType.DISCOVER:
            return self._discover(state, packet, mac, now)
        if kind == MessageType.REQUEST:
            return self._request(state, packet, mac, now)
        if kind == MessageType.DECLINE:
            return self._decline(state, packet, mac, now)
        if kind == MessageType.RELEASE:
            return self._release(state, packet, mac, now)
        if kind == MessageType.INFORM:
            return self._inform(state, packet)
        return _NOTHING

    # Section 4.3.1 -------------------------------------------------------------

    def _discover(self, state: _PoolState, packet: DhcpPacket, mac: str, now: float) -> Outcome:
        ip = self._choose(state, mac, packet.requested_ip, now)
        if ip is None:
            return _NOTHING
        if state.reserved_by_mac.get(mac) != ip:
            self._hold(state, mac, ip, now)
        options = self._lease_options(state, packet)
        return Outcome(
            reply_to(packet, MessageType.OFFER, self._server, yiaddr=ip, options=options)
        )

    def _choose(
        self, state: _PoolState, mac: str, requested: IPv4Address | None, now: float
    ) -> IPv4Address | None:
        reserved = state.reserved_by_mac.get(mac)
        if reserved is not None:
            return reserved if self._available(state, mac, reserved, now) else None
        offer = state.offers.get(mac)
        for candidate in (
            state.by_mac.get(mac),
            None if offer is None else offer[0],
            requested,
        ):
            if candidate is not None and self._available(state, mac, candidate, now):
                return candidate
        return (
            self._never_used(state, mac, now)
            or self._longest_expired(state, mac, now)
            or self._oldest_offer(state)
        )

    def _never_used(self, state: _PoolState, mac: str, now: float) -> IPv4Address | None:
        while state.returned:
            ip = state.returned.pop()
            if ip not in state.leases and self._available(state, mac, ip, now):
                return ip
        while state.cursor <= int(state.pool.last):
            ip = IPv4Address(state.cursor)
            state.cursor += 1
            if ip not in state.leases and self._available(state, mac, ip, now):
                return ip
        return None

    def _longest_expired(self, state: _PoolState, mac: str, now: float) -> IPv4Address | None:
        """Pop expired entries until one is free; put back the live ones (offered, in conflict)."""
        kept: list[tuple[float, int]] = []
        found = None
        while found is None and state.expiry and state.expiry[0][0] <= now:
            entry = heapq.heappop(state.expiry)
            ip = IPv4Address(entry[1])
            lease = state.leases.get(ip)
            if lease is None or lease.expires != entry[0]:
                continue
            kept.append(entry)
            if self._available(state, mac, ip, now):
                found = ip
        for entry in kept:
            heapq.heappush(state.expiry, entry)
        return found

    def _oldest_offer(self, state: _PoolState) -> IPv4Address | None:
        if not state.offers:
            return None
        mac = next(iter(state.offers))
        ip = state.offers[mac][0]
        self._drop_offer(state, mac)
        state.returned.discard(ip)
        return ip

    # Section 4.3.2 -------------------------------------------------------------

    def _request(self, state: _PoolState, packet: DhcpPacket, mac: str, now: float) -> Outcome:
        server_id = packet.server_id
        requested = packet.requested_ip
        if server_id is not None and server_id != self._server:
            # SELECTING: the client took another server's offer; ours is void.
            self._drop_offer(state, mac)
            return _NOTHING
        if server_id is not None:
            ip = requested if requested is not None else packet.ciaddr
            if ip == ZERO:
                return _NOTHING
            if self._available(state, mac, ip, now):
                return self._ack(state, packet, mac, ip, now)
            return self._nak(packet)
        # INIT-REBOOT (requested address, no ciaddr) or RENEWING/REBINDING (ciaddr).
        ip = requested if requested is not None else packet.ciaddr
        if ip == ZERO:
            return _NOTHING
        if not state.pool.holds(ip):
            return self._nak(packet)
        record = state.reserved_by_mac.get(mac) or state.by_mac.get(mac)
        if record == ip and self._available(state, mac, ip, now):
            return self._ack(state, packet, mac, ip, now)
        if record is None and self._available(state, mac, ip, now):
            return _NOTHING
        return self._nak(packet)

    def _ack(
        self, state: _PoolState, packet: DhcpPacket, mac: str, ip: IPv4Address, now: float
    ) -> Outcome:
        events: list[LeaseEvent] = []
        previous = state.by_mac.get(mac)
        if previous is not None and previous != ip:
            lease = state.leases.get(previous)
            if lease is not None and lease.mac == mac and lease.expires > now:
                self._end(state, mac, previous, now)
                events.append(LeaseReleased(mac, previous, now))
        self._drop_offer(state, mac)
        lease = Lease(mac, ip, now + state.pool.lease_seconds)
        self._bind(state, lease)
        events.append(LeaseGranted(mac, ip, lease.expires))
        options = self._lease_options(state, packet)
        reply = reply_to(packet, MessageType.ACK, self._server, yiaddr=ip, options=options)
        return Outcome(reply, tuple(events))

    def _nak(self, packet: DhcpPacket) -> Outcome:
        return Outcome(reply_to(packet, MessageType.NAK, self._server))

    # Sections 4.3.3 to 4.3.5 ---------------------------------------------------

    def _decline(self, state: _PoolState, packet: DhcpPacket, mac: str, now: float) -> Outcome:
        ip = packet.requested_ip
        if ip is None or not self._ours(packet) or not self._owns(state, mac, ip, now):
            return _NOTHING
        until = now + self.config.conflict_seconds
        self._drop_offer(state, mac)
        self._end(state, mac, ip, now)
        state.by_mac.pop(mac, None)
        state.conflicts[ip] = until
        return Outcome(events=(AddressDeclined(mac, ip, now, until),))

    def _release(self, state: _PoolState, packet: DhcpPacket, mac: str, now: float) -> Outcome:
        ip = packet.ciaddr
        lease = state.leases.get(ip)
        if not self._ours(packet) or lease is None or lease.mac != mac or lease.expires <= now:
            return _NOTHING
        self._end(state, mac, ip, now)
        return Outcome(events=(LeaseReleased(mac, ip, now),))

    def _inform(self, state: _PoolState, packet: DhcpPacket) -> Outcome:
        # Section 4.3.5: options only; no lease time, yiaddr stays 0.
        options = pick_options(
            state.available, packet.parameter_request_list, state.pool.boot.forced
        )
        return Outcome(reply_to(packet, MessageType.ACK, self._server, options=options))

    # Bookkeeping ---------------------------------------------------------------

    @property
    def _server(self) -> IPv4Address:
        return self.config.server_ip

    def _select(self, packet: DhcpPacket) -> _PoolState | None:
        """Section 4.3.1: the giaddr's subnet for relayed requests, else our own."""
        anchor = packet.giaddr if packet.giaddr != ZERO else self._server
        return self._state_holding(anchor)

    def _state_holding(self, ip: IPv4Address) -> _PoolState | None:
        for state in self._states:
            if ip in state.pool.subnet:
                return state
        return None

    def _ours(self, packet: DhcpPacket) -> bool:
        server_id = packet.server_id
        return server_id is None or server_id == self._server

    def _assignable(self, state: _PoolState, mac: str, ip: IPv4Address) -> bool:
        """Whether configuration allows `ip` for `mac`: its reservation, else the dynamic range."""
        reserved = state.reserved_by_mac.get(mac)
        if reserved is not None:
            return ip == reserved
        pool = state.pool
        return pool.first <= ip <= pool.last and ip not in state.reserved_ips and ip != self._server

    def _available(self, state: _PoolState, mac: str, ip: IPv4Address, now: float) -> bool:
        """Whether `ip` may go to `mac` now: assignable, not in conflict, held by no one else."""
        if not self._assignable(state, mac, ip):
            return False
        if state.conflicts.get(ip, now) > now:
            return False
        lease = state.leases.get(ip)
        if lease is not None and lease.mac != mac and lease.expires > now:
            return False
        return state.offered.get(ip, mac) == mac

    def _owns(self, state: _PoolState, mac: str, ip: IPv4Address, now: float) -> bool:
        lease = state.leases.get(ip)
        bound = lease is not None and lease.mac == mac and lease.expires > now
        return bound or state.offered.get(ip) == mac

    def _lease_options(self, state: _PoolState, packet: DhcpPacket) -> list[tuple[int, bytes]]:
        """Lease time, T1, T2 (always sent: RFC 2131 table 3), then the asked-for options."""
        requested = packet.parameter_request_list
        return [
            *state.lease_times,
            *pick_options(state.available, requested, state.pool.boot.forced),
        ]

    def _hold(self, state: _PoolState, mac: str, ip: IPv4Address, now: float) -> None:
        self._drop_offer(state, mac)
        while len(state.offers) >= self.config.max_offers:
            self._drop_offer(state, next(iter(state.offers)))
        state.offers[mac] = (ip, now + self.config.offer_seconds)
        state.offered[ip] = mac
        state.returned.discard(ip)

    def _drop_offer(self, state: _PoolState, mac: str) -> None:
        offer = state.offers.pop(mac, None)
        if offer is None:
            return
        ip = offer[0]
        if state.offered.get(ip) == mac:
            del state.offered[ip]
        if ip not in state.leases:
            state.returned.add(ip)

    def _expire_offers(self, state: _PoolState, now: float) -> None:
        while state.offers:
            mac, (_ip, expires) = next(iter(state.offers.items()))
            if expires > now:
                return
            self._drop_offer(state, mac)

    def _bind(self, state: _PoolState, lease: Lease) -> None:
        previous = state.leases.get(lease.ip)
        if (
            previous is not None
            and previous.mac != lease.mac
            and state.by_mac.get(previous.mac) == lease.ip
        ):
            del state.by_mac[previous.mac]
        state.store(lease)
        state.by_mac[lease.mac] = lease.ip

    def _end(self, state: _PoolState, mac: str, ip: IPv4Address, at: float) -> None:
        """End `mac`'s lease on `ip` at `at`, keeping it as a previous binding (section 4.3.1)."""
        lease = state.leases.get(ip)
        if lease is None or lease.mac == mac:
            expires = at if lease is None else min(lease.expires, at)
            state.store(Lease(mac, ip, expires))
