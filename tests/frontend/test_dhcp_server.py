"""The lease store, and the DHCP server against real clients across a veth pair.

The namespace tests run busybox udhcpc inside a throw-away network namespace
(tests/frontend/netns.py) against the server in this process, bound to the
root-side end of the link. They need root and `ip netns`; a missing client
program skips its test, naming the package that provides it (busybox).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import shutil
import socket
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from relay.frontend.dhcp import DhcpServer
from relay.frontend.leasestore import LeaseStore, LeaseStoreError
from relay.proto.dhcp.backlog import DiscoverBacklog
from relay.proto.dhcp.inform import InformResponder
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
from relay.proto.dhcp.options import BootOptions
from relay.proto.dhcp.packet import BOOTREQUEST, DhcpPacket, MessageType, build, parse
from tests.frontend.netns import HOST_ADDRESS, Link, unavailable, veth_namespace

SERVER = IPv4Address(HOST_ADDRESS)
PHONE_MAC = "0004f2a1b2c3"
RESERVED_MAC = "0004f2000007"
RESERVED_IP = IPv4Address("203.0.113.7")
OPTION66 = "203.0.113.1"
OPTION160 = "https://prov.example.com/vvx"
OPTION161 = "ftp://user:pass@prov.example.com/trio"
VLAN_ID = 20
VLAN_OPTION = 144
BOOT = BootOptions(
    option66=OPTION66,
    option160=OPTION160,
    option161=OPTION161,
    vlan_id=VLAN_ID,
    vlan_options=(VLAN_OPTION,),
    # udhcpc asks only for the options named with -O: the VLAN option is forced.
    forced=(VLAN_OPTION,),
)
POOL = Pool(
    subnet=IPv4Network("203.0.113.0/24"),
    first=IPv4Address("203.0.113.100"),
    last=IPv4Address("203.0.113.150"),
    lease_seconds=3600,
    boot=BOOT,
    reservations=(Reservation(RESERVED_MAC, RESERVED_IP),),
)
LEASES = LeaseConfig(server_ip=SERVER, pools=(POOL,))
CLIENT_TIMEOUT = 30.0

needs_netns = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))


def colons(mac: str) -> str:
    return ":".join(mac[i : i + 2] for i in range(0, 12, 2))


# The lease store ---------------------------------------------------------------


def test_store_loads_appended_events_oldest_first(tmp_path: Path) -> None:
    events: list[LeaseEvent] = [
        LeaseGranted(PHONE_MAC, IPv4Address("203.0.113.100"), 5000.0),
        LeaseReleased(PHONE_MAC, IPv4Address("203.0.113.100"), 1500.0),
        AddressDeclined(PHONE_MAC, IPv4Address("203.0.113.101"), 1600.0, 5200.0),
    ]
    with LeaseStore(tmp_path / "leases.sqlite3") as store:
        store.append(events[:2])
        store.append(events[2:])
        assert store.load() == events


def test_store_survives_a_restart_and_restores_the_lease_table(tmp_path: Path) -> None:
    path = tmp_path / "leases.sqlite3"
    granted = LeaseGranted(PHONE_MAC, IPv4Address("203.0.113.100"), 5000.0)
    with LeaseStore(path) as store:
        store.append([granted])
    with LeaseStore(path) as store:
        table = LeaseTable.restore(LEASES, store.load(), now=1000.0)
    assert [(lease.mac, lease.ip) for lease in table.leases(1000.0)] == [(PHONE_MAC, granted.ip)]


def test_store_journals_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "leases.sqlite3"
    with LeaseStore(path) as store:
        store.append([LeaseGranted(PHONE_MAC, IPv4Address("203.0.113.100"), 5000.0)])
        assert store._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        # 2 = FULL (https://sqlite.org/pragma.html#pragma_synchronous).
        assert store._db.execute("PRAGMA synchronous").fetchone() == (2,)


def test_store_refuses_a_row_with_a_bad_address(tmp_path: Path) -> None:
    path = tmp_path / "leases.sqlite3"
    LeaseStore(path).close()
    db = sqlite3.connect(path)
    with db:
        db.execute(
            "INSERT INTO lease_events (kind, mac, ip, at) VALUES ('granted', ?, 'nowhere', 1)",
            (PHONE_MAC,),
        )
    db.close()
    with LeaseStore(path) as store, pytest.raises(LeaseStoreError, match="nowhere"):
        store.load()


# The server without a link -------------------------------------------------------


def test_lease_mode_requires_a_store() -> None:
    with pytest.raises(ValueError, match="LeaseStore"):
        DhcpServer("lo", "lease", LEASES)


def test_unprivileged_port_67_names_cap_net_bind_service() -> None:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("needs setpriv (package util-linux) to drop privileges")
    code = (
        "import asyncio\n"
        "from relay.frontend.dhcp import DhcpServer\n"
        "from relay.proto.dhcp.inform import InformResponder\n"
        "from relay.proto.dhcp.options import BootOptions\n"
        "from ipaddress import IPv4Address\n"
        "r = InformResponder(IPv4Address('127.0.0.1'), BootOptions())\n"
        "asyncio.run(DhcpServer('lo', 'inform', r, host='127.0.0.1').start())\n"
    )
    argv = ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
    result = subprocess.run(
        [setpriv, *argv, "--bounding-set=-all", sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "DhcpPrivilegeError" in result.stderr
    assert "CAP_NET_BIND_SERVICE" in result.stderr


class LastSource(logging.Handler):
    """Collects the sources of `dhcp_bad_packet` lines; sets `seen` once `last` is logged."""

    def __init__(self, last: str) -> None:
        super().__init__()
        self.last = last
        self.sources: list[str] = []
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        fields = getattr(record, "fields", {})
        if record.getMessage() == "dhcp_bad_packet":
            self.sources.append(fields["source"])
            if fields["source"] == self.last:
                self.seen.set()


@pytest.mark.skipif(unavailable() is not None, reason="SO_BINDTODEVICE tests run as root")
async def test_bad_packets_are_counted_and_logged_once_per_source_per_minute() -> None:
    handler = LastSource("127.0.0.3")
    logger = logging.getLogger("relay.dhcp")
    logger.addHandler(handler)
    responder = InformResponder(IPv4Address("127.0.0.1"), BOOT)
    try:
        async with DhcpServer("lo", "inform", responder, host="127.0.0.1", port=0) as server:
            # Loopback delivers in order: the last source's line comes after the rest.
            for source in ("127.0.0.2", "127.0.0.2", "127.0.0.2", "127.0.0.3"):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.bind((source, 0))
                    sock.sendto(b"not a DHCP packet", ("127.0.0.1", server.port))
            await asyncio.wait_for(handler.seen.wait(), 5)
    finally:
        logger.removeHandler(handler)
    assert server.counters.bad_packets == 4
    assert handler.sources == ["127.0.0.2", "127.0.0.3"]


# Overload: a relay agent on loopback floods the server with DISCOVERs ---------------

LOOPBACK_SERVER = IPv4Address("127.0.0.1")
LOOPBACK_LEASES = LeaseConfig(
    server_ip=LOOPBACK_SERVER,
    pools=(
        Pool(
            IPv4Network("127.0.0.0/8"),
            IPv4Address("127.0.1.1"),
            IPv4Address("127.0.1.250"),
            lease_seconds=3600,
        ),
    ),
)
FLOOD = 150
needs_root = pytest.mark.skipif(
    unavailable() is not None, reason="SO_BINDTODEVICE and port 67 tests run as root"
)


class RelayAgent:
    """A BOOTP relay agent (RFC 1542) on a loopback address: sends requests, gets the replies.

    The server sends replies for relayed requests to giaddr, port 67 (RFC 2131
    section 4.1), so the agent listens there on an address of its own.
    """

    def __init__(self, server_port: int) -> None:
        self.giaddr = IPv4Address(f"127.{secrets.randbelow(200) + 2}.{secrets.randbelow(250)}.9")
        self.server = ("127.0.0.1", server_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.setblocking(False)
        self.sock.bind((str(self.giaddr), 67))

    def send(self, mac: str, kind: MessageType, xid: int, *options: tuple[int, bytes]) -> None:
        packet = DhcpPacket(
            op=BOOTREQUEST,
            xid=xid,
            chaddr=bytes.fromhex(mac),
            giaddr=self.giaddr,
            options=((53, bytes((kind,))), *options),
        )
        self.sock.sendto(build(packet), self.server)

    def request(self, mac: str, xid: int, ip: IPv4Address, kind: MessageType) -> None:
        """A REQUEST (SELECTING) or DECLINE of `ip`, offered by the server."""
        self.send(mac, kind, xid, (54, LOOPBACK_SERVER.packed), (50, ip.packed))

    async def reply(self) -> DhcpPacket:
        async with asyncio.timeout(CLIENT_TIMEOUT):
            data = await asyncio.get_running_loop().sock_recv(self.sock, 2048)
        return parse(data)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[DhcpServer, LeaseStore, RelayAgent]]:
    """A lease server on loopback (its backlog holds at most 8 DISCOVERs) and a relay agent."""
    with LeaseStore(tmp_path / "leases.sqlite") as store:
        server = DhcpServer(
            "lo", "lease", LOOPBACK_LEASES, store, host="127.0.0.1", port=0,
            backlog=DiscoverBacklog(capacity=8),
        )  # fmt: skip
        async with server:
            agent = RelayAgent(server.port)
            try:
                yield server, store, agent
            finally:
                agent.sock.close()


async def offered(agent: RelayAgent, mac: str = PHONE_MAC) -> IPv4Address:
    agent.send(mac, MessageType.DISCOVER, 1)
    offer = await agent.reply()
    assert offer.message_type == MessageType.OFFER
    return offer.yiaddr


def flood(agent: RelayAgent, count: int) -> None:
    """DISCOVERs from `count` random MACs, sent without yielding to the server."""
    for n in range(count):
        agent.send(f"02{secrets.token_hex(5)}", MessageType.DISCOVER, 1000 + n)


@needs_root
async def test_a_phone_completes_its_lease_first_under_a_discover_flood(
    tmp_path: Path,
) -> None:
    with LeaseStore(tmp_path / "leases.sqlite") as store:
        async with DhcpServer(
            "lo", "lease", LOOPBACK_LEASES, store, host="127.0.0.1", port=0
        ) as server:
            agent = RelayAgent(server.port)
            try:
                ip = await offered(agent)
                # The REQUEST arrives behind more DISCOVERs than one pass decides.
                flood(agent, FLOOD)
                agent.request(PHONE_MAC, 2, ip, MessageType.REQUEST)
                first = await agent.reply()
            finally:
                agent.sock.close()
        granted = [(e.mac, e.ip) for e in store.load() if isinstance(e, LeaseGranted)]

    assert (first.message_type, first.xid, first.yiaddr) == (MessageType.ACK, 2, ip)
    assert granted == [(PHONE_MAC, ip)]


@needs_root
async def test_discovers_past_the_backlog_are_shed_and_the_request_still_answered(
    served: tuple[DhcpServer, LeaseStore, RelayAgent],
) -> None:
    server, _store, agent = served
    ip = await offered(agent)

    flood(agent, 50)
    agent.request(PHONE_MAC, 2, ip, MessageType.REQUEST)
    replies = [await agent.reply() for _ in range(9)]

    assert replies[0].message_type == MessageType.ACK
    assert [r.message_type for r in replies[1:]] == [MessageType.OFFER] * 8
    assert [r.xid for r in replies[1:]] == list(range(1049, 1041, -1))
    assert server.counters.shed == 42


@needs_root
async def test_a_decline_is_stored_though_it_has_no_reply(
    served: tuple[DhcpServer, LeaseStore, RelayAgent],
) -> None:
    server, store, agent = served
    ip = await offered(agent)
    agent.request(PHONE_MAC, 2, ip, MessageType.REQUEST)
    assert (await agent.reply()).message_type == MessageType.ACK

    agent.request(PHONE_MAC, 3, ip, MessageType.DECLINE)
    # Decided no earlier than the DECLINE before it: its OFFER marks the DECLINE done.
    await offered(agent, RESERVED_MAC)

    assert [type(e) for e in store.load()] == [LeaseGranted, AddressDeclined]
    assert server.counters.received == 4


# Real clients across a veth pair ----------------------------------------------------


@pytest.fixture
def link(request: pytest.FixtureRequest) -> Iterator[Link]:
    """A fresh namespace; an indirect parameter, if any, is the client's MAC (12 hex digits)."""
    mac: str | None = getattr(request, "param", None)
    with veth_namespace(None if mac is None else colons(mac)) as created:
        yield created


