"""A simulated phone's DHCP client: how it finds its address and boot server (phones.md 1).

`DhcpClient` is the RFC 2131 client state machine of one phone, pure and
synchronous: it takes parsed replies and `now` (seconds of any monotonic
clock) and returns a `Step`, the datagrams to send and what happened. The
asyncio adapter (relay.sim.dhcpnet) owns the socket and the interface
addresses.

What the phone does, after phones.md section 1:
- DISCOVER, then REQUEST of the first OFFER, asking (option 55) for the
  boot-server and VLAN options, naming itself in option 60 the RFC 3925 way
  (enterprise 13885, sub-options 1 company, 2 model, 3 part number,
  4 application version, 5 boot ROM version, 255 end: the layout of the
  vendor's administrator guides), with chaddr and client id `01 <mac>`;
- the boot server follows `device.bootSrvUseOpt=CustomAndDefault`, the
  factory default: the custom option (160 on VVX and the others, 161 on Trio
  and Edge) if present and usable, else option 66; a bare host in either
  means TFTP (`tftp://host/`);
- DHCP VLAN discovery reads `VLAN-A=<id>;` from 128, 144, 157, 191 in that
  order (Trio: 129 instead of 128); the id is decimal, hex `0x..` or octal `0..`;
- an ACK without a boot server, when flash has none either (`inform`), is
  followed by a DHCPINFORM (RFC 2131 section 4.4.3, ciaddr = the leased
  address), broadcast so that an inform-only responder on the link hears it;
  the first answer that carries a boot server is taken (phones.md 1.4).

Choices where the RFCs leave room:
- retransmission follows RFC 2131 section 4.1: `retry_base` (4 s) doubled
  each time up to 64 s, randomised by +-`retry_base`/4 (+-1 s), the same xid
  and a growing `secs`; DISCOVER and REQUEST are tried `max_tries` times, the
  INFORM `inform_tries` times (the phone "will retry and eventually time out");
- DISCOVER and REQUEST set the broadcast bit: the client cannot receive
  unicast before its address is configured (section 4.1);
- a NAK, or a REQUEST that went unanswered, restarts from DISCOVER (section
  4.4.1) at most `max_restarts` times; then the client gives up (`Failed`);
- an ACK without a lease time (option 51), an OFFER without a server
  identifier, or any option the client cannot decode makes the reply
  unusable: it is ignored as if lost, and retransmission carries on;
- the address is not ARP-probed before use (no DECLINE): the simulator's
  addresses come from a test link, not a crowded LAN;
- a VLAN found is reported in the lease, not acted on: the simulator has one
  link, so "restart DHCP on the voice VLAN" would find the same server again;
- after the boot, the lease is renewed at T1 (unicast REQUEST) and rebound
  at T2 (broadcast REQUEST), retransmitting after half the remaining time,
  at least `renew_retry_min` (section 4.4.5: 60 s); a NAK or the end of the
  lease is `Lost`, and the client stops: the phone restarts its network.

Every value read from a reply is checked and bounded; a reply the client
cannot use raises `DhcpClientError` inside and is dropped, so `receive` never
raises for any packet `relay.proto.dhcp.packet.parse` accepts.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, replace
from enum import Enum
from ipaddress import IPv4Address, IPv4Network
from urllib.parse import urlsplit

from relay.proto.dhcp.packet import (
    BOOTREPLY,
    BOOTREQUEST,
    BROADCAST_FLAG,
    POLYCOM_ENTERPRISE,
    DhcpError,
    DhcpPacket,
    MessageType,
    Option,
    decode_ip,
    decode_u32,
)
from relay.sim.identity import user_agent_identity

# The options the phone asks for (option 55): mask, router, DNS, domain, NTP,
# then the boot server (66, 160, 161) and VLAN options (phones.md section 1).
PARAMETER_REQUEST_LIST = (1, 3, 6, 15, 42, 66, 128, 129, 144, 157, 160, 161, 191)
VLAN_OPTIONS = (128, 144, 157, 191)
TRIO_VLAN_OPTIONS = (129, 144, 157, 191)
CUSTOM_OPTION = 160
TRIO_CUSTOM_OPTION = 161
# Families whose custom boot-server option is 161 (phones.md 1.2: "Trio / Edge").
_OPTION_161_FAMILIES = frozenset({"PolycomRealPresenceTrio", "PolyEdge"})
_TRIO_FAMILY = "PolycomRealPresenceTrio"
BOOT_SCHEMES = ("http", "https", "ftp", "ftps", "tftp")

LIMITED_BROADCAST = IPv4Address("255.255.255.255")
ZERO = IPv4Address(0)
# RFC 2131 section 4.1: "4 seconds ... doubled ... up to a maximum of 64 seconds".
DEFAULT_RETRY_BASE = 4.0
MAX_BACKOFF = 64.0
DEFAULT_MAX_TRIES = 5
DEFAULT_INFORM_TRIES = 3
DEFAULT_MAX_RESTARTS = 3
# RFC 2131 section 4.4.5: "down to a minimum of 60 seconds".
RENEW_RETRY_MIN = 60.0
# RFC 2132 section 9.2: 0xffffffff is an infinite lease.
INFINITE = 0xFFFFFFFF
MAX_BOOT_SERVER = 255
# The vendor guides show "<apptype>/<buildid>/<date+time>"; the simulator
# has no build date, so a fixed one keeps the three fields.
BUILD_DATE = "01-Jan-20 00:00"

_VLAN_RE = re.compile(rb"VLAN-A=([0-9A-Fa-fx+]+);")
# Printable ASCII but space and backslash (phones.md section 2).
_URL_TEXT_RE = re.compile(r"[\x21-\x5b\x5d-\x7e]+")
_BARE_HOST_RE = re.compile(r"[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)*\.?(:[0-9]{1,5})?(/\S*)?")


class DhcpClientError(ValueError):
    """A reply (or one of its options) the client cannot use; the reply is dropped."""


@dataclass(frozen=True, slots=True)
class ClientIdentity:
    """Who the phone says it is in DHCP: chaddr, client id and option 60."""

    mac: str
    family: str
    model_token: str
    part_number: str
    firmware: str

    @classmethod
    def of(cls, mac: str, model: str, part_number: str, firmware: str) -> ClientIdentity:
        """The identity of a `model` phone; the family comes from relay.sim.identity."""
        names = user_agent_identity(model)
        return cls(mac, names.family, names.model_token, part_number, firmware)

    @property
    def custom_option(self) -> int:
        """160 on VVX and the others, 161 on Trio and Edge (phones.md section 1.2)."""
        return TRIO_CUSTOM_OPTION if self.family in _OPTION_161_FAMILIES else CUSTOM_OPTION

    @property
    def vlan_options(self) -> tuple[int, ...]:
        """128, 144, 157, 191 in that order; Trio reads 129 instead of 128 (phones.md 1.1)."""
        return TRIO_VLAN_OPTIONS if self.family == _TRIO_FAMILY else VLAN_OPTIONS

    @property
    def chaddr(self) -> bytes:
        return bytes.fromhex(self.mac)


@dataclass(frozen=True, slots=True)
class BootServer:
    """The provisioning server URL, the option it came from, and whether an INFORM found it."""

    url: str
    option: int
    via: str


@dataclass(frozen=True, slots=True)
class Lease:
    """What an ACK gave; times are seconds of the client's clock, `obtained` included."""

    address: IPv4Address
    prefix: int
    server: IPv4Address
    lease_seconds: int
    t1: int
    t2: int
    obtained: float
    router: IPv4Address | None = None
    dns: tuple[IPv4Address, ...] = ()
    boot_server: BootServer | None = None
    vlan: int | None = None

    @property
    def network(self) -> IPv4Network:
        return IPv4Network(f"{self.address}/{self.prefix}", strict=False)


