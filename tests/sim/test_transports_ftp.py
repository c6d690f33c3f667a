"""The simulator's FTP and FTPS client against a real pyftpdlib server on loopback.

pyftpdlib runs in its own thread (it is blocking), with a DummyAuthorizer
account over a temporary directory; FTPS uses a lab CA made at test time
(certs.lab) and needs pyOpenSSL. A few misbehaving servers are raw asyncio
listeners.
"""

from __future__ import annotations

import asyncio
import os
import threading
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yarl

with warnings.catch_warnings():
    # pyftpdlib is built on asyncore/asynchat, deprecated (not yet removed) in Python 3.11.
    warnings.simplefilter("ignore", DeprecationWarning)
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

from certs.lab import ServerIdentity, ensure_lab_identity
from relay.sim.transports import TransportError, TransportReply, ftp_request
from tests.ports import free_port

USER = "PlcmSpIp"
PASSWORD = "PlcmSpIp"
FIRMWARE = os.urandom(300_000)
WRITABLE = "elradfmwMT"
READ_ONLY = "elr"


@dataclass
class Ftp:
    """A running pyftpdlib server: its base URL, its root, and the addresses it saw log in."""

    url: str
    root: Path
    logins: list[str] = field(default_factory=list)

    def at(self, name: str) -> yarl.URL:
        return yarl.URL(self.url + name)


@contextmanager
def ftp_server(
    root: Path, *, perm: str = WRITABLE, identity: ServerIdentity | None = None
) -> Iterator[Ftp]:
    authorizer = DummyAuthorizer()
    authorizer.add_user(USER, PASSWORD, str(root), perm=perm)
    logins: list[str] = []

    def on_login(handler: Any, username: str) -> None:
        logins.append(handler.remote_ip)

    attributes: dict[str, Any] = {
        "authorizer": authorizer,
        "auth_failed_timeout": 0,
        "on_login": on_login,
    }
    base: type[Any] = FTPHandler
    if identity is not None:
        from pyftpdlib.handlers import TLS_FTPHandler

        base = TLS_FTPHandler
        attributes |= {
            "certfile": str(identity.cert),
            "keyfile": str(identity.key),
            "tls_control_required": True,
            "tls_data_required": True,
            "ssl_context": None,
        }
    handler = type("LabHandler", (base,), attributes)
    server = FTPServer(("127.0.0.1", 0), handler)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            server.serve_forever(timeout=0.02, blocking=False, handle_exit=False)
        server.close_all()

    thread = threading.Thread(target=serve, name="pyftpdlib")
    thread.start()
    try:
        scheme = "ftp" if identity is None else "ftps"
        yield Ftp(f"{scheme}://127.0.0.1:{server.address[1]}/", root, logins)
    finally:
        stop.set()
        thread.join(10)


@pytest.fixture
def ftp(tmp_path: Path) -> Iterator[Ftp]:
    root = tmp_path / "ftp"
    root.mkdir()
    with ftp_server(root) as running:
        yield running


@pytest.fixture
def identity(tmp_path: Path) -> ServerIdentity:
    pytest.importorskip("OpenSSL", reason="FTPS needs pyOpenSSL (pip install pyopenssl)")
    return ensure_lab_identity(tmp_path / "lab", [], ["127.0.0.1"])


async def request(
    method: str, url: yarl.URL, *, data: bytes | None = None, **options: Any
) -> TransportReply:
    settings: dict[str, Any] = {
        "user": USER,
        "password": PASSWORD,
        "source_ip": "127.0.0.1",
        "timeout": 10.0,
    }
    settings.update(options)
    return await ftp_request(method, url, data=data, **settings)


async def test_get_retrieves_a_file_in_passive_binary_mode(ftp: Ftp) -> None:
    (ftp.root / "sip.ld").write_bytes(FIRMWARE)

    reply = await request("GET", ftp.at("sip.ld"))

    assert reply == TransportReply(200, FIRMWARE)


