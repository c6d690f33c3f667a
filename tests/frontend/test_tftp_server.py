"""The TFTP server over real loopback UDP: real clients (curl, atftp, tftp-hpa, tftpy) and raw ones.

A missing client program skips its test, naming the package that provides it
(.ci/test installs them when it runs as root).
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import tftpy

from relay.frontend.tftp import Address, Resolved, TftpConfig, TftpServer
from relay.proto.tftp.packet import (
    ACCESS_VIOLATION,
    FILE_NOT_FOUND,
    ILLEGAL_OPERATION,
    NOT_DEFINED,
    UNKNOWN_TID,
    Data,
    Error,
    OAck,
    Packet,
    build_ack,
    build_request,
    parse_packet,
)
from relay.proto.tftp.session import SessionConfig

LOOPBACK_MTU = 65536
CFG = b'<?xml version="1.0" standalone="yes"?>\n<APPLICATION APP_FILE_PATH="sip.ld"/>\n'
FIRMWARE = os.urandom(700_000)
FILES = {"0004f2a1b2c3.cfg": CFG, "sip.ld": FIRMWARE, "000000000000-license.cfg": b""}


def files(name: str, _client: Address) -> Resolved:
    return FILES.get(name)


@asynccontextmanager
async def serving(
    resolve: Callable[[str, Address], Any] = files, **config: Any
) -> AsyncIterator[TftpServer]:
    session = config.pop("session", SessionConfig(mtu=LOOPBACK_MTU))
    server = TftpServer(resolve, TftpConfig(host="127.0.0.1", port=0, session=session, **config))
    async with server:
        yield server


class Peer(asyncio.DatagramProtocol):
    """A raw TFTP client socket: what arrives is parsed into a queue."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[Packet, Address]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.received.put_nowait((parse_packet(data), (addr[0], addr[1])))

    def send(self, data: bytes, address: Address) -> None:
        assert self.transport is not None
        self.transport.sendto(data, address)

    async def receive(self) -> tuple[Packet, Address]:
        return await asyncio.wait_for(self.received.get(), 5.0)


@asynccontextmanager
async def peer() -> AsyncIterator[Peer]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(Peer, local_addr=("127.0.0.1", 0))
    try:
        yield protocol
    finally:
        transport.close()
        await asyncio.sleep(0)


async def error_for(server: TftpServer, datagram: bytes) -> Error:
    async with peer() as client:
        client.send(datagram, server.address)
        packet, _ = await client.receive()
    assert isinstance(packet, Error)
    return packet


async def idle(server: TftpServer, seconds: float = 2.0) -> int:
    """Wait (bounded) until the server has no transfer; return how many are left."""
    for _ in range(int(seconds / 0.02)):
        if not server.active:
            break
        await asyncio.sleep(0.02)
    return server.active


async def run(*command: str) -> None:
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, (command, out[-2000:], err[-2000:])