def busybox() -> str:
    path = shutil.which("busybox")
    if path is None:
        pytest.skip("needs busybox udhcpc (package busybox)")
    return path


async def run(argv: list[str], env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env
    )
    try:
        async with asyncio.timeout(CLIENT_TIMEOUT):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.communicate()
        raise
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def udhcpc(link: Link, tmp_path: Path, tries: int = 5) -> dict[str, str] | None:
    """Run udhcpc once in the namespace; the environment its script saw on `bound`.

    None when it got no lease after `tries` DISCOVERs a second apart.
    """
    script = tmp_path / "udhcpc.sh"
    script.write_text('#!/bin/sh\nenv > "$RELAYTEST_OUT/$1.env"\n')
    script.chmod(0o755)
    command = link.command(
        busybox(), "udhcpc", "-i", link.ns_if, "-n", "-q", "-f", "-t", str(tries), "-T", "1",
        "-O", "66", "-O", "160", "-O", "161", "-s", str(script),
    )  # fmt: skip
    code, output = await run(command, env={"RELAYTEST_OUT": str(tmp_path), "PATH": "/usr/bin:/bin"})
    bound = tmp_path / "bound.env"
    if code != 0 and not bound.exists() and "no lease" in output:
        return None
    assert code == 0, output
    assert bound.exists(), output
    lines = bound.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


