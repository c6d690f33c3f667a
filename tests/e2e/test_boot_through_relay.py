"""A phone with nothing configured boots through `relay up` end to end (issue 5).

`relay up` runs as a subprocess in the root namespace, its phone-facing
listeners bound (`--bind`) to the root-side end of a veth pair
(tests/frontend/netns.py, 203.0.113.1); `relay sim --json` runs the phones
in the namespace at the other end with nothing configured: no server in
flash, so they find one as phones.md section 1 says:

- by DHCP: the relay's own lease server, its boot URL in 160 (VVX) and 161 (Trio);
- by DHCPINFORM: someone else's lease server that names no boot server (the
  project's DhcpServer in this process, without boot options) and
  `relay up --dhcp-mode inform` answering the phones' DHCPINFORM;
- by ZTP: no boot options anywhere; the ZTP profile made through the
  partner API names the relay, and the phones ask the relay's ZTP copy;

and provision over HTTPS, FTP or TFTP through the relay (phones.md section 2).
Every phone must end provisioned with the expected boot source, and the
cloud must show it: last result SUCCESS, and as private_ip its leased
address, which the cloud believes only from a registered relay
(X-Forwarded-For), so the phone came through the relay. The simulator's
summary does not name each phone's server (its only one is the URL it was
given), so the protocol shows in the relay's log: the FTP and TFTP listeners
log each file they send, with the phone's address; HTTPS requests are not
logged one by one.

One relay (one data directory) per discovery mode, all its work done while
the module-scoped fixture sets up. `relay up` reads its boot URL at start,
and the FTP one carries the provisioning account, which a new data directory
invents at its first start; so a mode's relay starts first for HTTPS (the
default boot URL) and again for FTP and for TFTP, on ports fixed beforehand
(tests/ports.py) so that every URL is known before the start. ZTP needs one
start, with one ZTP profile per protocol.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from relay.frontend.dhcp import DhcpServer
from relay.frontend.dhcpsetup import LEASE_FILE
from relay.frontend.leasestore import LeaseStore
from relay.proto.dhcp.leases import LeaseConfig, LeaseGranted, Pool
from relay.sim.fleet import make_specs
from tests.e2e.conftest import RelayProcess, clean_env, relay_command
from tests.frontend.netns import HOST_ADDRESS, Link, unavailable, veth_namespace
from tests.ports import free_port

SUBNET = IPv4Network(f"{HOST_ADDRESS}/24", strict=False)
POOL_FIRST, POOL_LAST = IPv4Address("203.0.113.100"), IPv4Address("203.0.113.199")
POOL = f"{POOL_FIRST}-{POOL_LAST}"
PROTOCOLS = ("https", "ftp", "tftp")
# Two phones per protocol, a VVX (option 160) and a Trio (option 161); each seed
# draws one of each, and the seeds differ so every phone of a mode is a new device.
MODELS = {"VVX500": "", "Trio8800": "3111-65290-001"}
PHONES = 2
SEEDS = {"https": 1, "ftp": 2, "tftp": 8}
RETRY = "0.25"
FLEET_TIMEOUT = 60.0
ZTP_SYNC_SECONDS = "0.5"
SYNC_TIMEOUT = 20.0

pytestmark = pytest.mark.skipif(unavailable() is not None, reason=str(unavailable()))


@dataclass(frozen=True, slots=True)
class Ports:
    """The relay's ports, chosen before it starts so that every boot URL is known."""

    api: int
    prov: int
    https: int
    ftp: int
    tftp: int

    @classmethod
    def pick(cls) -> Ports:
        return cls(
            api=free_port(),
            prov=free_port(),
            https=free_port(host=HOST_ADDRESS),
            ftp=free_port(host=HOST_ADDRESS),
            tftp=free_port(socket.SOCK_DGRAM, HOST_ADDRESS),
        )

    def flags(self) -> list[str]:
        return [
            "--api-port", str(self.api), "--prov-port", str(self.prov), "--bind", HOST_ADDRESS,
            "--relay-https-port", str(self.https), "--relay-ftp-port", str(self.ftp),
            "--relay-tftp-port", str(self.tftp),
        ]  # fmt: skip

    def server(self, protocol: str) -> str:
        """The relay's URL for `protocol`, without an account."""
        port = {"https": self.https, "ftp": self.ftp, "tftp": self.tftp}[protocol]
        return f"{protocol}://{HOST_ADDRESS}:{port}/"

    def boot_url(self, protocol: str, user: str, password: str) -> str:
        """What 160/161 carry: the URL with the provisioning account, except for TFTP."""
        if protocol == "tftp":
            return self.server(protocol)
        login = f"{quote(user, safe='')}:{quote(password, safe='')}"
        return self.server(protocol).replace("://", f"://{login}@", 1)