@dataclass(frozen=True, slots=True)
class Send:
    """One datagram for the adapter to send to `destination`, UDP port 67."""

    packet: DhcpPacket
    destination: IPv4Address


@dataclass(frozen=True, slots=True)
class Bound:
    """Configure `lease.address` on the interface (a new lease or a renewed one)."""

    lease: Lease


@dataclass(frozen=True, slots=True)
class Ready:
    """Discovery is over: the phone boots with `lease` (its boot server may be None)."""

    lease: Lease


@dataclass(frozen=True, slots=True)
class Lost:
    """The lease ended (NAK on renewal, or expiry): remove the address."""

    address: IPv4Address
    reason: str


@dataclass(frozen=True, slots=True)
class Failed:
    """No lease could be had; the client has stopped."""

    reason: str


Event = Bound | Ready | Lost | Failed


@dataclass(frozen=True, slots=True)
class Step:
    sends: tuple[Send, ...] = ()
    events: tuple[Event, ...] = ()


_NOTHING = Step()


class State(Enum):
    INIT = "init"
    SELECTING = "selecting"
    REQUESTING = "requesting"
    INFORMING = "informing"
    BOUND = "bound"
    RENEWING = "renewing"
    REBINDING = "rebinding"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class Timing:
    """Retransmission parameters; tests shrink `retry_base` to keep the schedule short."""

    retry_base: float = DEFAULT_RETRY_BASE
    max_tries: int = DEFAULT_MAX_TRIES
    inform_tries: int = DEFAULT_INFORM_TRIES
    max_restarts: int = DEFAULT_MAX_RESTARTS
    renew_retry_min: float = RENEW_RETRY_MIN

    def __post_init__(self) -> None:
        if not self.retry_base > 0:
            raise ValueError(f"retry_base must be positive, got {self.retry_base}")
        for name in ("max_tries", "inform_tries"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if self.max_restarts < 0 or not self.renew_retry_min > 0:
            raise ValueError("max_restarts must not be negative, renew_retry_min must be positive")


class DhcpClient:
    """One phone's DHCP conversation: `start`, then `receive` each reply and `tick` on timeouts.

    `deadline` says when `tick` is next due (None once stopped); `inform`
    says whether an ACK without a boot server leads to a DHCPINFORM (flash
    has no server). `previous` is suggested in option 50 (RFC 2131 4.4.1).
    """

    def __init__(
        self,
        identity: ClientIdentity,
        *,
        inform: bool,
        rng: random.Random,
        timing: Timing | None = None,
        previous: IPv4Address | None = None,
    ) -> None:
        self.identity = identity
        self.inform = inform
        self.timing = timing if timing is not None else Timing()
        self._rng = rng
        self._previous = previous
        self.state = State.INIT
        self.xid = 0
        self.deadline: float | None = None
        self.lease: Lease | None = None
        self._tries = 0
        self._restarts = 0
        self._started = 0.0
        self._offer: DhcpPacket | None = None

    def start(self, now: float) -> Step:
        """Begin with a DISCOVER (RFC 2131 section 4.4.1, INIT -> SELECTING)."""
        return self._discover(now)

    def tick(self, now: float) -> Step:
        """A deadline passed: retransmit, move on to the next state, or give up."""
        if self.deadline is None or now < self.deadline:
            return _NOTHING
        state = self.state
        if state is State.SELECTING:
            if self._tries < self.timing.max_tries:
                return self._retransmit(now, self._discover_packet(now))
            return self._fail(f"no DHCPOFFER after {self._tries} DHCPDISCOVERs")
        if state is State.REQUESTING:
            if self._tries < self.timing.max_tries:
                return self._retransmit(now, self._request_packet(now))
            return self._restart(now, f"no answer to {self._tries} DHCPREQUESTs")
        if state is State.INFORMING:
            if self._tries < self.timing.inform_tries:
                return self._retransmit(now, self._inform_packet(now))
            return self._ready(self._current_lease())
        if state is State.BOUND:
            return self._renew(now)
        if state is State.RENEWING:
            return self._renewing_timeout(now)
        if state is State.REBINDING:
            return self._rebinding_timeout(now)
        return _NOTHING

    def receive(self, packet: DhcpPacket, now: float) -> Step:
        """A reply from the link; anything not meant for this exchange, or unusable, is ignored."""
        if (
            packet.op != BOOTREPLY
            or packet.xid != self.xid
            or packet.chaddr[:6] != self.identity.chaddr
            or self.state in (State.INIT, State.STOPPED, State.BOUND)
        ):
            return _NOTHING
        try:
            kind = packet.message_type
            if self.state is State.SELECTING and kind == MessageType.OFFER:
                return self._on_offer(packet, now)
            if self.state is State.REQUESTING and kind in (MessageType.ACK, MessageType.NAK):
                return self._on_request_answer(packet, now)
            if self.state is State.INFORMING and kind == MessageType.ACK:
                return self._on_inform_answer(packet)
            if self.state in (State.RENEWING, State.REBINDING) and kind in (
                MessageType.ACK,
                MessageType.NAK,
            ):
                return self._on_renew_answer(packet, now)
        except (DhcpClientError, DhcpError):
            return _NOTHING
        return _NOTHING

    def release(self) -> Step:
        """DHCPRELEASE of a held lease (RFC 2131 section 4.4.6), then stop."""
        lease = self.lease
        held = self.state in (State.INFORMING, State.BOUND, State.RENEWING, State.REBINDING)
        self._stop()
        if lease is None or not held:
            return _NOTHING
        self.xid = self._new_xid()
        packet = self._packet(
            MessageType.RELEASE,
            0.0,
            ciaddr=lease.address,
            extra=((Option.SERVER_ID.value, lease.server.packed),),
            ask=False,
        )
        return Step(sends=(Send(packet, lease.server),))

    # Transitions -------------------------------------------------------------------

    def _discover(self, now: float) -> Step:
        self.state = State.SELECTING
        self.xid = self._new_xid()
        self._started = now
        self._tries = 0
        self._offer = None
        return self._retransmit(now, self._discover_packet(now))

    def _restart(self, now: float, reason: str) -> Step:
        if self._restarts >= self.timing.max_restarts:
            return self._fail(f"{reason}; gave up after {self._restarts} restarts")
        self._restarts += 1
        return self._discover(now)

    def _on_offer(self, packet: DhcpPacket, now: float) -> Step:
        """RFC 2131 section 4.4.1: take the first usable OFFER, REQUEST it (broadcast)."""
        if packet.yiaddr == ZERO or packet.server_id is None:
            raise DhcpClientError("an OFFER needs yiaddr and a server identifier")
        self._offer = packet
        self.state = State.REQUESTING
        self._tries = 0
        return self._retransmit(now, self._request_packet(now))

    def _on_request_answer(self, packet: DhcpPacket, now: float) -> Step:
        offer = self._offer
        assert offer is not None
        server = packet.server_id
        if server is not None and server != offer.server_id:
            return _NOTHING
        if packet.message_type == MessageType.NAK:
            return self._restart(now, "DHCPNAK")
        if packet.yiaddr != offer.yiaddr:
            raise DhcpClientError("the ACK is for another address than the one requested")
        lease = lease_from(packet, self.identity, now, fallback_server=offer.server_id)
        self.lease = lease
        if lease.boot_server is not None or not self.inform:
            return self._ready(lease, bound=True)
        # RFC 2131 section 4.4.3: DHCPINFORM with ciaddr, broadcast to every server.
        self.state = State.INFORMING
        self.xid = self._new_xid()
        self._started = now
        self._tries = 0
        step = self._retransmit(now, self._inform_packet(now))
        return Step(sends=step.sends, events=(Bound(lease),))

    def _on_inform_answer(self, packet: DhcpPacket) -> Step:
        """The first answer that names a boot server wins; others are noted as nothing."""
        found = boot_server_from(packet, self.identity, via="inform")
        if found is None:
            return _NOTHING
        lease = self._current_lease()
        vlan = lease.vlan if lease.vlan is not None else vlan_from(packet, self.identity)
        return self._ready(replace(lease, boot_server=found, vlan=vlan))

    def _ready(self, lease: Lease, *, bound: bool = False) -> Step:
        self.lease = lease
        self.state = State.BOUND
        self._schedule_renewal()
        events: tuple[Event, ...] = (Bound(lease), Ready(lease)) if bound else (Ready(lease),)
        return Step(events=events)

    def _renew(self, now: float) -> Step:
        """T1: RENEWING, a REQUEST unicast to the server that granted the lease (4.4.5)."""
        lease = self._current_lease()
        self.state = State.RENEWING
        self.xid = self._new_xid()
        self._started = now
        return self._renewal_request(now, lease.server, lease.obtained + lease.t2)

    def _renewing_timeout(self, now: float) -> Step:
        lease = self._current_lease()
        if now >= lease.obtained + lease.t2:
            # T2: REBINDING, broadcast to any server (4.4.5).
            self.state = State.REBINDING
            self.xid = self._new_xid()
            return self._renewal_request(now, LIMITED_BROADCAST, self._expiry(lease))
        return self._renewal_request(now, lease.server, lease.obtained + lease.t2)

    def _rebinding_timeout(self, now: float) -> Step:
        lease = self._current_lease()
        if now >= self._expiry(lease):
            return self._lose(lease, "the lease expired without renewal")
        return self._renewal_request(now, LIMITED_BROADCAST, self._expiry(lease))

    def _renewal_request(self, now: float, destination: IPv4Address, until: float) -> Step:
        """Half the time left until `until`, at least `renew_retry_min`, but never past it."""
        lease = self._current_lease()
        wait = max((until - now) / 2, self.timing.renew_retry_min)
        self.deadline = min(now + wait, until) if until > now else now
        packet = self._packet(MessageType.REQUEST, now, ciaddr=lease.address)
        return Step(sends=(Send(packet, destination),))

    def _on_renew_answer(self, packet: DhcpPacket, now: float) -> Step:
        lease = self._current_lease()
        if packet.message_type == MessageType.NAK:
            return self._lose(lease, "DHCPNAK on renewal")
        if packet.yiaddr != lease.address:
            return self._lose(lease, f"the renewal ACK moved the phone to {packet.yiaddr}")
        renewed = lease_from(packet, self.identity, now, fallback_server=lease.server)
        renewed = replace(renewed, boot_server=lease.boot_server, vlan=lease.vlan)
        self.lease = renewed
        self.state = State.BOUND
        self._schedule_renewal()
        return Step(events=(Bound(renewed),))

    def _lose(self, lease: Lease, reason: str) -> Step:
        self._stop()
        return Step(events=(Lost(lease.address, reason),))

    def _fail(self, reason: str) -> Step:
        self._stop()
        return Step(events=(Failed(reason),))

    def _stop(self) -> None:
        self.state = State.STOPPED
        self.deadline = None

    def _schedule_renewal(self) -> None:
        lease = self._current_lease()
        infinite = lease.lease_seconds == INFINITE
        self.deadline = None if infinite else lease.obtained + lease.t1

    def _retransmit(self, now: float, packet: DhcpPacket) -> Step:
        """Send now; the next try after RFC 2131 section 4.1's randomised exponential backoff."""
        self._tries += 1
        base = self.timing.retry_base
        delay = min(base * 2 ** (self._tries - 1), MAX_BACKOFF)
        self.deadline = now + delay + self._rng.uniform(-base / 4, base / 4)
        return Step(sends=(Send(packet, LIMITED_BROADCAST),))

    def _current_lease(self) -> Lease:
        if self.lease is None:
            raise AssertionError("no lease in a state that needs one")
        return self.lease

    @staticmethod
    def _expiry(lease: Lease) -> float:
        return lease.obtained + lease.lease_seconds

    def _new_xid(self) -> int:
        return self._rng.getrandbits(32)

    # Packets -----------------------------------------------------------------------

    def _discover_packet(self, now: float) -> DhcpPacket:
        extra: tuple[tuple[int, bytes], ...] = ()
        if self._previous is not None:
            extra = ((Option.REQUESTED_IP.value, self._previous.packed),)
        return self._packet(MessageType.DISCOVER, now, flags=BROADCAST_FLAG, extra=extra)

    def _request_packet(self, now: float) -> DhcpPacket:
        """SELECTING: requested address and server identifier of the OFFER (table 5)."""
        offer = self._offer
        assert offer is not None and offer.server_id is not None
        extra = (
            (Option.REQUESTED_IP.value, offer.yiaddr.packed),
            (Option.SERVER_ID.value, offer.server_id.packed),
        )
        return self._packet(MessageType.REQUEST, now, flags=BROADCAST_FLAG, extra=extra)

    def _inform_packet(self, now: float) -> DhcpPacket:
        return self._packet(MessageType.INFORM, now, ciaddr=self._current_lease().address)

    def _packet(
        self,
        kind: MessageType,
        now: float,
        *,
        flags: int = 0,
        ciaddr: IPv4Address = ZERO,
        extra: tuple[tuple[int, bytes], ...] = (),
        ask: bool = True,
    ) -> DhcpPacket:
        identity = self.identity
        options: list[tuple[int, bytes]] = [(Option.MESSAGE_TYPE.value, bytes((kind,)))]
        options += extra
        options.append((Option.CLIENT_ID.value, b"\x01" + identity.chaddr))
        if ask:
            options.append((Option.PARAMETER_REQUEST_LIST.value, bytes(PARAMETER_REQUEST_LIST)))
            options.append((Option.VENDOR_CLASS.value, vendor_class(identity)))
        return DhcpPacket(
            op=BOOTREQUEST,
            xid=self.xid,
            chaddr=identity.chaddr,
            secs=min(int(max(0.0, now - self._started)), 0xFFFF),
            flags=flags,
            ciaddr=ciaddr,
            options=tuple(options),
        )


def vendor_class(identity: ClientIdentity) -> bytes:
    """Option 60 as the phones send it: one RFC 3925 block of enterprise 13885 (phones.md 1.3).

    Sub-options after the vendor's documented decode of a phone's DISCOVER:
    1 company, 2 model, 3 part number, 4 application version, 5 boot ROM
    version, then 255 ending the list.
    """
    family = identity.family.removeprefix("Polycom")
    fields = (
        (1, "Polycom"),
        (2, f"{family}-{identity.model_token}"),
        (3, identity.part_number),
        (4, f"SIP/{identity.firmware}/{BUILD_DATE}"),
        (5, f"BR/{identity.firmware}/{BUILD_DATE}"),
    )
    data = bytearray()
    for code, text in fields:
        value = text.encode("ascii")[:64]
        data += bytes((code, len(value))) + value
    data.append(0xFF)
    block = POLYCOM_ENTERPRISE.to_bytes(4, "big") + bytes((len(data),)) + bytes(data)
    if len(block) > 255:
        raise ValueError("option 60 does not fit in 255 bytes; shorten the model or part number")
    return block


def lease_from(
    ack: DhcpPacket, identity: ClientIdentity, now: float, *, fallback_server: IPv4Address | None
) -> Lease:
    """The lease an ACK grants (RFC 2131 table 3); DhcpClientError when it is not usable."""
    if ack.yiaddr == ZERO:
        raise DhcpClientError("the ACK carries no address")
    raw_time = ack.option(Option.LEASE_TIME)
    if raw_time is None:
        raise DhcpClientError("the ACK carries no lease time (option 51)")
    seconds = decode_u32(raw_time)
    if seconds == 0:
        raise DhcpClientError("the lease time is 0")
    server = ack.server_id or fallback_server
    if server is None:
        raise DhcpClientError("the ACK names no server (option 54)")
    t1, t2 = _renewal_times(ack, seconds)
    router = ack.option(Option.ROUTER)
    dns = ack.option(Option.DNS)
    return Lease(
        address=ack.yiaddr,
        prefix=_prefix(ack),
        server=server,
        lease_seconds=seconds,
        t1=t1,
        t2=t2,
        obtained=now,
        router=None if router is None else _addresses(router, Option.ROUTER)[0],
        dns=() if dns is None else _addresses(dns, Option.DNS),
        boot_server=boot_server_from(ack, identity, via="lease"),
        vlan=vlan_from(ack, identity),
    )


def boot_server_from(
    packet: DhcpPacket, identity: ClientIdentity, *, via: str
) -> BootServer | None:
    """`CustomAndDefault`: the custom option (160/161) if usable, else option 66 (phones.md 1.2)."""
    for code in (identity.custom_option, Option.TFTP_SERVER.value):
        value = packet.option(code)
        if value is None:
            continue
        url = boot_server_url(value)
        if url is not None:
            return BootServer(url=url, option=code, via=via)
    return None


def boot_server_url(value: bytes) -> str | None:
    """A boot-server option as a URL; a bare host or address means TFTP (phones.md 1.2).

    None for a value no phone could use: too long, not ASCII, spaces or
    backslashes (phones.md 2), or a scheme the phone does not speak.
    """
    if len(value) > MAX_BOOT_SERVER:
        return None
    try:
        text = value.rstrip(b"\x00").decode("ascii")
    except UnicodeDecodeError:
        return None
    if _URL_TEXT_RE.fullmatch(text) is None:
        return None
    if "://" in text:
        try:
            parts = urlsplit(text)
            usable = parts.scheme.lower() in BOOT_SCHEMES and bool(parts.hostname)
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            return None
        return text if usable and port_ok else None
    if _BARE_HOST_RE.fullmatch(text) is None:
        return None
    return f"tftp://{text}" if "/" in text else f"tftp://{text}/"


def vlan_from(packet: DhcpPacket, identity: ClientIdentity) -> int | None:
    """The first VLAN option, in the phone's order, holding a usable `VLAN-A=<id>;`."""
    for code in identity.vlan_options:
        value = packet.option(code)
        if value is None:
            continue
        vlan = parse_vlan(value)
        if vlan is not None:
            return vlan
    return None


def parse_vlan(value: bytes) -> int | None:
    """`VLAN-A=<id>[+<id>...];` -> the first id, or None when there is no usable one.

    The vendor guides: the string starts with `VLAN-A=`, ends at `;`
    (anything after it is ignored), and each id is decimal, hex `0x..` or
    octal `0..`; an id outside 1..4094 (IEEE 802.1Q) is not usable.
    """
    match = _VLAN_RE.match(value[:MAX_BOOT_SERVER])
    if match is None:
        return None
    first = match[1].split(b"+", 1)[0].decode("ascii").lower()
    try:
        if first.startswith("0x"):
            vlan = int(first[2:], 16)
        elif first.startswith("0") and len(first) > 1:
            vlan = int(first[1:], 8)
        else:
            vlan = int(first, 10)
    except ValueError:
        return None
    return vlan if 1 <= vlan <= 4094 else None


def _renewal_times(ack: DhcpPacket, seconds: int) -> tuple[int, int]:
    """T1 and T2 (options 58, 59), else 0.5 and 0.875 of the lease (RFC 2131 4.4.5)."""
    t1 = seconds // 2
    t2 = seconds * 7 // 8
    raw1 = ack.option(Option.RENEWAL_TIME)
    raw2 = ack.option(Option.REBINDING_TIME)
    given1 = t1 if raw1 is None else decode_u32(raw1)
    given2 = t2 if raw2 is None else decode_u32(raw2)
    if 0 < given1 < given2 < seconds:
        return given1, given2
    return t1, t2


def _prefix(ack: DhcpPacket) -> int:
    """Option 1 as a prefix length; without it, the address's class (RFC 2131 4.4.1 leaves it)."""
    raw = ack.option(Option.SUBNET_MASK)
    if raw is None:
        first = ack.yiaddr.packed[0]
        return 8 if first < 128 else 16 if first < 192 else 24
    mask = int(decode_ip(raw))
    prefix = bin(mask).count("1")
    if mask != (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF or prefix == 0:
        raise DhcpClientError("the subnet mask (option 1) is not a contiguous mask")
    return prefix


def _addresses(value: bytes, code: int) -> tuple[IPv4Address, ...]:
    if not value or len(value) % 4:
        raise DhcpClientError(f"option {code} is not a list of IPv4 addresses")
    return tuple(IPv4Address(value[at : at + 4]) for at in range(0, len(value), 4))