@needs_netns
async def test_udhcpc_gets_a_pool_address_and_the_boot_options(link: Link, tmp_path: Path) -> None:
    with LeaseStore(tmp_path / "leases.sqlite3") as store:
        async with DhcpServer(link.host_if, "lease", LEASES, store):
            env = await udhcpc(link, tmp_path)
            assert env is not None
        stored = store.load()
    ip = IPv4Address(env["ip"])
    assert POOL.first <= ip <= POOL.last
    assert env["serverid"] == HOST_ADDRESS
    assert env["tftp"] == OPTION66
    assert bytes.fromhex(env["opt160"]).decode() == OPTION160
    assert bytes.fromhex(env["opt161"]).decode() == OPTION161
    assert bytes.fromhex(env[f"opt{VLAN_OPTION}"]).decode() == f"VLAN-A={VLAN_ID};"
    assert [e.ip for e in stored if isinstance(e, LeaseGranted)] == [ip]


@needs_netns
@pytest.mark.parametrize("link", [RESERVED_MAC], indirect=True)
async def test_udhcpc_with_a_reserved_mac_gets_its_reserved_address(
    link: Link, tmp_path: Path
) -> None:
    with LeaseStore(tmp_path / "leases.sqlite3") as store:
        async with DhcpServer(link.host_if, "lease", LEASES, store):
            env = await udhcpc(link, tmp_path)
            assert env is not None
        stored = store.load()
    assert IPv4Address(env["ip"]) == RESERVED_IP
    assert [(e.mac, e.ip) for e in stored if isinstance(e, LeaseGranted)] == [
        (RESERVED_MAC, RESERVED_IP)
    ]