@dataclass(frozen=True, slots=True)
class Booted:
    """What one protocol's phones did, and what the cloud and the relay saw of them."""

    summary: Mapping[str, Any]
    phones: tuple[str, ...]
    leases: Mapping[str, str]
    devices: Mapping[str, Mapping[str, Any]]
    relay_log: str


@contextmanager
def relay_up(
    data_dir: Path, ports: Ports, *extra: str, env: Mapping[str, str] | None = None
) -> Iterator[RelayProcess]:
    """`relay up --json --log-format json` past its ready line; stopped and closed on exit."""
    home = data_dir.parent
    log_path = home / f"{data_dir.name}-{time.monotonic_ns()}.log"
    argv = [*relay_command(), "up", "--json", "--log-format", "json", "--data-dir", str(data_dir)]
    with log_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [*argv, *ports.flags(), *extra],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env={**clean_env(home), **(env or {})},
            cwd=home,
        )
    relay = RelayProcess(proc, log_path, data_dir)
    try:
        relay.ready()
        yield relay
        assert relay.stop() == 0, relay.stderr()[-2000:]
    finally:
        relay.close()


def fleet(seed: int) -> tuple[str, ...]:
    """The MACs `relay sim --seed SEED --model ...` gives its phones, in order."""
    return tuple(spec.mac for spec in make_specs(PHONES, (), seed=seed, dhcp=True, models=MODELS))