async def test_get_of_a_file_in_a_subdirectory_uses_the_path_from_the_login_directory(
    ftp: Ftp,
) -> None:
    (ftp.root / "configs").mkdir()
    (ftp.root / "configs" / "site.cfg").write_bytes(b"<cfg/>")

    reply = await request("GET", ftp.at("configs/site.cfg"))

    assert reply == TransportReply(200, b"<cfg/>")


async def test_get_of_an_unknown_file_is_404(ftp: Ftp) -> None:
    reply = await request("GET", ftp.at("0004f2ffffff.cfg"))

    assert reply.status == 404


async def test_head_answers_the_size_from_size(ftp: Ftp) -> None:
    (ftp.root / "0004f2a1b2c3-app.log").write_bytes(b"x" * 1234)

    reply = await request("HEAD", ftp.at("0004f2a1b2c3-app.log"))

    assert reply == TransportReply(200, b"", size=1234)


async def test_head_of_an_unknown_file_is_404(ftp: Ftp) -> None:
    reply = await request("HEAD", ftp.at("0004f2a1b2c3-app.log"))

    assert reply.status == 404


async def test_put_stores_a_file(ftp: Ftp) -> None:
    reply = await request("PUT", ftp.at("0004f2a1b2c3-phone.cfg"), data=b"<overrides/>")

    assert reply == TransportReply(200, b"")
    assert (ftp.root / "0004f2a1b2c3-phone.cfg").read_bytes() == b"<overrides/>"


async def test_put_of_a_cfg_replaces_the_file(ftp: Ftp) -> None:
    (ftp.root / "0004f2a1b2c3-web.cfg").write_bytes(b"old contents")

    await request("PUT", ftp.at("0004f2a1b2c3-web.cfg"), data=b"new")

    assert (ftp.root / "0004f2a1b2c3-web.cfg").read_bytes() == b"new"


async def test_put_of_a_log_appends_to_it(ftp: Ftp) -> None:
    for line in (b"boot 1\n", b"boot 2\n"):
        await request("PUT", ftp.at("0004f2a1b2c3-boot.log"), data=line)

    assert (ftp.root / "0004f2a1b2c3-boot.log").read_bytes() == b"boot 1\nboot 2\n"


async def test_a_wrong_password_is_401(ftp: Ftp) -> None:
    reply = await request("GET", ftp.at("sip.ld"), password="wrong")

    assert reply.status == 401


async def test_credentials_in_the_url_win_over_the_arguments(ftp: Ftp) -> None:
    (ftp.root / "site.cfg").write_bytes(b"<cfg/>")
    url = ftp.at("site.cfg").with_user(USER).with_password(PASSWORD)

    reply = await request("GET", url, user="nobody", password="wrong")

    assert reply.status == 200


async def test_put_to_a_read_only_account_is_403(tmp_path: Path) -> None:
    with ftp_server(tmp_path, perm=READ_ONLY) as ftp:
        reply = await request("PUT", ftp.at("0004f2a1b2c3-boot.log"), data=b"boot\n")

    assert reply.status == 403


async def test_limit_reads_the_first_bytes_and_the_server_serves_on(ftp: Ftp) -> None:
    (ftp.root / "sip.ld").write_bytes(FIRMWARE)

    first = await request("GET", ftp.at("sip.ld"), limit=1000)
    again = await request("GET", ftp.at("sip.ld"))

    assert first == TransportReply(200, FIRMWARE[:1000])
    assert again == TransportReply(200, FIRMWARE)


async def test_a_request_comes_from_the_phones_source_address(ftp: Ftp) -> None:
    (ftp.root / "site.cfg").write_bytes(b"<cfg/>")

    reply = await request("GET", ftp.at("site.cfg"), source_ip="127.0.0.2")

    assert reply.status == 200
    assert ftp.logins == ["127.0.0.2"]


