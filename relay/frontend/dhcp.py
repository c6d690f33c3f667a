"""The DHCP server for one interface: an asyncio adapter around relay/proto/dhcp.

Two modes (phones.md section 1): `lease` runs the lease engine
(`LeaseTable`, RFC 2131 section 4.3) over the interface's pools, with every
lease change written to a `LeaseStore` before the reply leaves (RFC 2131
section 3.1 step 4: the binding is committed to persistent storage, then the
DHCPACK is sent); `inform` answers only phones' DHCPINFORM with the boot
options (`InformResponder`, section 4.3.5) on a network whose DHCP server is
someone else's, and hands out no address.

One UDP socket on 0.0.0.0:67, because clients without an address broadcast
to 255.255.255.255 (RFC 2131 section 4.1) and only a socket bound to the
wildcard address receives those; SO_BINDTODEVICE ties it to the one
interface, so a request is answered by the server configured for the link it
came from, and replies broadcast to 255.255.255.255 leave by that link.
SO_BROADCAST allows those replies; SO_REUSEADDR lets one server per
interface share port 67.

Decisions:
- a reply RFC 2131 section 4.1 addresses to yiaddr at chaddr (`link_unicast`:
  a client with no address yet, broadcast bit clear) is broadcast to
  255.255.255.255:68 instead, as the same section allows, rather than
  writing to the ARP table, which needs CAP_NET_ADMIN;
- one pass per readable socket: read every waiting datagram (up to
  `DRAIN`) and decide every one that is not a DISCOVER; then decide at most
  `BATCH` DISCOVERs, newest first, shedding the stale ones (overload
  triage, relay/proto/dhcp/backlog.py). DISCOVERs left over wait for the
  next pass, which reads the socket again first, so REQUESTs never queue
  behind a DISCOVER flood;
- a reply that grants a lease (an ACK) leaves only once the lease change is
  committed (RFC 2131 section 3.1 step 4: the binding is committed, then
  the DHCPACK sent); a reply that grants nothing (OFFER, NAK, the ACK of an
  INFORM) leaves at once, since no client relies on it for a lease a crash
  could take back;
- group commit: the lease changes of a pass's urgent datagrams are
  committed in ONE transaction (one fsync with `dhcp_durability = "fsync"`)
  before their ACKs leave, in the order decided. One fsync per ACK capped
  the server at a few hundred leases per second (bench/RESULTS.md), and a
  phone fleet booting after a power cut arrives in bursts, which is when
  passes fill;
- the commit is synchronous, on the loop. Two worker threads were measured
  and lost (bench/RESULTS.md): one that took every batch, inserts and
  commit, and one that ran only the COMMIT while the loop went on
  deciding. A thread in this process needs the GIL back from a loop that
  is busy, exactly under load, and waits up to the switch interval (5 ms)
  each of the many times it does: commits took up to a second and the
  ACKs came too late, where the fsync itself took 1.5 ms;
- a commit that fails is logged and its ACKs are not sent: the client
  retries (RFC 2131 section 4.1) and the next attempt stores the lease again;
- the lease log is compacted at start, before the table is restored from it,
  and after a commit once the store says the log has doubled
  (relay/frontend/leasestore.py); a failed compaction is logged and changes
  nothing, since it is one transaction;
- a packet that fails to parse (`DhcpError`) is counted and logged at most
  once per source address per minute, so a noisy or hostile host cannot
  flood the log; any other exception of one datagram is contained and
  logged, and the server carries on; a reply that cannot be built or sent
  is counted (the client retries).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from relay.frontend.leasestore import LeaseStore
from relay.logs import event
from relay.proto.dhcp.backlog import DiscoverBacklog
from relay.proto.dhcp.inform import InformResponder
from relay.proto.dhcp.leases import LeaseConfig, LeaseEvent, LeaseTable, Outcome
from relay.proto.dhcp.packet import (
    CLIENT_PORT,
    SERVER_PORT,
    DhcpError,
    DhcpPacket,
    MessageType,
    build,
    parse,
    peek_message_type,
)
from relay.proto.dhcp.reply import LIMITED_BROADCAST, Reply

log = logging.getLogger("relay.dhcp")

Mode = Literal["lease", "inform"]
# A noisy source is logged at most once in this many seconds.
LOG_INTERVAL = 60.0
# At most this many DISCOVERs are decided per pass, after the other datagrams
# (a few milliseconds): the REQUESTs that arrive meanwhile wait for no longer.
BATCH = 128
# At most this many datagrams are read per pass (a few milliseconds of receiving).
DRAIN = 512
# Larger than any datagram parse() accepts, so an oversized one is read whole and refused.
MAX_DATAGRAM = 2048
# The receive buffer asked for (the kernel caps it at net.core.rmem_max): room
# for about a thousand datagrams, a burst of phones booting together.
RECEIVE_BUFFER = 1 << 20
# Bound on the sources remembered for rate limiting: spoofed source
# addresses must not grow it without limit; past it, errors are only counted.
_MAX_SOURCES = 4096
_DISCOVER = int(MessageType.DISCOVER)

# A reply ready to send: its bytes and destination.
_Ready = tuple[bytes, tuple[str, int]]


class DhcpPrivilegeError(PermissionError):
    """The socket setup needs a capability the process does not have."""


@dataclass(slots=True)
class DhcpCounters:
    """What the server has seen since start, for status pages and tests.

    `shed` counts the DISCOVERs dropped unanswered by the overload triage.
    """

    received: int = 0
    replied: int = 0
    bad_packets: int = 0
    store_failures: int = 0
    send_failures: int = 0
    crashes: int = 0
    shed: int = 0


class DhcpServer:
    """Serve DHCP on one interface; `async with` or start()/close().

    `config` is the interface's `LeaseConfig` in lease mode (then `store`
    is required) and its `InformResponder` in inform mode. `clock` gives Unix
    seconds: lease ends are persisted, so they are wall-clock times. With
    `owns_store`, close() closes the store too. `backlog` holds the DISCOVERs
    waiting to be decided (its defaults suit a real network).
    """

    def __init__(
        self,
        interface: str,
        mode: Mode,
        config: LeaseConfig | InformResponder,
        store: LeaseStore | None = None,
        *,
        host: str = "0.0.0.0",  # noqa: S104 - broadcasts reach only the wildcard address
        port: int = SERVER_PORT,
        clock: Callable[[], float] = time.time,
        owns_store: bool = False,
        backlog: DiscoverBacklog | None = None,
    ) -> None:
        if mode not in ("lease", "inform"):
            raise ValueError(f"DHCP mode {mode!r} is neither 'lease' nor 'inform'")
        if mode == "lease" and not (isinstance(config, LeaseConfig) and store is not None):
            raise ValueError("lease mode needs a LeaseConfig and a LeaseStore")
        if mode == "inform" and not (isinstance(config, InformResponder) and store is None):
            raise ValueError("inform mode needs an InformResponder and stores nothing")
        self.interface = interface
        self.mode = mode
        self.counters = DhcpCounters()
        self._config = config
        self._store = store
        self._host = host
        self._port = port
        self._clock = clock
        self._owns_store = owns_store
        self._backlog = DiscoverBacklog() if backlog is None else backlog
        self._table: LeaseTable | None = None
        self._sock: socket.socket | None = None
        self._pass_scheduled = False
        self._logged: dict[str, float] = {}

    async def __aenter__(self) -> DhcpServer:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Compact the lease log, restore the lease table from it, then open the socket."""
        if isinstance(self._config, LeaseConfig):
            assert self._store is not None
            now = self._clock()
            rows = self._store.rows
            kept = self._store.compact(now)
            self._table = LeaseTable.restore(self._config, self._store.load(), now)
            event(
                log,
                "dhcp_leases_restored",
                interface=self.interface,
                log_rows=rows,
                kept_rows=kept,
                leases=len(self._table.leases(now)),
                conflicts=len(self._table.conflicts(now)),
                durability=self._store.durability,
            )
        sock = open_socket(self.interface, self._host, self._port)
        try:
            asyncio.get_running_loop().add_reader(sock.fileno(), self._serve)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        event(log, "dhcp_listening", interface=self.interface, mode=self.mode, port=self.port)

    @property
    def port(self) -> int:
        """The bound UDP port (port 0 picks a free one)."""
        if self._sock is None:
            raise RuntimeError("the DHCP server is not started")
        return int(self._sock.getsockname()[1])

    async def close(self) -> None:
        """Stop reading and close the socket; then the store, if it was handed over."""
        sock, self._sock = self._sock, None
        if sock is not None:
            asyncio.get_running_loop().remove_reader(sock.fileno())
            sock.close()
        if self._owns_store and self._store is not None:
            self._store.close()

    def _serve(self) -> None:
        """One pass: read what waits; decide, store and answer the urgent; then some DISCOVERs."""
        self._pass_scheduled = False
        sock = self._sock
        if sock is None:
            return
        self._answer(sock, self._receive(sock))
        # An OFFER grants nothing, so the DISCOVERs' replies need no commit.
        self._answer(sock, self._backlog.take(BATCH, time.monotonic()))
        self.counters.shed = self._backlog.shed
        if len(self._backlog) and not self._pass_scheduled:
            # The DISCOVERs left over: another pass, after whatever else the loop has to do.
            self._pass_scheduled = True
            asyncio.get_running_loop().call_soon(self._serve)

    def _answer(self, sock: socket.socket, datagrams: list[tuple[bytes, str]]) -> None:
        """Decide `datagrams`; send the replies that grant nothing, commit for the others."""
        events: list[LeaseEvent] = []
        granting: list[_Ready] = []
        for data, source in datagrams:
            outcome = self._on_datagram(data, source)
            if outcome is None:
                continue
            # RELEASE and DECLINE change leases without a reply: stored all the same.
            events.extend(outcome.events)
            if outcome.reply is not None:
                encoded = self._encode(outcome.reply)
                if encoded is None:
                    continue
                if outcome.events:
                    granting.append(encoded)
                else:
                    self._send(sock, *encoded)
        if events and self._persist(events):
            for data, address in granting:
                self._send(sock, data, address)
            self._compact_if_due()

    def _receive(self, sock: socket.socket) -> list[tuple[bytes, str]]:
        """Read up to DRAIN datagrams; DISCOVERs go to the backlog, the rest are returned."""
        urgent: list[tuple[bytes, str]] = []
        now = time.monotonic()
        for _ in range(DRAIN):
            try:
                data, address = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                # An ICMP error for an earlier reply (Linux reports it on the next receive).
                event(log, "dhcp_icmp", logging.DEBUG, interface=self.interface, error=repr(exc))
                continue
            self.counters.received += 1
            if peek_message_type(data) == _DISCOVER:
                self._backlog.add(data, address[0], now)
            else:
                urgent.append((data, address[0]))
        return urgent

    def _on_datagram(self, data: bytes, source: str) -> Outcome | None:
        try:
            return self._handle(parse(data))
        except DhcpError as exc:
            self.counters.bad_packets += 1
            self._log_bad(source, exc)
        except Exception as exc:
            self.counters.crashes += 1
            event(
                log,
                "dhcp_datagram_failed",
                logging.ERROR,
                interface=self.interface,
                source=source,
                error=repr(exc),
            )
        return None

    def _persist(self, events: list[LeaseEvent]) -> bool:
        """Append one batch's events in one transaction; False (and logged) if that failed."""
        assert self._store is not None
        try:
            self._store.append(events)
        except Exception as exc:
            # sqlite3 and OS errors: the ACKs are not sent, so the clients'
            # retries find the leases in the table and store them again.
            self.counters.store_failures += 1
            event(
                log,
                "dhcp_store_failed",
                logging.ERROR,
                interface=self.interface,
                events=len(events),
                error=repr(exc),
            )
            return False
        return True

    def _compact_if_due(self) -> None:
        assert self._store is not None
        if not self._store.compaction_due:
            return
        rows = self._store.rows
        try:
            kept = self._store.compact(self._clock())
        except Exception as exc:
            self.counters.store_failures += 1
            event(
                log,
                "dhcp_compaction_failed",
                logging.ERROR,
                interface=self.interface,
                error=repr(exc),
            )
            return
        event(log, "dhcp_log_compacted", interface=self.interface, log_rows=rows, kept_rows=kept)

    def _handle(self, packet: DhcpPacket) -> Outcome:
        """The lease engine's outcome, or the inform responder's reply as one."""
        if self._table is not None:
            return self._table.handle(packet, self._clock())
        assert isinstance(self._config, InformResponder)
        return Outcome(self._config.handle(packet))

    def _encode(self, reply: Reply) -> tuple[bytes, tuple[str, int]] | None:
        """The reply's bytes and destination; None (counted) when it cannot be built."""
        ip, port = reply.ip, reply.port
        if reply.link_unicast:
            # RFC 2131 section 4.1: "If unicasting is not possible, the
            # message MAY be sent as an IP broadcast using an IP broadcast
            # address (preferably 0xffffffff) as the IP destination address".
            ip, port = LIMITED_BROADCAST, CLIENT_PORT
        try:
            return build(reply.packet), (socket.inet_ntoa(ip.packed), port)
        except DhcpError as exc:
            self.counters.send_failures += 1
            event(log, "dhcp_send_failed", logging.DEBUG, interface=self.interface, error=repr(exc))
            return None

    def _send(self, sock: socket.socket, data: bytes, address: tuple[str, int]) -> None:
        try:
            sock.sendto(data, address)
        except OSError as exc:
            # A full socket buffer or an unreachable relay: the client retries.
            self.counters.send_failures += 1
            event(log, "dhcp_send_failed", logging.DEBUG, interface=self.interface, error=repr(exc))
            return
        self.counters.replied += 1

    def _log_bad(self, source: str, exc: DhcpError) -> None:
        now = time.monotonic()
        last = self._logged.get(source)
        if last is not None and now - last < LOG_INTERVAL:
            return
        if last is None and len(self._logged) >= _MAX_SOURCES:
            self._logged = {s: t for s, t in self._logged.items() if now - t < LOG_INTERVAL}
            if len(self._logged) >= _MAX_SOURCES:
                return
        self._logged[source] = now
        event(
            log,
            "dhcp_bad_packet",
            logging.WARNING,
            interface=self.interface,
            source=source,
            reason=str(exc),
            bad_packets=self.counters.bad_packets,
        )


def open_socket(interface: str, host: str, port: int) -> socket.socket:
    """A non-blocking UDP socket on host:port, tied to `interface`, allowed to broadcast.

    EPERM/EACCES are turned into a `DhcpPrivilegeError` naming the capability:
    SO_BINDTODEVICE needs CAP_NET_RAW (socket(7)) and ports below 1024 need
    CAP_NET_BIND_SERVICE (capabilities(7)).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, interface.encode())
        except PermissionError as exc:
            raise DhcpPrivilegeError(
                exc.errno,
                f"binding the DHCP socket to interface {interface} needs CAP_NET_RAW "
                "(SO_BINDTODEVICE, socket(7))",
            ) from exc
        except OSError as exc:
            if exc.errno != errno.ENODEV:
                raise
            raise OSError(exc.errno, f"no network interface named {interface!r}") from exc
        try:
            sock.bind((host, port))
        except PermissionError as exc:
            raise DhcpPrivilegeError(
                exc.errno,
                f"binding UDP port {port} needs CAP_NET_BIND_SERVICE (ports below 1024)",
            ) from exc
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock
