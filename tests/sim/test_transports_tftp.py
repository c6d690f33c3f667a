"""The simulator's TFTP client over real loopback UDP: the relay's own server and real tftpd's.

The real servers are tftpd-hpa (`in.tftpd`) and atftpd. Debian lets only one
of the two be installed at a time, so the tests of a missing one are skipped,
naming its package.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yarl

from relay.frontend.tftp import Address, Resolved, TftpConfig, TftpServer
from relay.proto.tftp.packet import Request, parse_packet
from relay.proto.tftp.session import SessionConfig
from relay.sim.transports import TransportReply, tftp_request
from tests.ports import free_port

LOOPBACK_MTU = 65536
FIRMWARE = os.urandom(300_000)
SERVERS = ("relay", "tftpd-hpa", "atftpd")
WINDOWS = [(512, 1), (1468, 1), (1468, 8), (8192, 4), (65464, 2)]
# What each real server answers a WRQ for a file it may not create.
REFUSED_WRITE = {"tftpd-hpa": 404, "atftpd": 403}


@dataclass
class Served:
    """Files behind a TFTP server at `address`; `put` makes one available."""

    address: Address
    root: Path | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    clients: list[Address] = field(default_factory=list)
    server: TftpServer | None = None

    def put(self, name: str, data: bytes, mode: int = 0o644) -> None:
        if self.root is None:
            self.files[name] = data
            return
        path = self.root / name
        path.write_bytes(data)
        path.chmod(mode)

    def url(self, name: str) -> yarl.URL:
        return yarl.URL(f"tftp://{self.address[0]}:{self.address[1]}/{name}")

    def resolve(self, name: str, client: Address) -> Resolved:
        self.clients.append(client)
        return self.files.get(name)


async def get(
    url: yarl.URL, *, blksize: int = 1468, windowsize: int = 1, limit: int | None = None
) -> TransportReply:
    return await tftp_request(
        "GET",
        url,
        source_ip="127.0.0.1",
        timeout=10.0,
        blksize=blksize,
        windowsize=windowsize,
        limit=limit,
    )


async def put(url: yarl.URL, data: bytes) -> TransportReply:
    return await tftp_request("PUT", url, source_ip="127.0.0.1", timeout=10.0, data=data)


@asynccontextmanager
async def relay_server() -> AsyncIterator[Served]:
    served = Served(("127.0.0.1", 0))
    config = TftpConfig(host="127.0.0.1", port=0, session=SessionConfig(mtu=LOOPBACK_MTU))
    async with TftpServer(served.resolve, config) as server:
        served.address, served.server = server.address, server
        yield served


def tftpd_hpa() -> str:
    path = shutil.which("in.tftpd")
    if path is not None:
        version = subprocess.run([path, "-V"], capture_output=True, timeout=10, check=False)
        if b"tftp-hpa" in version.stdout + version.stderr:
            return path
    pytest.skip("tftpd-hpa's in.tftpd not installed (apt-get install tftpd-hpa)")


def atftpd() -> str:
    path = shutil.which("atftpd")
    if path is None:
        pytest.skip("atftpd not installed (apt-get install atftpd)")
    return path


def command(kind: str, root: Path, port: int, *, options: bool) -> list[str]:
    if kind == "tftpd-hpa":
        refuse = [] if options else ["-r", "blksize", "-r", "tsize"]
        listen = f"127.0.0.1:{port}"
        return [tftpd_hpa(), "-L", "-u", "nobody", "-s", str(root), "-a", listen, *refuse]
    refuse = [] if options else ["--no-blksize", "--no-tsize", "--no-windowsize", "--no-timeout"]
    return [
        atftpd(),
        "--daemon",
        "--no-fork",
        "--user",
        "nobody",
        "--group",
        "nogroup",
        "--logfile",
        "/dev/null",
        "--port",
        str(port),
        "--bind-address",
        "127.0.0.1",
        *refuse,
        str(root),
    ]


@contextmanager
def real_server(kind: str, *, options: bool = True) -> Iterator[Served]:
    """A real tftpd in the foreground on a free loopback port, serving a fresh 0755 root."""
    with tempfile.TemporaryDirectory(prefix="tftpd-") as directory:
        root = Path(directory)
        root.chmod(0o755)  # the server reads as nobody
        port = free_port(socket.SOCK_DGRAM)
        argv = command(kind, root, port, options=options)
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_bound(process, port)
            yield Served(("127.0.0.1", port), root=root)
        finally:
            process.terminate()
            process.wait(10)


def wait_until_bound(process: subprocess.Popen[bytes], port: int) -> None:
    """Until the kernel lists the server's socket on 127.0.0.1:port; fail if the server exits.

    Read from /proc/net/udp: probing by binding the port ourselves could take
    it from the server at the moment it binds.
    """
    local = f"0100007F:{port:04X}"
    for _ in range(500):
        table = Path("/proc/net/udp").read_text().splitlines()[1:]
        if any(line.split()[1] == local for line in table):
            return
        try:
            process.wait(0.01)
        except subprocess.TimeoutExpired:
            continue
        raise AssertionError(f"the TFTP server exited with {process.returncode}")
    raise AssertionError("the TFTP server did not bind its port")


@pytest.fixture(params=SERVERS)
async def served(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    if request.param == "relay":
        async with relay_server() as relay:
            yield relay
    else:
        with real_server(request.param) as real:
            yield real


@pytest.mark.parametrize(("blksize", "windowsize"), WINDOWS)
async def test_a_multi_block_file_is_fetched_whole(
    served: Served, blksize: int, windowsize: int
) -> None:
    served.put("sip.ld", FIRMWARE)

    reply = await get(served.url("sip.ld"), blksize=blksize, windowsize=windowsize)

    assert reply == TransportReply(200, FIRMWARE)


async def test_a_zero_byte_file_is_fetched_empty(served: Served) -> None:
    served.put("000000000000-license.cfg", b"")

    reply = await get(served.url("000000000000-license.cfg"))

    assert reply == TransportReply(200, b"")


async def test_a_file_of_an_exact_multiple_of_blksize_ends_with_an_empty_block(
    served: Served,
) -> None:
    served.put("site.cfg", FIRMWARE[: 3 * 1468])

    reply = await get(served.url("site.cfg"), blksize=1468)

    assert reply == TransportReply(200, FIRMWARE[: 3 * 1468])


async def test_an_unknown_file_is_404(served: Served) -> None:
    reply = await get(served.url("0004f2ffffff.cfg"))

    assert reply.status == 404


async def test_limit_keeps_only_the_first_bytes(served: Served) -> None:
    served.put("sip.ld", FIRMWARE)

    reply = await get(served.url("sip.ld"), limit=5000)

    assert reply == TransportReply(200, FIRMWARE[:5000])


@pytest.mark.parametrize("kind", ["tftpd-hpa", "atftpd"])
async def test_a_server_that_ignores_options_is_read_in_512_byte_blocks(kind: str) -> None:
    with real_server(kind, options=False) as served:
        served.put("sip.ld", FIRMWARE[:10_000])

        reply = await get(served.url("sip.ld"), blksize=1468, windowsize=4)

    assert reply == TransportReply(200, FIRMWARE[:10_000])


@pytest.mark.parametrize("kind", ["tftpd-hpa", "atftpd"])
async def test_a_real_server_refuses_a_write_it_may_not_create(kind: str) -> None:
    with real_server(kind) as served:
        reply = await put(served.url("0004f2a1b2c3-boot.log"), b"boot\n")

    assert reply.status == REFUSED_WRITE[kind]


@pytest.mark.parametrize("kind", ["tftpd-hpa", "atftpd"])
async def test_a_write_to_a_world_writable_file_is_stored(kind: str) -> None:
    log = os.urandom(3000)
    with real_server(kind) as served:
        assert served.root is not None
        served.put("0004f2a1b2c3-app.log", b"", mode=0o666)

        reply = await put(served.url("0004f2a1b2c3-app.log"), log)
        stored = written(served.root / "0004f2a1b2c3-app.log", len(log))

    assert reply == TransportReply(200, b"")
    assert stored == log


def written(path: Path, size: int) -> bytes:
    """The file once the server has flushed `size` bytes to it (it may close after its last ACK)."""
    for _ in range(100):
        if path.stat().st_size >= size:
            break
        time.sleep(0.02)
    return path.read_bytes()


async def test_the_relay_refuses_a_write_with_403() -> None:
    async with relay_server() as served:
        reply = await put(served.url("0004f2a1b2c3-boot.log"), b"boot\n")

    assert reply.status == 403


async def test_a_request_comes_from_the_phones_source_address() -> None:
    async with relay_server() as served:
        served.put("0004f2a1b2c3.cfg", b"<cfg/>")
        reply = await tftp_request(
            "GET", served.url("0004f2a1b2c3.cfg"), source_ip="127.0.0.2", timeout=10.0
        )

    assert reply.status == 200
    assert [host for host, _ in served.clients] == ["127.0.0.2"]


async def test_the_relay_ends_its_transfer_when_limit_stops_the_client() -> None:
    async with relay_server() as served:
        served.put("sip.ld", FIRMWARE)
        await get(served.url("sip.ld"), limit=2000)
        left = await idle(served)

    assert left == 0


async def idle(served: Served) -> int:
    """Wait (bounded) until the relay's server has no transfer; return how many are left."""
    assert served.server is not None
    for _ in range(100):
        if not served.server.active:
            break
        await asyncio.sleep(0.02)
    return served.server.active


class Silent(asyncio.DatagramProtocol):
    """A UDP socket that takes every datagram and answers none."""

    def __init__(self) -> None:
        self.received: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.received.append(data)


@asynccontextmanager
async def silent() -> AsyncIterator[tuple[yarl.URL, Silent]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(Silent, local_addr=("127.0.0.1", 0))
    try:
        port = transport.get_extra_info("sockname")[1]
        yield yarl.URL(f"tftp://127.0.0.1:{port}/sip.ld"), protocol
    finally:
        transport.close()
        await asyncio.sleep(0)


async def test_a_server_that_never_answers_raises_timeout_error_after_retransmitting() -> None:
    async with silent() as (url, server):
        with pytest.raises(TimeoutError):
            await tftp_request("GET", url, source_ip="127.0.0.1", timeout=2.5)

    requests = [parse_packet(datagram) for datagram in server.received]
    assert len(requests) >= 2
    assert all(isinstance(request, Request) for request in requests)


async def test_head_answers_404_without_sending_anything() -> None:
    async with silent() as (url, server):
        reply = await tftp_request("HEAD", url, source_ip="127.0.0.1", timeout=2.0)
        await asyncio.sleep(0.05)

    assert reply == TransportReply(404, b"")
    assert server.received == []
