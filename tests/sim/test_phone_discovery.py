"""Where a simulated phone provisions from, over loopback: schemes, host addresses, ZTP, TFTP.

DHCP and DHCPINFORM need a link and are in tests/frontend/test_sim_dhcp_boot.py;
here the phone has a loopback address and the rest of phones.md section 1's
order: servers in flash, then the ZTP redirect (the relay's own route,
relay.frontend.ztp), and failover across the addresses of a host name.
"""

from __future__ import annotations

import json
import ssl
import threading
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from certs.lab import ensure_lab_identity
from relay.frontend.tftp import Address, Resolved, TftpConfig, TftpServer
from relay.frontend.ztp import ZtpDirectory, ztp_routes
from relay.proto.tftp.session import SessionConfig
from relay.sim.phone import DHCP_ADDRESS, PhoneSpec, SimPhone

with warnings.catch_warnings():
    # pyftpdlib is built on asyncore/asynchat, deprecated (not yet removed) in Python 3.11.
    warnings.simplefilter("ignore", DeprecationWarning)
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

from tests.sim.conftest import MAC, PASSWORD, USER, ProvServer, refused_url, standard_files

ZTP_PATH = "/ztp/v1"


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1].strip("/"))


# The spec ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "server", ["ftp://u:p@192.0.2.1/", "ftps://192.0.2.1/prov/", "tftp://192.0.2.1/"]
)
def test_servers_may_be_ftp_ftps_or_tftp_urls(spec: Callable[..., PhoneSpec], server: str) -> None:
    assert spec(servers=(server,)).servers == (server,)


def test_a_server_of_another_scheme_is_refused(spec: Callable[..., PhoneSpec]) -> None:
    with pytest.raises(ValueError, match="gopher"):
        spec(servers=("gopher://192.0.2.1/",))


def test_a_phone_needs_a_server_dhcp_or_ztp(spec: Callable[..., PhoneSpec]) -> None:
    with pytest.raises(ValueError, match="DHCP"):
        spec(servers=())
    assert spec(servers=(), source_ip=DHCP_ADDRESS).servers == ()
    assert spec(servers=(), ztp_url="https://127.0.0.1:9443/ztp/v1").servers == ()


def test_a_host_name_maps_to_at_most_8_addresses(spec: Callable[..., PhoneSpec]) -> None:
    eight = tuple(f"192.0.2.{n}" for n in range(1, 9))
    assert spec(hosts={"Prov.Lab": eight}).hosts == {"prov.lab": eight}
    with pytest.raises(ValueError, match="1 to 8"):
        spec(hosts={"prov.lab": (*eight, "192.0.2.9")})


# Failover across the addresses of one name (phones.md section 2) ------------------------


async def test_a_phone_fails_over_across_the_addresses_of_its_servers_name(
    prov: ProvServer, spec: Callable[..., PhoneSpec]
) -> None:
    url = f"http://prov.lab:{port_of(prov.url)}/"
    hosts = {"prov.lab": ("127.0.0.2", "127.0.0.3", "127.0.0.1")}
    async with SimPhone(spec(servers=(url,), hosts=hosts)) as phone:
        report = await phone.boot()
    assert (report.state, report.errors) == ("provisioned", ())
    assert report.failovers == 2
    assert report.servers == tuple(f"{url} ({address})" for address in hosts["prov.lab"])
    assert report.requests[0] == ("PUT", f"{MAC}-boot.log", 204)


async def test_a_phone_stays_on_the_address_that_answered(
    prov: ProvServer, spec: Callable[..., PhoneSpec]
) -> None:
    url = f"http://prov.lab:{port_of(prov.url)}/"
    hosts = {"prov.lab": ("127.0.0.2", "127.0.0.1")}
    async with SimPhone(spec(servers=(url,), hosts=hosts)) as phone:
        booted = await phone.boot()
        polled = await phone.poll_now()
    assert (booted.failovers, polled.failovers) == (1, 1)
    assert polled.state == "provisioned"