async def relay_sim(link: Link, seed: int, cacert: str, *extra: str) -> Any:
    """`relay sim --dhcp` in the namespace; its JSON summary."""
    models = [arg for model, part in MODELS.items() for arg in ("--model", f"{model}:{part}")]
    argv = link.command(
        *relay_command(), "sim", "--dhcp", link.ns_if, "--dhcp-retry", RETRY,
        "--phones", str(PHONES), "--seed", str(seed), "--json", "--timeout", str(FLEET_TIMEOUT),
        "--cacert", cacert, *models, *extra,
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
    return json.loads(lines[-1])


def call(
    method: str, url: str, headers: Mapping[str, str], body: Any = None, cafile: str | None = None
) -> tuple[int, Any]:
    """One JSON request with urllib; the status and the decoded body (None when empty)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    context = ssl.create_default_context(cafile=cafile) if cafile else None
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            status, raw = exc.code, exc.read()
    return status, json.loads(raw) if raw else None


def devices(relay: RelayProcess, macs: tuple[str, ...]) -> dict[str, Any]:
    """GET /api/v1/devices/{mac} for each phone, with the admin token."""
    auth = {"Authorization": f"Bearer {relay.facts['token']}"}
    return {mac: call("GET", f"{relay.facts['api']}/devices/{mac}", auth)[1] for mac in macs}


def granted(store: LeaseStore) -> dict[str, str]:
    """MAC (12 hex digits) -> the address last leased to it."""
    return {
        e.mac.replace(":", "").lower(): str(e.ip)
        for e in store.load()
        if isinstance(e, LeaseGranted)
    }


def plain_lease_server(link: Link, store: LeaseStore) -> DhcpServer:
    """Someone else's DHCP server: addresses, and no boot server in any option."""
    pool = Pool(SUBNET, POOL_FIRST, POOL_LAST, lease_seconds=3600)
    return DhcpServer(link.host_if, "lease", LeaseConfig(IPv4Address(HOST_ADDRESS), (pool,)), store)


async def boot_each_protocol(
    link: Link, data_dir: Path, mode: str, store: LeaseStore | None
) -> dict[str, Booted]:
    """For each protocol: `relay up` with DHCP on the link (`mode`), then its phones.

    HTTPS goes first (PROTOCOLS), with the default boot URL: the relay's HTTPS
    URL with the account that start invents, which the FTP boot URL then carries.
    """
    ports = Ports.pick()
    account = ("", "")
    booted: dict[str, Booted] = {}
    for protocol in PROTOCOLS:
        dhcp = ["--dhcp-interface", link.host_if, "--dhcp-mode", mode]
        if mode == "lease":
            dhcp += ["--dhcp-pool", POOL]
        if protocol != "https":
            dhcp += ["--dhcp-boot-url", ports.boot_url(protocol, *account)]
        phones = fleet(SEEDS[protocol])
        with relay_up(data_dir, ports, *dhcp) as relay:
            facts = relay.facts
            account = (facts["prov_user"], facts["prov_password"])
            summary = await relay_sim(link, SEEDS[protocol], facts["ca_cert"])
            seen = devices(relay, phones)
        if store is None:
            with LeaseStore(data_dir / LEASE_FILE) as relays_store:
                leases = granted(relays_store)
        else:
            leases = granted(store)
        booted[protocol] = Booted(summary, phones, leases, seen, relay.stderr())
    return booted


@pytest.fixture(scope="module")
def by_dhcp(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Booted]:
    """`relay up --dhcp-mode lease`: the boot URL comes with the lease."""
    with veth_namespace() as link:
        data_dir = tmp_path_factory.mktemp("dhcp") / "data"
        return asyncio.run(boot_each_protocol(link, data_dir, "lease", None))


async def _by_inform(link: Link, home: Path) -> dict[str, Booted]:
    with LeaseStore(home / "leases.sqlite") as store:
        async with plain_lease_server(link, store):
            return await boot_each_protocol(link, home / "data", "inform", store)


@pytest.fixture(scope="module")
def by_inform(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Booted]:
    """A lease without a boot server, then `relay up --dhcp-mode inform` answers the INFORM."""
    with veth_namespace() as link:
        return asyncio.run(_by_inform(link, tmp_path_factory.mktemp("inform")))


def wait_for_ztp_copy(relay: RelayProcess, macs: tuple[str, ...]) -> None:
    """The relay answers from its synced copy of the cloud's ZTP directory: wait for it."""
    deadline = time.monotonic() + SYNC_TIMEOUT
    for mac in macs:
        url = f"{relay.facts['ztp']}/devices/{mac}"
        while call("GET", url, {}, cafile=relay.facts["ca_cert"])[0] != 200:
            assert time.monotonic() < deadline, f"the relay's ZTP copy never had {mac}"
            time.sleep(0.1)


def assign_ztp_profiles(relay: RelayProcess, ports: Ports) -> None:
    """Through the partner API: one profile per protocol naming the relay, and its phones."""
    facts = relay.facts
    api = facts["api"]
    auth = {"Authorization": f"Bearer {facts['token']}"}
    status, issued = call("POST", f"{api}/tenant/ztp-key", auth)
    assert status == 201, issued
    key = {"API-KEY": issued["api_key"]}
    account = {"user": facts["prov_user"], "password": facts["prov_password"]}
    for protocol in PROTOCOLS:
        body = {"name": protocol, "url": ports.server(protocol)}
        status, profile = call(
            "POST", f"{api}/ztp/profiles", key, body if protocol == "tftp" else body | account
        )
        assert status == 201, profile
        for mac in fleet(SEEDS[protocol]):
            status, device = call(
                "POST", f"{api}/ztp/devices", key, {"id": mac, "profile": profile["id"]}
            )
            assert status == 201, device


async def _by_ztp(link: Link, home: Path) -> dict[str, Booted]:
    ports = Ports.pick()
    sync = {"RELAY_ZTP_SYNC_SECONDS": ZTP_SYNC_SECONDS}
    summaries: dict[str, Any] = {}
    everyone = tuple(mac for protocol in PROTOCOLS for mac in fleet(SEEDS[protocol]))
    with LeaseStore(home / "leases.sqlite") as store:
        async with plain_lease_server(link, store):
            with relay_up(home / "data", ports, env=sync) as relay:
                assign_ztp_profiles(relay, ports)
                wait_for_ztp_copy(relay, everyone)
                ztp = relay.facts["ztp"]
                for protocol in PROTOCOLS:
                    summaries[protocol] = await relay_sim(
                        link, SEEDS[protocol], relay.facts["ca_cert"], "--ztp", ztp
                    )
                seen = devices(relay, everyone)
        leases = granted(store)
    log = relay.stderr()
    return {
        protocol: Booted(summaries[protocol], fleet(SEEDS[protocol]), leases, seen, log)
        for protocol in PROTOCOLS
    }


@pytest.fixture(scope="module")
def by_ztp(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Booted]:
    """Neither the lease nor an INFORM names a server: the relay's ZTP copy does."""
    with veth_namespace() as link:
        return asyncio.run(_by_ztp(link, tmp_path_factory.mktemp("ztp")))


def log_events(log: str) -> list[dict[str, Any]]:
    """The relay's JSON log lines."""
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def files_sent(protocol: str, log: str) -> set[tuple[str, str]]:
    """(phone address, file name) of each file the relay's log shows sent over `protocol`.

    FTP logs every transfer (`ftp_transfer`, RETR), TFTP every file sent
    (`tftp_sent`); HTTPS requests are not logged one by one.
    """
    sent: set[tuple[str, str]] = set()
    for entry in log_events(log):
        if protocol == "ftp" and entry["event"] == "ftp_transfer" and entry["command"] == "RETR":
            sent.add((entry["source"], entry["path"].lstrip("/")))
        elif protocol == "tftp" and entry["event"] == "tftp_sent":
            sent.add((entry["client"].rpartition(":")[0], entry["file"].lstrip("/")))
    return sent


def assert_provisioned_through_the_relay(booted: Booted, protocol: str) -> None:
    for mac in booted.phones:
        device = booted.devices[mac]
        address = booted.leases[mac]
        assert POOL_FIRST <= IPv4Address(address) <= POOL_LAST
        assert (device["last_result"], device["private_ip"]) == ("SUCCESS", address), device
        if protocol != "https":
            assert (address, f"{mac}.cfg") in files_sent(protocol, booted.relay_log)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_phone_given_the_relay_by_dhcp_provisions_through_it(
    by_dhcp: dict[str, Booted], protocol: str
) -> None:
    booted = by_dhcp[protocol]
    assert (booted.summary["provisioned"], booted.summary["errors"]) == (PHONES, [])
    assert booted.summary["boot_sources"] == {"dhcp": PHONES}
    assert_provisioned_through_the_relay(booted, protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_phone_given_the_relay_by_dhcpinform_provisions_through_it(
    by_inform: dict[str, Booted], protocol: str
) -> None:
    booted = by_inform[protocol]
    assert (booted.summary["provisioned"], booted.summary["errors"]) == (PHONES, [])
    assert booted.summary["boot_sources"] == {"inform": PHONES}
    assert_provisioned_through_the_relay(booted, protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_phone_sent_to_the_relay_by_ztp_provisions_through_it(
    by_ztp: dict[str, Booted], protocol: str
) -> None:
    booted = by_ztp[protocol]
    assert (booted.summary["provisioned"], booted.summary["errors"]) == (PHONES, [])
    assert booted.summary["boot_sources"] == {"ztp": PHONES}
    assert_provisioned_through_the_relay(booted, protocol)
