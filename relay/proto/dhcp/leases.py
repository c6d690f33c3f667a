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
from relay.proto.dhcp.reply import Reply, reply_to

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


# Distinct option 55 lists whose answer is remembered per pool; past it the memory
# starts over, so clients sending arbitrary lists cannot grow it.
_MAX_ANSWERS = 256
_DISCOVER = int(MessageType.DISCOVER)
_REQUEST = int(MessageType.REQUEST)
_DECLINE = int(MessageType.DECLINE)
_RELEASE = int(MessageType.RELEASE)
_INFORM = int(MessageType.INFORM)
_REQUESTED_IP = int(Option.REQUESTED_IP)
_SERVER_ID = int(Option.SERVER_ID)
_PARAMETER_REQUEST_LIST = int(Option.PARAMETER_REQUEST_LIST)


def _option_address(packet: DhcpPacket, code: int) -> int | None:
    """An address option (50, 54) as an integer; a parsed packet has its length checked."""
    value = packet.option(code)
    if value is None:
        return None
    if len(value) != 4:
        raise DhcpError(f"an address option is 4 bytes, got {len(value)}")
    return int.from_bytes(value, "big")


class _PoolState:
    """The mutable bookkeeping of one pool; every address map is bounded by the pool's size.

    Addresses are integers inside: hashing and comparing IPv4Address objects
    costs Python calls on every lookup, and a request makes dozens of them.
    `address` gives the (shared) IPv4Address of one for leases and replies.
    """

    __slots__ = (
        "addresses",
        "answers",
        "available",
        "broadcast",
        "by_mac",
        "conflicts",
        "cursor",
        "expiry",
        "first",
        "hosts_all",
        "last",
        "lease_times",
        "leases",
        "netmask",
        "network",
        "offered",
        "offers",
        "pool",
        "reserved_by_mac",
        "reserved_ips",
        "returned",
    )

    def __init__(self, pool: Pool) -> None:
        self.pool = pool
        self.network = int(pool.subnet.network_address)
        self.netmask = int(pool.subnet.netmask)
        self.broadcast = int(pool.subnet.broadcast_address)
        # RFC 3021: a /31 has no network or broadcast address (a /32 is one host).
        self.hosts_all = pool.subnet.prefixlen >= 31
        self.first = int(pool.first)
        self.last = int(pool.last)
        # Encoded once: every OFFER and ACK of the pool carries them.
        self.available = {**pool.boot.configured(), Option.SUBNET_MASK: pool.subnet.netmask.packed}
        self.lease_times = (
            (Option.LEASE_TIME.value, encode_u32(pool.lease_seconds)),
            (Option.RENEWAL_TIME.value, encode_u32(pool.renewal)),
            (Option.REBINDING_TIME.value, encode_u32(pool.rebinding)),
        )
        # The options of an OFFER or ACK by the client's raw option 55: a fleet
        # of phones sends a handful of distinct lists.
        self.answers: dict[bytes | None, tuple[tuple[int, bytes], ...]] = {}
        # Only addresses the pool may lease (its range and reservations).
        self.addresses: dict[int, IPv4Address] = {}
        self.reserved_by_mac = {r.mac: int(r.ip) for r in pool.reservations}
        self.reserved_ips = {int(r.ip): r.mac for r in pool.reservations}
        self.leases: dict[int, Lease] = {}
        self.by_mac: dict[str, int] = {}
        # Insertion order is expiry order: offers all last `offer_seconds`.
        self.offers: dict[str, tuple[int, float]] = {}
        self.offered: dict[int, str] = {}
        self.conflicts: dict[int, float] = {}
        # Never-used dynamic addresses lie at or after `cursor`; an offered
        # address passed over by it comes back through `returned`.
        self.cursor = self.first
        self.returned: set[int] = set()
        # A min-heap of (lease end, address) over dynamic leases, so the
        # longest-expired address is found without a scan; entries whose
        # lease has changed since are stale and skipped.
        self.expiry: list[tuple[float, int]] = []

    def contains(self, ip: int) -> bool:
        """Whether `ip` is in the pool's subnet."""
        return ip & self.netmask == self.network

    def holds(self, ip: int) -> bool:
        """Whether `ip` is a usable host address of the subnet (as `Pool.holds`)."""
        return self.contains(ip) and (self.hosts_all or ip not in (self.network, self.broadcast))

    def address(self, ip: int) -> IPv4Address:
        """The IPv4Address of `ip`, an address the pool may lease."""
        found = self.addresses.get(ip)
        if found is None:
            found = self.addresses[ip] = IPv4Address(ip)
        return found

    def lease_options(self, requested: bytes | None) -> tuple[tuple[int, bytes], ...]:
        """Lease time, T1, T2 (always sent: RFC 2131 table 3), then the asked-for options."""
        answer = self.answers.get(requested)
        if answer is None:
            if len(self.answers) >= _MAX_ANSWERS:
                self.answers.clear()
            codes = None if requested is None else tuple(requested)
            picked = pick_options(self.available, codes, self.pool.boot.forced)
            answer = self.answers[requested] = (*self.lease_times, *picked)
        return answer

    def store(self, ip: int, lease: Lease) -> None:
        """Record `lease` of `ip`, keeping the expiry heap within twice the lease count."""
        self.leases[ip] = lease
        self.returned.discard(ip)
        if ip in self.reserved_ips:
            return
        heapq.heappush(self.expiry, (lease.expires, ip))
        if len(self.expiry) > 2 * len(self.leases) + 64:
            self.expiry = [
                (kept.expires, key)
                for key, kept in self.leases.items()
                if key not in self.reserved_ips
            ]
            heapq.heapify(self.expiry)


