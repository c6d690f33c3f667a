"""`start_dhcp` against real DHCP clients (ISC dhclient, perfdhcp) across a veth pair.

The server runs in this process on the root-side end of the link, started
the way `relay up` starts it (relay/frontend/dhcpsetup.py); the clients run
inside a throw-away namespace. The link here is 198.51.100.0/24 (TEST-NET-2,
RFC 5737) rather than tests/frontend/netns.py's 192.0.2.0/24: on a machine
whose own network is 192.0.2.0/24 (the case in this workplace), putting
192.0.2.1 on a root-side veth shadows the real gateway and makes the kernel
ignore ARP from a client at 192.0.2.2, its own address. Needs root and
`ip netns`; a missing client skips its test, naming its package.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from relay.config import Config
from relay.frontend.dhcp import DhcpServer
from relay.frontend.dhcpsetup import LEASE_FILE, DhcpStartupError, start_dhcp
from relay.frontend.leasestore import LeaseStore
from relay.proto.dhcp.leases import LeaseGranted
from relay.proto.dhcp.packet import MessageType, parse
from tests.frontend.netns import Link, unavailable

SERVER = "198.51.100.1"
CLIENT = "198.51.100.2"
POOL_FIRST, POOL_LAST = IPv4Address("198.51.100.100"), IPv4Address("198.51.100.160")
RESERVED_MAC = "0004f2000007"
RESERVED_IP = "198.51.100.7"
PHONE_MAC = "0004f2a1b2c3"
BOOT_URL = "https://phones:s3cret@198.51.100.1:9443/"
VLAN_ID = 20
CLIENT_TIMEOUT = 30.0
BOUND_MARK = "--- bound ---"

needs_netns = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))


def colons(mac: str) -> str:
    return ":".join(mac[i : i + 2] for i in range(0, 12, 2))


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=10)


@contextmanager
def dhcp_link(ns_mac: str | None = None, ns_address: str | None = None) -> Iterator[Link]:
    """A namespace joined by a veth pair, the root end at 198.51.100.1/24; all removed after.

    `ns_mac` (12 hex digits) is the Ethernet address of the end inside,
    `ns_address` an address given to it (perfdhcp sends from one).
    """
    tag = secrets.token_hex(4)
    link = Link(name=f"relaydhcp-{tag}", host_if=f"rdh{tag}", ns_if=f"rdn{tag}")
    _ip("netns", "add", link.name)
    try:
        peer = ["peer", "name", link.ns_if]
        if ns_mac is not None:
            peer += ["address", colons(ns_mac)]
        _ip("link", "add", link.host_if, "type", "veth", *peer, "netns", link.name)
        try:
            _ip("addr", "add", f"{SERVER}/24", "dev", link.host_if)
            _ip("link", "set", link.host_if, "up")
            _ip("-n", link.name, "link", "set", "lo", "up")
            if ns_address is not None:
                _ip("-n", link.name, "addr", "add", f"{ns_address}/24", "dev", link.ns_if)
            _ip("-n", link.name, "link", "set", link.ns_if, "up")
            yield link
        finally:
            subprocess.run(["ip", "link", "del", link.host_if], capture_output=True, check=False)
    finally:
        subprocess.run(["ip", "netns", "del", link.name], capture_output=True, check=False)


def dhcp_config(link: Link, data_dir: Path, **changes: object) -> Config:
    config = Config(
        data_dir=data_dir,
        dhcp_interface=link.host_if,
        dhcp_pool=f"{POOL_FIRST}-{POOL_LAST}",
        dhcp_lease_seconds=3600,
        dhcp_router=SERVER,
        dhcp_dns=(SERVER,),
        dhcp_domain="phones.example",
        dhcp_vlan=VLAN_ID,
        dhcp_reservations=(f"{colons(RESERVED_MAC)}={RESERVED_IP}",),
    )
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def serving(config: Config) -> AsyncIterator[DhcpServer]:
    server = await start_dhcp(config, BOOT_URL, config.data_dir)
    try:
        yield server
    finally:
        await server.close()


def program(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"needs {name} (package {package})")
    return path


# ISC dhclient: the boot options are declared so that it asks for them (option 55)
# and hands them to its script, which dumps its environment once bound.
DHCLIENT_CONF = """
option polycom-160 code 160 = text;
option polycom-161 code 161 = text;
option vlan-144 code 144 = text;
request subnet-mask, routers, domain-name-servers, domain-name, tftp-server-name,
        polycom-160, polycom-161, vlan-144;
