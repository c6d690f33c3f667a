"""2,000 phones fetching a file-backed image at once (issue 5): every transfer completes intact.

Correctness under load, not speed (bench/bench_tftp.py measures that): the
server serves a published image (`PublishedImages` then `FileSource`) to 2,000
minimal lock-step clients started together, each on its own socket as phones
are, each checking its bytes. Bounded in time; the open-file limit is raised
for the run (2,000 client sockets, 2,000 transfer sockets, 2,000 files) and put
back after.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.frontend.firmware import PublishedImages
from relay.frontend.tftp import Address, FileSource, Resolved, TftpConfig, TftpServer
from relay.proto.tftp.packet import (
    Data,
    Error,
    OAck,
    TftpError,
    build_ack,
    build_request,
    parse_packet,
)
from relay.proto.tftp.session import SessionConfig
from tests.frontend.published import publish

TRANSFERS = 2000
NAME = "3111-44500-001.sip.ld"
IMAGE = os.urandom(64 * 1024 + 123)
BLKSIZE = 1468
NEEDED_FILES = 3 * TRANSFERS + 200


@pytest.fixture
def open_files() -> Iterator[None]:
    """Enough descriptors for the run (RLIMIT_NOFILE soft limit), restored afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < NEEDED_FILES:
        pytest.skip(f"RLIMIT_NOFILE hard limit {hard} < {NEEDED_FILES} (raise it: ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, NEEDED_FILES), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class Phone:
    """One lock-step read: RRQ with blksize, ACK per block; the last packet resent on timeout."""

    def __init__(self, server: Address) -> None:
        self.loop = asyncio.get_running_loop()
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.bind(("127.0.0.1", 0))
        self.done: asyncio.Future[bytes] = self.loop.create_future()
        self.last = build_request(NAME, "octet", (("blksize", str(BLKSIZE)),))
        self.peer: Address | None = None
        self.block = 0
        self.parts: list[bytes] = []
        self.timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self.loop.add_reader(self.sock.fileno(), self.readable)
        self.send(self.last)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def send(self, datagram: bytes) -> None:
        self.last = datagram
        self.resend()

    def resend(self) -> None:
        if self.done.done():
            return
        with contextlib.suppress(BlockingIOError):  # lost, as on a wire: the timer resends
            self.sock.sendto(self.last, self.peer or self.server)
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(1.0, self.resend)

    def readable(self) -> None:
        try:
            data, addr = self.sock.recvfrom(65536)
        except OSError:
            return
        if self.done.done():
            return
        self.peer = self.peer or (addr[0], addr[1])
        try:
            packet = parse_packet(data)
        except TftpError as exc:
            self.done.set_exception(exc)
            return
        if isinstance(packet, Error):
            self.done.set_exception(RuntimeError(f"ERROR {packet.code}: {packet.message}"))
        elif isinstance(packet, OAck) and self.block == 0:
            self.send(build_ack(0))
        elif isinstance(packet, Data) and packet.block == (self.block + 1) % 0x10000:
            self.block += 1
            self.parts.append(packet.payload)
            self.send(build_ack(packet.block))
            if len(packet.payload) < BLKSIZE:
                self.done.set_result(b"".join(self.parts))


@pytest.mark.usefixtures("open_files")
async def test_2000_concurrent_transfers_of_a_file_all_complete_intact(tmp_path: Path) -> None:
    publish(tmp_path, IMAGE)
    images = PublishedImages(tmp_path)

    def resolve(name: str, _client: Address) -> Resolved:
        opened = images.open(name)
        return None if opened is None else FileSource(opened[0])

    # Patient retransmission: 4,000 sockets share this test's one event loop.
    patient = SessionConfig(timeout=5.0, max_timeout=10.0)
    config = TftpConfig(host="127.0.0.1", port=0, max_sessions=TRANSFERS, session=patient)
    async with asyncio.timeout(240), TftpServer(resolve, config) as server:
        phones = [Phone(server.address) for _ in range(TRANSFERS)]
        try:
            for phone in phones:
                phone.start()
            bodies = await asyncio.gather(*(p.done for p in phones), return_exceptions=True)
        finally:
            for phone in phones:
                phone.close()

    failed = [body for body in bodies if body != IMAGE]
    assert (len(bodies), failed[:3], server.active) == (TRANSFERS, [], 0)
