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
- events are persisted synchronously in the datagram callback: each append
  is one small SQLite transaction, DHCP traffic is a few packets per phone
  per lease, and a synchronous write keeps the replies of concurrent
  requests in the order the table decided them;
- a reply whose events could not be stored is not sent: the client retries
  (RFC 2131 section 4.1) and the next attempt stores them again;
- a packet that fails to parse or build (`DhcpError`) is counted and logged
  at most once per source address per minute, so a noisy or hostile host
  cannot flood the log; any other exception of one datagram is contained and
  logged, and the server carries on.
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
from relay.proto.dhcp.inform import InformResponder
from relay.proto.dhcp.leases import LeaseConfig, LeaseTable, Outcome
from relay.proto.dhcp.packet import (
    CLIENT_PORT,
    SERVER_PORT,
    DhcpError,
    DhcpPacket,
    build,
    parse,
)
from relay.proto.dhcp.reply import LIMITED_BROADCAST, Reply

log = logging.getLogger("relay.dhcp")

Mode = Literal["lease", "inform"]
# A noisy source is logged at most once in this many seconds.
LOG_INTERVAL = 60.0
# Bound on the sources remembered for rate limiting: spoofed source
# addresses must not grow it without limit; past it, errors are only counted.
_MAX_SOURCES = 4096


class DhcpPrivilegeError(PermissionError):
    """The socket setup needs a capability the process does not have."""


@dataclass(slots=True)
class DhcpCounters:
    """What the server has seen since start, for status pages and tests."""

    received: int = 0
    replied: int = 0
    bad_packets: int = 0
    store_failures: int = 0
    crashes: int = 0


class DhcpServer:
    """Serve DHCP on one interface; `async with` or start()/close().

    `config` is the interface's `LeaseConfig` in lease mode (then `store`
    is required) and its `InformResponder` in inform mode. `clock` gives Unix
    seconds: lease ends are persisted, so they are wall-clock times.
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
        self._table: LeaseTable | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._closed: asyncio.Future[None] | None = None
        self._logged: dict[str, float] = {}

    async def __aenter__(self) -> DhcpServer:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Restore the lease table from the store, then open the socket."""
        if isinstance(self._config, LeaseConfig):
            assert self._store is not None
            self._table = LeaseTable.restore(self._config, self._store.load(), self._clock())
        sock = open_socket(self.interface, self._host, self._port)
        loop = asyncio.get_running_loop()
        self._closed = loop.create_future()
        try:
            transport, _ = await loop.create_datagram_endpoint(lambda: _Protocol(self), sock=sock)
        except BaseException:
            sock.close()
            raise
        self._transport = transport
        event(log, "dhcp_listening", interface=self.interface, mode=self.mode, port=self.port)

    @property
    def port(self) -> int:
        """The bound UDP port (port 0 picks a free one)."""
        if self._transport is None:
            raise RuntimeError("the DHCP server is not started")
        return int(self._transport.get_extra_info("sockname")[1])

    async def close(self) -> None:
        """Close the socket and wait until the loop has released it."""
        transport, self._transport = self._transport, None
        if transport is None:
            return
        transport.close()
        if self._closed is not None:
            await self._closed

    def _on_datagram(self, data: bytes, source: str) -> None:
        self.counters.received += 1
        try:
            packet = parse(data)
            outcome = self._handle(packet)
            if outcome.reply is None:
                return
            if outcome.events:
                assert self._store is not None
                self._store.append(outcome.events)
            self._send(outcome.reply)
        except DhcpError as exc:
            self.counters.bad_packets += 1
            self._log_bad(source, exc)
        except Exception as exc:
            # sqlite3 and OS errors from the store land here: the reply is not
            # sent, so the client's retry finds the lease and stores it again.
            self.counters.crashes += 1
            event(
                log,
                "dhcp_datagram_failed",
                logging.ERROR,
                interface=self.interface,
                source=source,
                error=repr(exc),
            )

    def _handle(self, packet: DhcpPacket) -> Outcome:
        """The lease engine's outcome, or the inform responder's reply as one."""
        if self._table is not None:
            return self._table.handle(packet, self._clock())
        assert isinstance(self._config, InformResponder)
        return Outcome(self._config.handle(packet))

    def _send(self, reply: Reply) -> None:
        if self._transport is None or self._transport.is_closing():
            return
        ip, port = reply.ip, reply.port
        if reply.link_unicast:
            # RFC 2131 section 4.1: "If unicasting is not possible, the
            # message MAY be sent as an IP broadcast using an IP broadcast
            # address (preferably 0xffffffff) as the IP destination address".
            ip, port = LIMITED_BROADCAST, CLIENT_PORT
        self._transport.sendto(build(reply.packet), (str(ip), port))
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


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, server: DhcpServer) -> None:
        self._server = server

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._server._on_datagram(data, str(addr[0]))

    def error_received(self, exc: Exception) -> None:
        # An ICMP error for an earlier reply; the socket carries on.
        event(log, "dhcp_icmp", logging.DEBUG, interface=self._server.interface, error=repr(exc))

    def connection_lost(self, exc: Exception | None) -> None:
        closed = self._server._closed
        if closed is not None and not closed.done():
            closed.set_result(None)


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