def need(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.skip(f"{program} not installed (apt-get install {package})")
    return path


async def test_curl_fetches_a_multi_block_file_with_blksize(tmp_path: Path) -> None:
    out = tmp_path / "sip.ld"
    async with serving() as server:
        await run(
            need("curl", "curl"),
            "-sS",
            "--tftp-blksize",
            "1428",
            "-o",
            str(out),
            f"tftp://127.0.0.1:{server.address[1]}/sip.ld",
        )

    assert out.read_bytes() == FIRMWARE


async def test_atftp_fetches_with_windowsize_and_blksize(tmp_path: Path) -> None:
    out = tmp_path / "sip.ld"
    async with serving() as server:
        await run(
            need("atftp", "atftp"),
            "--option",
            "windowsize 8",
            "--option",
            "blksize 1428",
            "-g",
            "-r",
            "sip.ld",
            "-l",
            str(out),
            "127.0.0.1",
            str(server.address[1]),
        )

    assert out.read_bytes() == FIRMWARE


async def test_tftp_hpa_fetches_without_options(tmp_path: Path) -> None:
    tftp = need("tftp", "tftp-hpa")
    process = await asyncio.create_subprocess_exec(
        tftp, "-V", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    version, _ = await asyncio.wait_for(process.communicate(), 10)
    if b"tftp-hpa" not in version:
        pytest.skip("the tftp program is not tftp-hpa's (apt-get install tftp-hpa)")
    out = tmp_path / "0004f2a1b2c3.cfg"
    async with serving() as server:
        await run(
            tftp,
            "-m",
            "binary",
            "127.0.0.1",
            str(server.address[1]),
            "-c",
            "get",
            "0004f2a1b2c3.cfg",
            str(out),
        )

    assert out.read_bytes() == CFG


@pytest.mark.parametrize(
    ("name", "blksize"), [("0004f2a1b2c3.cfg", 512), ("sip.ld", 1428), ("sip.ld", 65536)]
)
async def test_tftpy_client_fetches(tmp_path: Path, name: str, blksize: int) -> None:
    out = tmp_path / name
    async with serving() as server:
        client = tftpy.TftpClient("127.0.0.1", server.address[1], options={"blksize": blksize})
        await asyncio.to_thread(client.download, name, str(out), None, 5)
    await asyncio.get_running_loop().shutdown_default_executor()

    assert out.read_bytes() == FILES[name]


async def test_blksize_65536_is_answered_with_at_most_65464() -> None:
    async with serving() as server, peer() as client:
        client.send(build_request("sip.ld", "octet", (("blksize", "65536"),)), server.address)
        oack, port = await client.receive()
        client.send(build_ack(0), port)
        data, _ = await client.receive()

    assert oack == OAck((("blksize", "65464"),))
    assert isinstance(data, Data) and len(data.payload) == 65464


async def test_blksize_is_clamped_to_the_configured_mtu() -> None:
    async with serving(session=SessionConfig(mtu=1500)) as server, peer() as client:
        client.send(build_request("sip.ld", "octet", (("blksize", "65536"),)), server.address)
        oack, _ = await client.receive()

    assert oack == OAck((("blksize", "1468"),))


@pytest.mark.parametrize("name", ["../etc/passwd", "/etc/passwd", "images/../../x", "a\\b.cfg"])
async def test_escaping_names_are_refused_and_audited(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "relay.tftp")
    async with serving() as server:
        error = await error_for(server, build_request(name))

    assert error.code == ACCESS_VIOLATION
    [record] = [r for r in caplog.records if r.getMessage() == "tftp_refused"]
    fields = record.__dict__["fields"]
    assert record.levelno == logging.WARNING
    assert fields["audit"] is True and fields["file"] == name
    assert fields["client"].startswith("127.0.0.1:")


async def test_a_write_request_is_refused_as_read_only() -> None:
    async with serving() as server:
        error = await error_for(server, build_request("0004f2a1b2c3-boot.log", write=True))

    assert (error.code, error.message) == (ACCESS_VIOLATION, "read-only server")


async def test_an_unknown_name_is_file_not_found() -> None:
    async with serving() as server:
        error = await error_for(server, build_request("0004f2ffffff.cfg"))

    assert error.code == FILE_NOT_FOUND


async def test_a_malformed_datagram_is_answered_and_the_server_goes_on(tmp_path: Path) -> None:
    async with serving() as server:
        error = await error_for(server, b"\x00\x01no terminator")
        async with peer() as client:
            client.send(b"\xff" * 3000, server.address)
            await client.receive()
        out = tmp_path / "cfg"
        await run(
            need("curl", "curl"),
            "-sS",
            "-o",
            str(out),
            f"tftp://127.0.0.1:{server.address[1]}/0004f2a1b2c3.cfg",
        )

    assert error.code == ILLEGAL_OPERATION
    assert out.read_bytes() == CFG


async def test_a_resolver_that_raises_fails_one_request_only() -> None:
    def resolve(name: str, client: Address) -> Resolved:
        if name == "sip.ld":
            raise RuntimeError("store unavailable")
        return files(name, client)

    async with serving(resolve) as server:
        error = await error_for(server, build_request("sip.ld"))
        async with peer() as client:
            client.send(build_request("0004f2a1b2c3.cfg"), server.address)
            data, _ = await client.receive()

    assert (error.code, error.message) == (NOT_DEFINED, "internal error")
    assert data == Data(1, CFG)


async def test_a_source_that_raises_ends_only_its_transfer() -> None:
    class Broken:
        size = 10

        def read(self, offset: int, length: int) -> bytes:
            raise OSError("disk gone")

    def resolve(name: str, client: Address) -> Resolved:
        return Broken() if name == "sip.ld" else files(name, client)

    async with serving(resolve) as server, peer() as client:
        client.send(build_request("sip.ld"), server.address)
        error, _ = await client.receive()
        client.send(build_request("0004f2a1b2c3.cfg"), server.address)
        data, _ = await client.receive()

    assert error == Error(NOT_DEFINED, "internal error")
    assert data == Data(1, CFG)


async def test_an_async_resolver_is_awaited() -> None:
    async def resolve(name: str, client: Address) -> Resolved:
        await asyncio.sleep(0.01)
        return files(name, client)

    async with serving(resolve) as server, peer() as client:
        client.send(build_request("0004f2a1b2c3.cfg"), server.address)
        data, _ = await client.receive()

    assert data == Data(1, CFG)


async def test_a_stranger_on_a_transfer_port_gets_error_5_and_the_transfer_goes_on() -> None:
    async with serving() as server, peer() as client, peer() as stranger:
        client.send(build_request("0004f2a1b2c3.cfg"), server.address)
        _, port = await client.receive()
        stranger.send(build_ack(1), port)
        error, _ = await stranger.receive()
        client.send(build_ack(1), port)
        active = await idle(server)

    assert isinstance(error, Error) and error.code == UNKNOWN_TID
    assert active == 0


async def test_a_repeated_request_from_the_same_client_starts_no_second_transfer() -> None:
    async with serving() as server, peer() as client:
        client.send(build_request("sip.ld"), server.address)
        client.send(build_request("sip.ld"), server.address)
        await client.receive()
        await asyncio.sleep(0.05)

        assert server.active == 1
        assert client.received.empty()


async def test_beyond_max_sessions_a_request_gets_server_busy() -> None:
    async with serving(max_sessions=2) as server, peer() as a, peer() as b:
        for client in (a, b):
            client.send(build_request("sip.ld"), server.address)
            await client.receive()
        error = await error_for(server, build_request("sip.ld"))

    assert (error.code, error.message) == (NOT_DEFINED, "server busy")


async def test_close_ends_transfers_with_error_0_and_closes_every_socket() -> None:
    async with peer() as client:
        async with serving() as server:
            client.send(build_request("sip.ld"), server.address)
            await client.receive()
        error, _ = await client.receive()
        active = server.active

    assert (error, active) == (Error(NOT_DEFINED, "the server is shutting down"), 0)


async def test_an_unacknowledged_transfer_is_retransmitted_then_abandoned() -> None:
    quick = SessionConfig(mtu=LOOPBACK_MTU, timeout=0.05, max_timeout=0.05, tries=3)
    async with serving(session=quick) as server, peer() as client:
        client.send(build_request("0004f2a1b2c3.cfg"), server.address)
        packets = [(await client.receive())[0] for _ in range(4)]
        active = await idle(server)

    assert packets == [Data(1, CFG)] * 3 + [Error(NOT_DEFINED, "transfer timed out")]
    assert active == 0


class Fetcher(asyncio.DatagramProtocol):
    """One minimal client of the concurrency test: RRQ (repeated until answered), then ACK 1."""

    def __init__(self, server: Address) -> None:
        self.server = server
        self.answered: asyncio.Future[Address] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        if not self.answered.done() and parse_packet(data) == Data(1, CFG):
            self.answered.set_result((addr[0], addr[1]))

    async def request_until_answered(self) -> Address:
        assert self.transport is not None
        while not self.answered.done():
            self.transport.sendto(build_request("0004f2a1b2c3.cfg"), self.server)
            await asyncio.wait([self.answered], timeout=0.5)
        return self.answered.result()


async def test_1500_concurrent_sessions_are_served() -> None:
    count = 1500
    patient = SessionConfig(mtu=LOOPBACK_MTU, timeout=30.0, max_timeout=30.0)
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(90), serving(session=patient) as server:
        endpoints = [
            await loop.create_datagram_endpoint(
                lambda: Fetcher(server.address), local_addr=("127.0.0.1", 0)
            )
            for _ in range(count)
        ]
        try:
            fetchers = [protocol for _, protocol in endpoints]
            ports = await asyncio.gather(*(f.request_until_answered() for f in fetchers))
            at_once = server.active
            for fetcher, port in zip(fetchers, ports, strict=True):
                assert fetcher.transport is not None
                fetcher.transport.sendto(build_ack(1), port)
            left = await idle(server, seconds=30)
        finally:
            for transport, _ in endpoints:
                transport.close()
            await asyncio.sleep(0)

    assert (at_once, left) == (count, 0)
    assert len(set(ports)) == count
