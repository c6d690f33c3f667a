"""Simulated phones boot across a veth pair as real ones do: DHCP, then DHCPINFORM, then ZTP.

The fleet runs as `relay sim --dhcp IFACE` inside a throw-away network
namespace; the project's DhcpServer, the provisioning server and the relay's
ZTP route run in this process on the root-side end of the link, 198.51.100.1.
The phones lease 198.51.100.100-150 and provision from their leased
addresses (phones.md sections 1 and 2).

The link is tests/frontend/netns.py's, on 198.51.100.0/24 (TEST-NET-2, RFC
5737) rather than its 192.0.2.0/24: the phones' connections are unicast from
the root namespace's point of view, and a machine whose own network is
192.0.2.0/24 would route the answers there instead of into the namespace.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from certs.lab import ensure_lab_identity
from relay.frontend.dhcp import DhcpServer
from relay.frontend.leasestore import LeaseStore
from relay.frontend.ztp import ZtpDirectory, ztp_routes
from relay.proto.dhcp.inform import InformResponder
from relay.proto.dhcp.leases import LeaseConfig, Pool
from relay.proto.dhcp.options import BootOptions
from relay.sim.fleet import make_specs
from tests.frontend.netns import Link, unavailable
from tests.sim.conftest import PASSWORD, USER, ProvServer, config, master

HOST_ADDRESS = "198.51.100.1"
SUBNET = IPv4Network("198.51.100.0/24")
SERVER = IPv4Address(HOST_ADDRESS)
FIRST = IPv4Address("198.51.100.100")
LAST = IPv4Address("198.51.100.150")
PHONES = 5
# Seed 2 draws both families from MODELS: the choice of 160 or 161 shows.
SEED = 2
MODELS = {"VVX500": "", "Trio8800": "3111-65290-001"}
TRIO_FAMILY = "PolycomRealPresenceTrio"
NO_BOOT = BootOptions()
FLEET_TIMEOUT = 90.0
RETRY = "0.25"

needs_netns = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))
pytestmark = needs_netns


class LinkProvServer(ProvServer):
    """tests/sim's provisioning server, on the link's root-side address."""

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        app = web.Application()
        app.router.add_route("*", "/{name:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, HOST_ADDRESS, 0).start()
        self.url = f"http://{HOST_ADDRESS}:{self._runner.addresses[0][1]}/"


def site_files(directory: str) -> dict[str, bytes]:
    return {
        f"{directory}/000000000000.cfg": master(config_files=("site.cfg",)),
        f"{directory}/site.cfg": config(reg__1__address=directory),
    }


def pool(boot: BootOptions = NO_BOOT) -> LeaseConfig:
    return LeaseConfig(SERVER, (Pool(SUBNET, FIRST, LAST, lease_seconds=3600, boot=boot),))


def fleet_models() -> dict[str, str]:
    """MAC -> model of the fleet `relay sim --seed SEED --model ...` builds."""
    specs = make_specs(PHONES, (), seed=SEED, dhcp=True, models=MODELS)
    models = {spec.mac: spec.model for spec in specs}
    assert set(models.values()) == set(MODELS), "the seed must draw every model"
    return models


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=10)


@contextmanager
def veth_namespace() -> Iterator[Link]:
    """netns.veth_namespace's namespace and veth pair, the root end at 198.51.100.1/24."""
    tag = secrets.token_hex(4)
    link = Link(name=f"relaysim-{tag}", host_if=f"rsh{tag}", ns_if=f"rsn{tag}")
    _ip("netns", "add", link.name)
    try:
        _ip("link", "add", link.host_if, "type", "veth", "peer", "name", link.ns_if,
            "netns", link.name)  # fmt: skip
        try:
            _ip("addr", "add", f"{HOST_ADDRESS}/{SUBNET.prefixlen}", "dev", link.host_if)
            _ip("link", "set", link.host_if, "up")
            _ip("-n", link.name, "link", "set", "lo", "up")
            _ip("-n", link.name, "link", "set", link.ns_if, "up")
            yield link
        finally:
            subprocess.run(["ip", "link", "del", link.host_if], capture_output=True, check=False)
    finally:
        subprocess.run(["ip", "netns", "del", link.name], capture_output=True, check=False)