async def test_https_to_a_mapped_address_still_proves_the_host_name(tmp_path: Path) -> None:
    identity = ensure_lab_identity(tmp_path / "lab", ["prov.lab"], [])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(identity.cert, identity.key)
    prov = ProvServer(files=standard_files())
    await prov.start(context)
    try:
        phone_spec = PhoneSpec(
            mac=MAC,
            model="VVX500",
            firmware="5.9.7.4477",
            source_ip="127.20.0.1",
            servers=(f"https://prov.lab:{port_of(prov.url)}/",),
            user=USER,
            password=PASSWORD,
            cacert=str(identity.ca_cert),
            hosts={"prov.lab": ("127.0.0.2", "127.0.0.1")},
        )
        async with SimPhone(phone_spec) as phone:
            report = await phone.boot()
    finally:
        await prov.close()
    assert (report.state, report.errors) == ("provisioned", ())


# ZTP (phones.md 1.5), answered by the relay's own route ------------------------------------


@pytest.fixture
def lab(tmp_path: Path) -> tuple[ssl.SSLContext, str]:
    identity = ensure_lab_identity(tmp_path / "lab", [], ["127.0.0.1"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(identity.cert, identity.key)
    return context, str(identity.ca_cert)


async def ztp_service(
    tmp_path: Path, context: ssl.SSLContext, devices: dict[str, dict[str, str]]
) -> tuple[web.AppRunner, str]:
    """relay.frontend.ztp's lookup route over HTTPS, answering from a saved copy."""
    copy = tmp_path / "ztp.json"
    copy.write_text(json.dumps({"etag": None, "directory": {"version": 1, "devices": devices}}))
    directory = ZtpDirectory(copy)
    assert directory.load()
    app = web.Application()
    app.add_routes(ztp_routes(directory))
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context).start()
    return runner, f"https://127.0.0.1:{runner.addresses[0][1]}{ZTP_PATH}"


@pytest.fixture
async def ztp(
    tmp_path: Path, prov: ProvServer, lab: tuple[ssl.SSLContext, str]
) -> AsyncIterator[str]:
    """A ZTP service that sends MAC to `prov` with the lab account."""
    devices = {MAC: {"url": prov.url, "user": USER, "password": PASSWORD}}
    runner, url = await ztp_service(tmp_path, lab[0], devices)
    yield url
    await runner.cleanup()


async def test_a_phone_without_a_server_asks_ztp_and_provisions_from_its_answer(
    ztp: str, prov: ProvServer, lab: tuple[ssl.SSLContext, str], spec: Callable[..., PhoneSpec]
) -> None:
    phone_spec = spec(servers=(), ztp_url=ztp, user="", password="", cacert=lab[1])
    async with SimPhone(phone_spec) as phone:
        report = await phone.boot()
    assert (report.state, report.errors) == ("provisioned", ())
    assert report.boot_source == "ztp"
    assert report.servers == (prov.url,)
    assert report.requests[0] == ("GET", f"{ztp}/devices/{MAC}", 200)


async def test_a_phone_ztp_does_not_know_has_no_server(
    tmp_path: Path, lab: tuple[ssl.SSLContext, str], spec: Callable[..., PhoneSpec]
) -> None:
    runner, url = await ztp_service(tmp_path, lab[0], {})
    try:
        async with SimPhone(spec(servers=(), ztp_url=url, cacert=lab[1])) as phone:
            report = await phone.boot()
    finally:
        await runner.cleanup()
    assert report.state == "failed"
    assert report.requests == (("GET", f"{url}/devices/{MAC}", 404),)
    assert report.errors == (
        "no provisioning server: none from DHCP or DHCPINFORM, none in flash, none from ZTP",
    )


async def test_a_phone_with_ztp_disabled_does_not_ask(
    ztp: str, lab: tuple[ssl.SSLContext, str], spec: Callable[..., PhoneSpec]
) -> None:
    overrides = {"device.prov.ztpEnabled": "0"}
    phone_spec = spec(servers=(), ztp_url=ztp, cacert=lab[1], local_overrides=overrides)
    async with SimPhone(phone_spec) as phone:
        report = await phone.boot()
    assert report.state == "failed"
    assert report.requests == ()


async def test_a_phone_with_a_server_in_flash_does_not_ask_ztp(
    ztp: str, prov: ProvServer, lab: tuple[ssl.SSLContext, str], spec: Callable[..., PhoneSpec]
) -> None:
    async with SimPhone(spec(ztp_url=ztp, cacert=lab[1])) as phone:
        report = await phone.boot()
    assert report.boot_source == "static"
    assert all("ztp" not in name for _method, name, _status in report.requests)


async def test_a_dhcp_phone_without_a_dhcp_link_fails_its_boot(
    spec: Callable[..., PhoneSpec],
) -> None:
    async with SimPhone(spec(source_ip=DHCP_ADDRESS)) as phone:
        report = await phone.boot()
    assert report.state == "failed"
    assert report.errors == ("source_ip 0.0.0.0 asks for DHCP, but the phone has no DHCP link",)


# TFTP: read-only at the relay (phones.md section 2) ----------------------------------------


@pytest.fixture
async def tftp() -> AsyncIterator[str]:
    files = standard_files()

    def resolve(name: str, _client: Address) -> Resolved:
        return files.get(name)

    session = SessionConfig(mtu=65536)
    server = TftpServer(resolve, TftpConfig(host="127.0.0.1", port=0, session=session))
    async with server:
        yield f"tftp://127.0.0.1:{server.address[1]}/"


async def test_a_phone_provisions_over_tftp_and_carries_on_when_uploads_are_refused(
    tftp: str, spec: Callable[..., PhoneSpec]
) -> None:
    overrides = {"voice.volume": "3"}
    async with SimPhone(spec(servers=(tftp,), local_overrides=overrides)) as phone:
        report = await phone.boot()
    assert (report.state, report.errors) == ("provisioned", ())
    assert report.parameters["reg.1.address"] == "1001"
    puts = [(name, status) for method, name, status in report.requests if method == "PUT"]
    assert puts == [
        (f"{MAC}-boot.log", 403),
        (f"{MAC}-app.log", 403),
        (f"{MAC}-phone.cfg", 403),
    ]


async def test_a_phone_does_not_head_its_log_over_tftp(
    tftp: str, spec: Callable[..., PhoneSpec]
) -> None:
    async with SimPhone(spec(servers=(tftp,))) as phone:
        report = await phone.boot()
    assert [request for request in report.requests if request[0] == "HEAD"] == []


async def test_a_phone_fails_over_from_a_tftp_server_that_is_not_there(
    tftp: str, spec: Callable[..., PhoneSpec]
) -> None:
    absent = f"tftp://127.0.0.1:{port_of(refused_url())}/"
    async with SimPhone(spec(servers=(absent, tftp), request_timeout=3.0)) as phone:
        report = await phone.boot()
    assert (report.state, report.failovers, report.errors) == ("provisioned", 1, ())


# FTP with the factory account (phones.md section 2) ----------------------------------------


@pytest.fixture
def ftp(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """pyftpdlib in a thread with only the factory account, PlcmSpIp/PlcmSpIp: (URL, root)."""
    root = tmp_path / "ftp"
    root.mkdir()
    for name, data in standard_files().items():
        (root / name).write_bytes(data)
    authorizer = DummyAuthorizer()
    authorizer.add_user("PlcmSpIp", "PlcmSpIp", str(root), perm="elradfmwMT")
    attributes: dict[str, Any] = {"authorizer": authorizer, "auth_failed_timeout": 0}
    server = FTPServer(("127.0.0.1", 0), type("Handler", (FTPHandler,), attributes))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            server.serve_forever(timeout=0.02, blocking=False, handle_exit=False)
        server.close_all()

    thread = threading.Thread(target=serve, name="pyftpdlib")
    thread.start()
    try:
        yield f"ftp://127.0.0.1:{server.address[1]}/", root
    finally:
        stop.set()
        thread.join(10)


async def test_a_phone_without_an_account_logs_in_to_ftp_with_the_factory_one(
    ftp: tuple[str, Path], spec: Callable[..., PhoneSpec]
) -> None:
    url, root = ftp
    async with SimPhone(spec(servers=(url,), user="", password="")) as phone:
        report = await phone.boot()
    assert (report.state, report.errors) == ("provisioned", ())
    assert report.parameters["reg.1.address"] == "1001"
    assert (root / f"{MAC}-app.log").read_bytes().count(b"Application") == 1