async def test_connection_refused_raises_connection_error() -> None:
    url = yarl.URL(f"ftp://127.0.0.1:{free_port()}/sip.ld")

    with pytest.raises(ConnectionError):
        await request("GET", url)


async def test_a_path_that_would_inject_a_command_is_refused(ftp: Ftp) -> None:
    with pytest.raises(ValueError, match="CR/LF"):
        await request("GET", ftp.at("x%0d%0aDELE%20sip.ld"))


@asynccontextmanager
async def raw_server(banner: bytes | None) -> AsyncIterator[yarl.URL]:
    """A TCP listener that sends `banner` (None: nothing) and then never answers."""

    async def handle(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if banner is not None:
            writer.write(banner)
        await writer.drain()
        connections.append(writer)

    connections: list[asyncio.StreamWriter] = []
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        yield yarl.URL(f"ftp://127.0.0.1:{port}/sip.ld")
    finally:
        for writer in connections:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_a_server_that_never_answers_raises_timeout_error() -> None:
    async with raw_server(None) as url:
        with pytest.raises(TimeoutError):
            await request("GET", url, timeout=0.5)


async def test_a_busy_server_is_503() -> None:
    async with raw_server(b"421 Too many connections, try later\r\n") as url:
        reply = await request("GET", url)

    assert reply.status == 503
    assert reply.body.startswith(b"421 Too many connections")


async def test_a_server_that_is_not_speaking_ftp_is_a_transport_error() -> None:
    async with raw_server(b"SSH-2.0-OpenSSH_9.2\r\n") as url:
        with pytest.raises(TransportError):
            await request("GET", url)


@pytest.fixture
def ftps(tmp_path: Path, identity: ServerIdentity) -> Iterator[Ftp]:
    root = tmp_path / "ftps"
    root.mkdir()
    with ftp_server(root, identity=identity) as running:
        yield running


async def test_ftps_retrieves_over_tls_verified_against_the_lab_ca(
    ftps: Ftp, identity: ServerIdentity
) -> None:
    (ftps.root / "sip.ld").write_bytes(FIRMWARE)

    reply = await request("GET", ftps.at("sip.ld"), cafile=str(identity.ca_cert))

    assert reply == TransportReply(200, FIRMWARE)


async def test_ftps_stores_appends_and_sizes_over_tls(ftps: Ftp, identity: ServerIdentity) -> None:
    url = ftps.at("0004f2a1b2c3-app.log")
    for line in (b"one\n", b"two\n"):
        await request("PUT", url, data=line, cafile=str(identity.ca_cert))

    head = await request("HEAD", url, cafile=str(identity.ca_cert))

    assert (ftps.root / "0004f2a1b2c3-app.log").read_bytes() == b"one\ntwo\n"
    assert head == TransportReply(200, b"", size=8)


async def test_ftps_limit_drops_the_tls_transfer_and_the_server_serves_on(
    ftps: Ftp, identity: ServerIdentity
) -> None:
    (ftps.root / "sip.ld").write_bytes(FIRMWARE)

    first = await request("GET", ftps.at("sip.ld"), limit=1000, cafile=str(identity.ca_cert))
    again = await request("GET", ftps.at("sip.ld"), cafile=str(identity.ca_cert))

    assert first == TransportReply(200, FIRMWARE[:1000])
    assert again == TransportReply(200, FIRMWARE)


async def test_ftps_against_a_server_of_another_ca_fails_verification(
    ftps: Ftp, tmp_path: Path
) -> None:
    other = ensure_lab_identity(tmp_path / "other-lab", [], ["127.0.0.1"])

    with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
        await request("GET", ftps.at("sip.ld"), cafile=str(other.ca_cert))


async def test_ftps_to_a_server_without_tls_is_a_transport_error(
    ftp: Ftp, identity: ServerIdentity
) -> None:
    url = ftp.at("sip.ld").with_scheme("ftps")

    with pytest.raises(TransportError, match="AUTH TLS"):
        await request("GET", url, cafile=str(identity.ca_cert))