@pytest.fixture
def link() -> Iterator[Link]:
    with veth_namespace() as created:
        yield created


@pytest.fixture
async def prov() -> AsyncIterator[LinkProvServer]:
    server = LinkProvServer(files={**site_files("vvx"), **site_files("trio")})
    await server.start()
    yield server
    await server.close()


def boot_urls(prov: ProvServer, host: str = HOST_ADDRESS) -> BootOptions:
    """Option 160 sends VVX phones to /vvx/, option 161 Trio phones to /trio/."""
    port = prov.url.rsplit(":", 1)[1].strip("/")
    base = f"http://{USER}:{PASSWORD}@{host}:{port}"
    return BootOptions(option160=f"{base}/vvx/", option161=f"{base}/trio/")


async def relay_sim(link: Link, *args: str) -> dict[str, Any]:
    """`relay sim --dhcp` inside the namespace; its JSON summary."""
    argv = link.command(
        sys.executable, "-m", "relay.sim.cli", "--dhcp", link.ns_if, "--dhcp-retry", RETRY,
        "--phones", str(PHONES), "--seed", str(SEED), "--json", "--timeout", str(FLEET_TIMEOUT),
        *(arg for model, part in MODELS.items() for arg in ("--model", f"{model}:{part}")),
        *args,
    )  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        async with asyncio.timeout(FLEET_TIMEOUT + 30):
            out, err = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.communicate()
        raise
    lines = out.decode().strip().splitlines()
    assert lines, err.decode(errors="replace")
    summary: dict[str, Any] = json.loads(lines[-1])
    return summary


def sources(prov: ProvServer) -> set[IPv4Address]:
    return {IPv4Address(seen.source_ip) for seen in prov.seen}


# DHCP ------------------------------------------------------------------------------------


async def test_phones_lease_an_address_and_boot_from_the_url_in_their_custom_option(
    link: Link, prov: LinkProvServer, tmp_path: Path
) -> None:
    with LeaseStore(tmp_path / "leases.sqlite3") as store:
        async with DhcpServer(link.host_if, "lease", pool(boot_urls(prov)), store):
            summary = await relay_sim(link)
    assert (summary["provisioned"], summary["errors"]) == (PHONES, [])
    assert summary["boot_sources"] == {"dhcp": PHONES}
    assert len(sources(prov)) == PHONES
    assert all(FIRST <= address <= LAST for address in sources(prov))


async def test_vvx_phones_follow_option_160_and_trio_phones_option_161(
    link: Link, prov: LinkProvServer, tmp_path: Path
) -> None:
    fleet_models()
    with LeaseStore(tmp_path / "leases.sqlite3") as store:
        async with DhcpServer(link.host_if, "lease", pool(boot_urls(prov)), store):
            summary = await relay_sim(link)
    assert summary["provisioned"] == PHONES
    for seen in prov.seen:
        directory = "trio/" if TRIO_FAMILY in seen.user_agent else "vvx/"
        assert seen.path.startswith(directory), seen


async def test_closing_the_fleet_removes_the_leased_addresses_from_the_interface(
    link: Link, prov: LinkProvServer, tmp_path: Path
) -> None:
    with LeaseStore(tmp_path / "leases.sqlite3") as store:
        async with DhcpServer(link.host_if, "lease", pool(boot_urls(prov)), store):
            summary = await relay_sim(link)
    assert summary["provisioned"] == PHONES
    process = await asyncio.create_subprocess_exec(
        *link.command("ip", "-4", "-o", "addr", "show", "dev", link.ns_if),
        stdout=asyncio.subprocess.PIPE,
    )
    remaining, _ = await process.communicate()
    assert b"198.51.100." not in remaining