"""


async def dhclient(link: Link, tmp_path: Path) -> dict[str, str]:
    """Run dhclient in the foreground until its script reports BOUND; that environment.

    The script prints its environment and a marker to dhclient's stdout, read here.
    """
    binary = program("dhclient", "isc-dhcp-client")
    out = tmp_path / "dhclient"
    out.mkdir()
    script = out / "script.sh"
    script.write_text(f'#!/bin/sh\n[ "$reason" = BOUND ] && env && echo {BOUND_MARK}\nexit 0\n')
    script.chmod(0o755)
    conf = out / "dhclient.conf"
    conf.write_text(DHCLIENT_CONF)
    argv = [
        binary, "-4", "-d", "-1", "-sf", str(script), "-cf", str(conf),
        "-lf", str(out / "leases"), "-pf", str(out / "pid"), link.ns_if,
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *link.command(*argv), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(CLIENT_TIMEOUT):
            async for raw in process.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                if line == BOUND_MARK:
                    break
                lines.append(line)
    finally:
        if process.returncode is None:
            process.terminate()
        _, stderr = await process.communicate()
    assert lines, stderr.decode(errors="replace")
    return dict(line.split("=", 1) for line in lines if "=" in line)


async def run(argv: list[str]) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
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


def drops(report: str) -> list[int]:
    """The `drops:` figures of a perfdhcp report (DISCOVER-OFFER, then REQUEST-ACK)."""
    return [int(n) for n in re.findall(r"^drops: (\d+)$", report, re.MULTILINE)]


# Lease mode ------------------------------------------------------------------------


@needs_netns
async def test_dhclient_gets_a_pool_address_and_the_boot_options(tmp_path: Path) -> None:
    with dhcp_link() as link:
        async with serving(dhcp_config(link, tmp_path)):
            env = await dhclient(link, tmp_path)
    assert POOL_FIRST <= IPv4Address(env["new_ip_address"]) <= POOL_LAST
    assert env["new_dhcp_server_identifier"] == SERVER
    assert env["new_tftp_server_name"] == "https://198.51.100.1:9443/"
    assert env["new_polycom_160"] == BOOT_URL
    assert env["new_polycom_161"] == BOOT_URL
    assert env["new_vlan_144"] == f"VLAN-A={VLAN_ID};"
    assert env["new_routers"] == SERVER
    assert env["new_domain_name_servers"] == SERVER
    assert env["new_domain_name"] == "phones.example"
    assert env["new_dhcp_lease_time"] == "3600"


@needs_netns
async def test_dhclient_with_a_reserved_mac_gets_its_reserved_address(tmp_path: Path) -> None:
    with dhcp_link(ns_mac=RESERVED_MAC) as link:
        async with serving(dhcp_config(link, tmp_path)):
            env = await dhclient(link, tmp_path)
    assert env["new_ip_address"] == RESERVED_IP


@needs_netns
async def test_the_granted_lease_is_in_the_data_directorys_lease_log(tmp_path: Path) -> None:
    with dhcp_link(ns_mac=PHONE_MAC) as link:
        async with serving(dhcp_config(link, tmp_path)):
            env = await dhclient(link, tmp_path)
    with LeaseStore(tmp_path / LEASE_FILE) as store:
        granted = [e for e in store.load() if isinstance(e, LeaseGranted)]
    assert [(e.mac, str(e.ip)) for e in granted] == [(PHONE_MAC, env["new_ip_address"])]


@needs_netns
async def test_a_perfdhcp_burst_gets_every_lease_without_a_drop(tmp_path: Path) -> None:
    perfdhcp = program("perfdhcp", "kea-admin")
    with dhcp_link(ns_address=CLIENT) as link:
        async with serving(dhcp_config(link, tmp_path)) as server:
            # Relayed through giaddr CLIENT: 50 clients, 200 exchanges, 50 per second,
            # then 2 s (-W, in microseconds) for the last answers before it counts drops.
            argv = [perfdhcp, "-4", "-l", CLIENT, "-R", "50", "-n", "200", "-r", "50", "-p", "10",
                    "-W", "2000000"]  # fmt: skip
            code, report = await run(link.command(*argv, SERVER))
    assert drops(report) == [0, 0], report
    assert code == 0, report
    assert server.counters.crashes == 0


@needs_netns
async def test_a_reserved_phone_is_served_during_a_discover_flood_from_random_macs(
    tmp_path: Path,
) -> None:
    perfdhcp = program("perfdhcp", "kea-admin")
    with dhcp_link(ns_mac=RESERVED_MAC, ns_address=CLIENT) as link:
        async with serving(dhcp_config(link, tmp_path)):
            # DISCOVERs only (-i) from up to 100,000 random MACs, 300 per second.
            flood = await asyncio.create_subprocess_exec(
                *link.command(perfdhcp, "-4", "-i", "-l", CLIENT, "-R", "100000", "-r", "300",
                              "-p", "20", SERVER),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            try:
                env = await dhclient(link, tmp_path)
            finally:
                flood.terminate()
                await flood.wait()
    assert env["new_ip_address"] == RESERVED_IP


# Inform mode -------------------------------------------------------------------------

# The INFORM goes from inside the namespace by a plain UDP socket (the phone's
# address is configured there); the reply's bytes are printed back.
INFORM_CLIENT = """
import socket, sys
with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
    sock.bind((sys.argv[1], 68))
    sock.settimeout(10)
    sock.sendto(bytes.fromhex(sys.argv[3]), (sys.argv[2], 67))
    print(sock.recvfrom(1500)[0].hex())