class LeaseTable:
    """RFC 2131 server state for one interface; call `handle` for every request."""

    def __init__(self, config: LeaseConfig) -> None:
        self.config = config
        self._states = tuple(_PoolState(pool) for pool in config.pools)
        self._server = config.server_ip
        self._server_ip = int(config.server_ip)

    @classmethod
    def restore(cls, config: LeaseConfig, events: Iterable[LeaseEvent], now: float) -> LeaseTable:
        """Rebuild the table from the persisted events, oldest first.

        Events for addresses the current configuration no longer serves to
        that MAC (outside every range, or now reserved for another) are
        skipped: the client will be NAKed on its next renewal.
        """
        table = cls(config)
        for event in events:
            ip = int(event.ip)
            state = table._state_holding(ip)
            if state is None or not table._assignable(state, event.mac, ip):
                continue
            if isinstance(event, LeaseGranted):
                table._bind(state, ip, Lease(event.mac, state.address(ip), event.expires))
            elif isinstance(event, LeaseReleased):
                table._end(state, event.mac, ip, event.at)
            else:
                table._end(state, event.mac, ip, event.at)
                state.by_mac.pop(event.mac, None)
                if event.until > now:
                    state.conflicts[ip] = event.until
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
            (IPv4Address(ip), until)
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
        if kind == _DISCOVER:
            return self._discover(state, packet, mac, now)
        if kind == _REQUEST:
            return self._request(state, packet, mac, now)
        if kind == _DECLINE:
            return self._decline(state, packet, mac, now)
        if kind == _RELEASE:
            return self._release(state, packet, mac, now)
        if kind == _INFORM:
            return self._inform(state, packet)
        return _NOTHING

    # Section 4.3.1 -------------------------------------------------------------

    def _discover(self, state: _PoolState, packet: DhcpPacket, mac: str, now: float) -> Outcome:
        ip = self._choose(state, mac, _option_address(packet, _REQUESTED_IP), now)
        if ip is None:
            return _NOTHING
        if state.reserved_by_mac.get(mac) != ip:
            self._hold(state, mac, ip, now)
        options = state.lease_options(packet.option(_PARAMETER_REQUEST_LIST))
        yiaddr = state.address(ip)
        return Outcome(
            reply_to(packet, MessageType.OFFER, self._server, yiaddr=yiaddr, options=options)
        )

    def _choose(self, state: _PoolState, mac: str, requested: int | None, now: float) -> int | None:
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

    def _never_used(self, state: _PoolState, mac: str, now: float) -> int | None:
        while state.returned:
            ip = state.returned.pop()
            if ip not in state.leases and self._available(state, mac, ip, now):
                return ip
        while state.cursor <= state.last:
            ip = state.cursor
            state.cursor += 1
            if ip not in state.leases and self._available(state, mac, ip, now):
                return ip
        return None

    def _longest_expired(self, state: _PoolState, mac: str, now: float) -> int | None:
        """Pop expired entries until one is free; put back the live ones (offered, in conflict)."""
        kept: list[tuple[float, int]] = []
        found = None
        while found is None and state.expiry and state.expiry[0][0] <= now:
            entry = heapq.heappop(state.expiry)
            lease = state.leases.get(entry[1])
            if lease is None or lease.expires != entry[0]:
                continue
            kept.append(entry)
            if self._available(state, mac, entry[1], now):
                found = entry[1]
        for entry in kept:
            heapq.heappush(state.expiry, entry)
        return found

    def _oldest_offer(self, state: _PoolState) -> int | None:
        if not state.offers:
            return None
        mac = next(iter(state.offers))
        ip = state.offers[mac][0]
        self._drop_offer(state, mac)
        state.returned.discard(ip)
        return ip

    # Section 4.3.2 -------------------------------------------------------------

    def _request(self, state: _PoolState, packet: DhcpPacket, mac: str, now: float) -> Outcome:
        server_id = _option_address(packet, _SERVER_ID)
        requested = _option_address(packet, _REQUESTED_IP)
        if server_id is not None and server_id != self._server_ip:
            # SELECTING: the client took another server's offer; ours is void.
            self._drop_offer(state, mac)
            return _NOTHING
        ip = requested if requested is not None else int(packet.ciaddr)
        if ip == 0:
            return _NOTHING
        if server_id is not None:
            if self._available(state, mac, ip, now):
                return self._ack(state, packet, mac, ip, now)
            return self._nak(packet)
        # INIT-REBOOT (requested address, no ciaddr) or RENEWING/REBINDING (ciaddr).
        if not state.holds(ip):
            return self._nak(packet)
        record = state.reserved_by_mac.get(mac) or state.by_mac.get(mac)
        if record == ip and self._available(state, mac, ip, now):
            return self._ack(state, packet, mac, ip, now)
        if record is None and self._available(state, mac, ip, now):
            return _NOTHING
        return self._nak(packet)

    def _ack(self, state: _PoolState, packet: DhcpPacket, mac: str, ip: int, now: float) -> Outcome:
        address = state.address(ip)
        expires = now + state.pool.lease_seconds
        granted = LeaseGranted(mac, address, expires)
        events: tuple[LeaseEvent, ...] = (granted,)
        previous = state.by_mac.get(mac)
        if previous is not None and previous != ip:
            lease = state.leases.get(previous)
            if lease is not None and lease.mac == mac and lease.expires > now:
                self._end(state, mac, previous, now)
                events = (LeaseReleased(mac, lease.ip, now), granted)
        self._drop_offer(state, mac)
        self._bind(state, ip, Lease(mac, address, expires))
        options = state.lease_options(packet.option(_PARAMETER_REQUEST_LIST))
        reply = reply_to(packet, MessageType.ACK, self._server, yiaddr=address, options=options)
        return Outcome(reply, events)

    def _nak(self, packet: DhcpPacket) -> Outcome:
        return Outcome(reply_to(packet, MessageType.NAK, self._server))

    # Sections 4.3.3 to 4.3.5 ---------------------------------------------------

    def _decline(self, state: _PoolState, packet: DhcpPacket, mac: str, now: float) -> Outcome:
        ip = _option_address(packet, _REQUESTED_IP)
        if ip is None or not self._ours(packet) or not self._owns(state, mac, ip, now):
            return _NOTHING
        until = now + self.config.conflict_seconds
        self._drop_offer(state, mac)
        self._end(state, mac, ip, now)
        state.by_mac.pop(mac, None)
        state.conflicts[ip] = until
        return Outcome(events=(AddressDeclined(mac, state.address(ip), now, until),))

    def _release(self, state: _PoolState, packet: DhcpPacket, mac: str, now: float) -> Outcome:
        ip = int(packet.ciaddr)
        lease = state.leases.get(ip)
        if not self._ours(packet) or lease is None or lease.mac != mac or lease.expires <= now:
            return _NOTHING
        self._end(state, mac, ip, now)
        return Outcome(events=(LeaseReleased(mac, lease.ip, now),))

    def _inform(self, state: _PoolState, packet: DhcpPacket) -> Outcome:
        # Section 4.3.5: options only; no lease time, yiaddr stays 0.
        options = pick_options(
            state.available, packet.parameter_request_list, state.pool.boot.forced
        )
        return Outcome(reply_to(packet, MessageType.ACK, self._server, options=options))

    # Bookkeeping ---------------------------------------------------------------

    def _select(self, packet: DhcpPacket) -> _PoolState | None:
        """Section 4.3.1: the giaddr's subnet for relayed requests, else our own."""
        giaddr = int(packet.giaddr)
        return self._state_holding(giaddr if giaddr else self._server_ip)

    def _state_holding(self, ip: int) -> _PoolState | None:
        for state in self._states:
            if state.contains(ip):
                return state
        return None

    def _ours(self, packet: DhcpPacket) -> bool:
        server_id = _option_address(packet, _SERVER_ID)
        return server_id is None or server_id == self._server_ip

    def _assignable(self, state: _PoolState, mac: str, ip: int) -> bool:
        """Whether configuration allows `ip` for `mac`: its reservation, else the dynamic range."""
        reserved = state.reserved_by_mac.get(mac)
        if reserved is not None:
            return ip == reserved
        return (
            state.first <= ip <= state.last
            and ip not in state.reserved_ips
            and ip != self._server_ip
        )

    def _available(self, state: _PoolState, mac: str, ip: int, now: float) -> bool:
        """Whether `ip` may go to `mac` now: assignable, not in conflict, held by no one else."""
        if not self._assignable(state, mac, ip):
            return False
        if state.conflicts.get(ip, now) > now:
            return False
        lease = state.leases.get(ip)
        if lease is not None and lease.mac != mac and lease.expires > now:
            return False
        return state.offered.get(ip, mac) == mac

    def _owns(self, state: _PoolState, mac: str, ip: int, now: float) -> bool:
        lease = state.leases.get(ip)
        bound = lease is not None and lease.mac == mac and lease.expires > now
        return bound or state.offered.get(ip) == mac

    def _hold(self, state: _PoolState, mac: str, ip: int, now: float) -> None:
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

    def _bind(self, state: _PoolState, ip: int, lease: Lease) -> None:
        previous = state.leases.get(ip)
        if (
            previous is not None
            and previous.mac != lease.mac
            and state.by_mac.get(previous.mac) == ip
        ):
            del state.by_mac[previous.mac]
        state.store(ip, lease)
        state.by_mac[lease.mac] = ip

    def _end(self, state: _PoolState, mac: str, ip: int, at: float) -> None:
        """End `mac`'s lease on `ip` at `at`, keeping it as a previous binding (section 4.3.1)."""
        lease = state.leases.get(ip)
        if lease is None or lease.mac == mac:
            expires = at if lease is None else min(lease.expires, at)
            state.store(ip, Lease(mac, state.address(ip), expires))
