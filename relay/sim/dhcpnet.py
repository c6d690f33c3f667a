"""The DHCP link of a simulated fleet: one UDP socket on port 68 for every phone.

The fleet runs inside a network namespace (`ip netns exec NS relay sim
--dhcp IFACE ...`), as root there, so that its DHCP traffic crosses a real
Ethernet link (a veth pair) to the DHCP server, as a real phone's would.
Each phone's `DhcpClient` (relay.sim.dhcpclient) runs in its own task; this
adapter sends what the clients ask, hands each reply to the client whose
chaddr it carries, and puts each leased address on the interface so that
the phone's provisioning connections, REST API and SIP listener can use it.

Decisions:
- a plain UDP socket rather than a raw one: bound to 0.0.0.0:68 with
  SO_BINDTODEVICE and SO_BROADCAST (relay.frontend.dhcp.open_socket), it
  receives the broadcast replies and the ones unicast to a leased address;
  its broadcasts leave with source 0.0.0.0 until the first phone holds an
  address, with that address afterwards, which servers do not look at
  (RFC 2131 section 4.1 addresses replies by the packet's fields);
- addresses are added with `ip addr replace ADDR/PREFIX dev IFACE`
  (iproute2, idempotent) and `promote_secondaries` is switched on for the
  interface, so that removing the first phone's address does not take every
  other phone's (secondary) address of the subnet with it;
- replies are parsed here (relay.proto.dhcp.packet.parse: capped, one error
  type); bad datagrams are counted, never logged one by one, and a phone's
  inbox holds at most `INBOX` replies, the rest are dropped as if lost;
- `aclose` releases every lease (DHCPRELEASE) and removes the addresses.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from pathlib import Path

from relay.frontend.dhcp import open_socket
from relay.logs import event
from relay.proto.dhcp.packet import CLIENT_PORT, SERVER_PORT, DhcpError, DhcpPacket, build, parse
from relay.sim.dhcpclient import (
    Bound,
    ClientIdentity,
    DhcpClient,
    Failed,
    Lease,
    Lost,
    Ready,
    Step,
    Timing,
)

log = logging.getLogger("relay.sim.dhcp")

INBOX = 16
_IP_TIMEOUT = 10.0
# Linux interface names: at most 15 bytes (IFNAMSIZ - 1), no "/" or spaces.
_INTERFACE_RE = re.compile(r"[A-Za-z0-9_.\-]{1,15}")


class NoLease(Exception):
    """DHCP gave the phone no usable lease; the message says why."""


@dataclass(slots=True)
class DhcpCounters:
    """What the link has seen, for reports and tests."""

    sent: int = 0
    received: int = 0
    bad_packets: int = 0
    unmatched: int = 0
    dropped: int = 0


@dataclass(eq=False, slots=True)
class _Phone:
    client: DhcpClient
    on_lost: Callable[[str], None]
    ready: asyncio.Future[Lease]
    inbox: asyncio.Queue[DhcpPacket] = field(default_factory=lambda: asyncio.Queue(INBOX))
    task: asyncio.Task[None] | None = None


class DhcpNet:
    """DHCP for many phones on `interface`; `obtain()` one lease per boot, `aclose()` at the end.

    The socket opens at the first `obtain`. `server_port` and `client_port`
    are the standard 67 and 68 except in tests.
    """

    def __init__(
        self,
        interface: str,
        *,
        timing: Timing | None = None,
        server_port: int = SERVER_PORT,
        client_port: int = CLIENT_PORT,
    ) -> None:
        if _INTERFACE_RE.fullmatch(interface) is None or interface in (".", ".."):
            raise ValueError(f"{interface!r} is not a network interface name")
        self.interface = interface
        self.timing = timing if timing is not None else Timing()
        self.counters = DhcpCounters()
        self._server_port = server_port
        self._client_port = client_port
        self._transport: asyncio.DatagramTransport | None = None
        self._closed: asyncio.Future[None] | None = None
        self._opening: asyncio.Lock | None = None
        self._phones: dict[str, _Phone] = {}
        self._addresses: dict[str, tuple[IPv4Address, int]] = {}

    async def obtain(
        self,
        identity: ClientIdentity,
        *,
        inform: bool,
        rng: random.Random,
        on_lost: Callable[[str], None],
    ) -> Lease:
        """Run DISCOVER..ACK (and INFORM) for one phone; its address is on the interface after.

        A phone that boots again starts over, suggesting its previous address;
        the lease is then kept and renewed in the background until it is
        lost (`on_lost(reason)` is called) or the link is closed. Raises
        `NoLease` when the client gave up.
        """
        try:
            await self._open()
        except OSError as exc:
            raise NoLease(f"cannot use interface {self.interface}: {exc}") from None
        mac = identity.mac
        await self._forget(mac)
        previous = self._addresses.get(mac)
        client = DhcpClient(
            identity,
            inform=inform,
            rng=rng,
            timing=self.timing,
            previous=None if previous is None else previous[0],
        )
        loop = asyncio.get_running_loop()
        phone = _Phone(client=client, on_lost=on_lost, ready=loop.create_future())
        self._phones[mac] = phone
        phone.task = asyncio.create_task(self._run(phone), name=f"dhcp-{mac}")
        return await asyncio.shield(phone.ready)

    async def aclose(self) -> None:
        """Release every lease, remove the addresses, close the socket."""
        phones, self._phones = self._phones, {}
        for phone in phones.values():
            await self._stop(phone)
            self._send(phone.client.release())
        for mac in list(self._addresses):
            await self._unconfigure(mac)
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
            if self._closed is not None:
                await self._closed

    async def __aenter__(self) -> DhcpNet:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    # The socket --------------------------------------------------------------------

    async def _open(self) -> None:
        if self._opening is None:
            self._opening = asyncio.Lock()
        async with self._opening:
            if self._transport is not None:
                return
            _promote_secondaries(self.interface)
            sock = open_socket(self.interface, "0.0.0.0", self._client_port)  # noqa: S104
            loop = asyncio.get_running_loop()
            self._closed = loop.create_future()
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Protocol(self), sock=sock
                )
            except BaseException:
                sock.close()
                raise
            self._transport = transport
            event(log, "sim_dhcp_listening", interface=self.interface, port=self._client_port)

    def _on_datagram(self, data: bytes) -> None:
        self.counters.received += 1
        try:
            packet = parse(data)
        except DhcpError:
            self.counters.bad_packets += 1
            return
        mac = packet.mac
        phone = None if mac is None else self._phones.get(mac)
        if phone is None:
            self.counters.unmatched += 1
            return
        try:
            phone.inbox.put_nowait(packet)
        except asyncio.QueueFull:
            self.counters.dropped += 1

    def _send(self, step: Step) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        for send in step.sends:
            transport.sendto(build(send.packet), (str(send.destination), self._server_port))
            self.counters.sent += 1

    # One phone ---------------------------------------------------------------------

    async def _run(self, phone: _Phone) -> None:
        """Drive one client until it stops: replies as they come, ticks at its deadlines."""
        client = phone.client
        loop = asyncio.get_running_loop()
        try:
            await self._apply(phone, client.start(loop.time()))
            while client.deadline is not None:
                wait = max(0.0, client.deadline - loop.time())
                try:
                    packet = await asyncio.wait_for(phone.inbox.get(), wait)
                except TimeoutError:
                    step = client.tick(loop.time())
                else:
                    step = client.receive(packet, loop.time())
                await self._apply(phone, step)
        except (OSError, DhcpError) as exc:
            # An address that could not be configured, a packet that could not be built.
            event(log, "sim_dhcp_failed", logging.ERROR, mac=client.identity.mac, error=str(exc))
            if not phone.ready.done():
                phone.ready.set_exception(NoLease(f"DHCP on {self.interface}: {exc}"))
        finally:
            if not phone.ready.done():
                phone.ready.set_exception(NoLease("the DHCP link was closed"))

    async def _apply(self, phone: _Phone, step: Step) -> None:
        """Events first (an INFORM's answer comes to the address configured for it), then sends."""
        mac = phone.client.identity.mac
        for happened in step.events:
            if isinstance(happened, Bound):
                await self._configure(mac, happened.lease)
            elif isinstance(happened, Ready):
                if not phone.ready.done():
                    phone.ready.set_result(happened.lease)
                event(
                    log,
                    "sim_dhcp_ready",
                    logging.DEBUG,
                    mac=mac,
                    address=str(happened.lease.address),
                    boot_option=None
                    if happened.lease.boot_server is None
                    else happened.lease.boot_server.option,
                )
            elif isinstance(happened, Lost):
                await self._unconfigure(mac)
                event(log, "sim_dhcp_lost", logging.WARNING, mac=mac, reason=happened.reason)
                phone.on_lost(happened.reason)
            elif isinstance(happened, Failed) and not phone.ready.done():
                phone.ready.set_exception(NoLease(happened.reason))
        self._send(step)

    async def _forget(self, mac: str) -> None:
        """A phone booting again drops its previous conversation (its address stays for now)."""
        phone = self._phones.pop(mac, None)
        if phone is not None:
            await self._stop(phone)

    @staticmethod
    async def _stop(phone: _Phone) -> None:
        task = phone.task
        if task is not None and not task.done():
            task.cancel()
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)
        if not phone.ready.done():
            phone.ready.set_exception(NoLease("the DHCP link was closed"))

    # Interface addresses -----------------------------------------------------------

    async def _configure(self, mac: str, lease: Lease) -> None:
        previous = self._addresses.get(mac)
        wanted = (lease.address, lease.prefix)
        if previous == wanted:
            return
        if previous is not None:
            await self._unconfigure(mac)
        await _ip("addr", "replace", f"{lease.address}/{lease.prefix}", "dev", self.interface)
        self._addresses[mac] = wanted

    async def _unconfigure(self, mac: str) -> None:
        held = self._addresses.pop(mac, None)
        if held is None:
            return
        address, prefix = held
        try:
            await _ip("addr", "del", f"{address}/{prefix}", "dev", self.interface)
        except OSError as exc:
            event(log, "sim_dhcp_unconfigure_failed", logging.WARNING, mac=mac, error=str(exc))


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, net: DhcpNet) -> None:
        self._net = net

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self._net._on_datagram(data)

    def error_received(self, exc: Exception) -> None:
        event(log, "sim_dhcp_icmp", logging.DEBUG, interface=self._net.interface, error=repr(exc))

    def connection_lost(self, exc: Exception | None) -> None:
        closed = self._net._closed
        if closed is not None and not closed.done():
            closed.set_result(None)


async def _ip(*argv: str) -> None:
    """One iproute2 command; OSError with its message when it fails."""
    process = await asyncio.create_subprocess_exec(
        "ip",
        *argv,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(_IP_TIMEOUT):
            _, error = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.communicate()
        raise OSError(f"ip {' '.join(argv)} did not finish") from None
    if process.returncode != 0:
        raise OSError(f"ip {' '.join(argv)}: {error.decode(errors='replace').strip()}")


def _promote_secondaries(interface: str) -> None:
    """Keep the other phones' addresses when the subnet's first one is removed (ip-address(8))."""
    path = Path("/proc/sys/net/ipv4/conf") / interface / "promote_secondaries"
    try:
        path.write_text("1\n")
    except OSError as exc:
        event(log, "sim_dhcp_promote_secondaries_failed", logging.WARNING, error=str(exc))