"""


@needs_netns
async def test_inform_mode_answers_a_phones_inform_with_the_boot_url_and_no_address(
    tmp_path: Path,
) -> None:
    from scapy.layers.dhcp import BOOTP, DHCP

    inform = BOOTP(op=1, xid=0x5EED, ciaddr=CLIENT, chaddr=bytes.fromhex(PHONE_MAC)) / DHCP(
        options=[("message-type", "inform"), ("param_req_list", [66, 160, 161, 144]), "end"]
    )
    with dhcp_link(ns_mac=PHONE_MAC, ns_address=CLIENT) as link:
        config = dhcp_config(link, tmp_path, dhcp_mode="inform", dhcp_pool="", dhcp_reservations=())
        async with serving(config):
            argv = [sys.executable, "-c", INFORM_CLIENT, CLIENT, SERVER, bytes(inform).hex()]
            code, output = await run(link.command(*argv))
    assert code == 0, output
    reply = parse(bytes.fromhex(output.strip()))
    assert reply.message_type == MessageType.ACK
    assert reply.yiaddr == IPv4Address(0)
    assert reply.option(66) == b"https://198.51.100.1:9443/"
    assert reply.option(160) == reply.option(161) == BOOT_URL.encode()
    assert reply.option(144) == f"VLAN-A={VLAN_ID};".encode()
    assert not (tmp_path / LEASE_FILE).exists()


# Failures that say what to do ---------------------------------------------------------


async def test_an_unknown_interface_is_named(tmp_path: Path) -> None:
    config = Config(data_dir=tmp_path, dhcp_interface="nosuch0", dhcp_pool="192.0.2.9-192.0.2.9")

    with pytest.raises(DhcpStartupError, match="no network interface 'nosuch0'"):
        await start_dhcp(config, BOOT_URL, tmp_path)


@needs_netns
async def test_a_pool_outside_the_interfaces_subnet_is_refused_naming_both(
    tmp_path: Path,
) -> None:
    with dhcp_link() as link:
        config = dhcp_config(link, tmp_path, dhcp_pool="203.0.113.10-203.0.113.20")

        with pytest.raises(DhcpStartupError, match=r"203\.0\.113\.10.*198\.51\.100\.1/24"):
            await start_dhcp(config, BOOT_URL, tmp_path)


@needs_netns
async def test_an_unprivileged_start_names_the_capability_and_how_to_grant_it(
    tmp_path: Path,
) -> None:
    setpriv = program("setpriv", "util-linux")
    code = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from relay.config import Config\n"
        "from relay.frontend.dhcpsetup import start_dhcp\n"
        "config = Config(dhcp_interface='lo', dhcp_mode='inform')\n"
        "asyncio.run(start_dhcp(config, 'https://u:p@127.0.0.1:9443/', Path(sys.argv[1])))\n"
    )
    argv = ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all"]
    exit_code, output = await run(
        [setpriv, *argv, "--bounding-set=-all", sys.executable, "-c", code, str(tmp_path)]
    )
    assert exit_code != 0
    assert "DhcpStartupError" in output
    assert "CAP_NET_BIND_SERVICE" in output
    assert "AmbientCapabilities" in output