# DHCPINFORM (phones.md 1.4) ----------------------------------------------------------------


async def test_without_a_boot_server_in_the_lease_phones_inform_and_take_the_answer(
    link: Link, prov: LinkProvServer, tmp_path: Path
) -> None:
    responder = InformResponder(SERVER, boot_urls(prov))
    with LeaseStore(tmp_path / "leases.sqlite3") as store:
        async with (
            DhcpServer(link.host_if, "lease", pool(), store),
            DhcpServer(link.host_if, "inform", responder) as informer,
        ):
            summary = await relay_sim(link)
    assert (summary["provisioned"], summary["errors"]) == (PHONES, [])
    assert summary["boot_sources"] == {"inform": PHONES}
    assert informer.counters.replied >= PHONES
    for seen in prov.seen:
        assert seen.path.startswith("trio/" if TRIO_FAMILY in seen.user_agent else "vvx/")


# ZTP (phones.md 1.5), the relay's own route --------------------------------------------------


@pytest.fixture
async def ztp(tmp_path: Path, prov: LinkProvServer) -> AsyncIterator[tuple[str, str]]:
    """relay.frontend.ztp answering every phone of the fleet over HTTPS: (URL, CA file)."""
    identity = ensure_lab_identity(tmp_path / "lab", [], [HOST_ADDRESS])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(identity.cert, identity.key)
    answer = {"url": f"{prov.url}vvx/", "user": USER, "password": PASSWORD}
    devices = dict.fromkeys(fleet_models(), answer)
    copy = tmp_path / "ztp.json"
    copy.write_text(json.dumps({"etag": None, "directory": {"version": 1, "devices": devices}}))
    directory = ZtpDirectory(copy)
    assert directory.load()
    app = web.Application()
    app.add_routes(ztp_routes(directory))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, HOST_ADDRESS, 0, ssl_context=context).start()
    yield f"https://{HOST_ADDRESS}:{runner.addresses[0][1]}/ztp/v1", str(identity.ca_cert)
    await runner.cleanup()


async def test_with_neither_lease_nor_inform_naming_a_server_phones_ask_ztp(
    link: Link, prov: LinkProvServer, ztp: tuple[str, str], tmp_path: Path
) -> None:
    url, cacert = ztp
    with LeaseStore(tmp_path / "leases.sqlite3") as store:
        async with DhcpServer(link.host_if, "lease", pool(), store):
            summary = await relay_sim(link, "--ztp", url, "--cacert", cacert)
    assert (summary["provisioned"], summary["errors"]) == (PHONES, [])
    assert summary["boot_sources"] == {"ztp": PHONES}
    assert len(sources(prov)) == PHONES


# Failover across the addresses of one name (phones.md section 2) -----------------------------


@pytest.fixture
def refusing(link: Link) -> list[str]:
    """Two more addresses on the root-side end where nothing listens: connections are refused."""
    addresses = ["198.51.100.2", "198.51.100.3"]
    for address in addresses:
        subprocess.run(
            ["ip", "addr", "add", f"{address}/24", "dev", link.host_if],
            check=True,
            capture_output=True,
        )
    return addresses


async def test_phones_fail_over_across_the_addresses_of_their_servers_name(
    link: Link, prov: LinkProvServer, refusing: list[str], tmp_path: Path
) -> None:
    addresses = ",".join([*refusing, HOST_ADDRESS])
    with LeaseStore(tmp_path / "leases.sqlite3") as store:
        async with DhcpServer(link.host_if, "lease", pool(boot_urls(prov, "prov.lab")), store):
            summary = await relay_sim(link, "--host", f"prov.lab={addresses}")
    assert (summary["provisioned"], summary["errors"]) == (PHONES, [])
    assert summary["failovers"] == 2 * PHONES
    assert {seen.path.split("/")[0] for seen in prov.seen} == {"vvx", "trio"}