@needs_netns
async def test_restarted_server_gives_udhcpc_its_stored_address(link: Link, tmp_path: Path) -> None:
    path = tmp_path / "leases.sqlite3"
    with LeaseStore(path) as store:
        async with DhcpServer(link.host_if, "lease", LEASES, store):
            first = await udhcpc(link, tmp_path)
            assert first is not None
    with LeaseStore(path) as store:
        async with DhcpServer(link.host_if, "lease", LEASES, store):
            second = await udhcpc(link, tmp_path)
            assert second is not None
    assert first["ip"] == second["ip"]


# The INFORM is sent from inside the namespace by a plain UDP socket (the
# phone's address is configured there), and the reply's bytes printed back.
INFORM_CLIENT = """
import socket, sys
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    sock.bind((sys.argv[1], 68))
    sock.settimeout(10)
    sock.sendto(bytes.fromhex(sys.argv[3]), (sys.argv[2], 67))
    print(sock.recvfrom(1500)[0].hex())
"""
PHONE_IP = "203.0.113.50"


@needs_netns
@pytest.mark.parametrize("link", [PHONE_MAC], indirect=True)
async def test_inform_mode_answers_a_phone_inform_with_boot_options_and_no_address(
    link: Link,
) -> None:
    from scapy.layers.dhcp import BOOTP, DHCP

    await run(link.command("ip", "addr", "add", f"{PHONE_IP}/24", "dev", link.ns_if))
    inform = BOOTP(op=1, xid=0x5EED, ciaddr=PHONE_IP, chaddr=bytes.fromhex(PHONE_MAC)) / DHCP(
        options=[("message-type", "inform"), ("param_req_list", [1, 66, 160, 161]), "end"]
    )
    responder = InformResponder(SERVER, BOOT)
    async with DhcpServer(link.host_if, "inform", responder):
        argv = [sys.executable, "-c", INFORM_CLIENT, PHONE_IP, HOST_ADDRESS, bytes(inform).hex()]
        code, output = await run(link.command(*argv))
    assert code == 0, output
    reply = parse(bytes.fromhex(output.strip()))
    assert reply.message_type == MessageType.ACK
    assert reply.xid == 0x5EED
    assert reply.yiaddr == IPv4Address(0)
    assert reply.option(66) == OPTION66.encode()
    assert reply.option(160) == OPTION160.encode()
    assert reply.option(161) == OPTION161.encode()
    assert reply.option(VLAN_OPTION) == f"VLAN-A={VLAN_ID};".encode()
    assert reply.option(51) is None  # RFC 2131 section 4.3.5: no lease time in an INFORM ACK


@needs_netns
@pytest.mark.parametrize("link", [PHONE_MAC], indirect=True)
async def test_inform_mode_gives_udhcpc_no_address(link: Link, tmp_path: Path) -> None:
    responder = InformResponder(SERVER, BOOT)
    async with DhcpServer(link.host_if, "inform", responder) as server:
        env = await udhcpc(link, tmp_path, tries=2)
    assert env is None
    assert server.counters.received >= 2
    assert server.counters.replied == 0
