"""The TFTP engine: transfers run on its own thread, off the asyncio loop, over real loopback UDP.

The server (relay.frontend.tftp) resolves on the loop and hands each transfer
to the engine (relay.frontend.tftp_engine); these tests pin what that hand-off
promises: the data path never needs the loop, the loop hears of every end on
its own thread, a finished transfer frees its slot, and closing leaves no
thread and no socket behind.
"""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from relay.frontend.tftp import Address, Resolved
from relay.frontend.tftp_engine import Engine, Handoff
from relay.proto.tftp.packet import (
    NOT_DEFINED,
    Data,
    Error,
    Request,
    build_ack,
    build_request,
    parse_packet,
)
from relay.proto.tftp.session import BytesSource, ReadSession, SessionConfig
from tests.frontend.test_tftp_server import FILES, LOOPBACK_MTU, idle, peer, serving

BODY = bytes(i % 251 for i in range(512 * 40 + 7))  # 41 blocks of 512 in lock-step


class Recorded:
    """A source that notes the thread of every read."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.threads: set[str] = set()

    def read(self, offset: int, length: int) -> bytes:
        self.threads.add(threading.current_thread().name)
        return self.data[offset : offset + length]


def lock_step(sock: socket.socket, first: bytes, port: Address) -> bytes:
    """The rest of a lock-step read on a blocking socket, from its first DATA on."""
    parts = []
    packet = parse_packet(first)
    while True:
        assert isinstance(packet, Data)
        parts.append(packet.payload)
        sock.sendto(build_ack(packet.block), port)
        if len(packet.payload) < 512:
            return b"".join(parts)
        packet = parse_packet(sock.recvfrom(65536)[0])


def client_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    return sock


def handoff(client: Address, data: bytes = BODY) -> Handoff:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sock.bind(("127.0.0.1", 0))
    session = ReadSession(Request(False, "sip.ld", "octet"), BytesSource(data), SessionConfig())
    return Handoff(session, BytesSource(data), "sip.ld", client, sock)


async def test_every_read_of_a_transfer_runs_on_the_engine_thread() -> None:
    source = Recorded(BODY)

    async with serving(lambda _n, _c: source) as server, peer() as client:
        client.send(build_request("sip.ld"), server.address)
        for block in range(1, 42):
            _, port = await client.receive()
            client.send(build_ack(block), port)
        left = await idle(server)

    assert (source.threads, left) == ({"tftp-engine"}, 0)


async def test_a_transfer_runs_to_its_end_while_the_event_loop_is_blocked() -> None:
    loop = asyncio.get_running_loop()
    async with serving() as server:
        with client_socket() as sock:
            sock.setblocking(False)
            await loop.sock_sendto(sock, build_request("sip.ld"), server.address)
            first, port = await loop.sock_recvfrom(sock, 65536)
            sock.settimeout(5.0)
            body = lock_step(sock, first, (port[0], port[1]))  # blocks the loop to the end

    assert body == FILES["sip.ld"]


async def test_the_end_of_a_transfer_is_reported_on_the_loop_thread() -> None:
    loop = asyncio.get_running_loop()
    reported: asyncio.Future[tuple[Address, int]] = loop.create_future()
    engine = Engine(loop, lambda c: reported.set_result((c, threading.get_ident())), gso=True)
    try:
        with client_socket() as sock:
            sock.setblocking(False)
            client = sock.getsockname()
            engine.submit(handoff(client, b"short"))
            _, port = await loop.sock_recvfrom(sock, 65536)
            await loop.sock_sendto(sock, build_ack(1), port)
            ended, thread = await asyncio.wait_for(reported, 5.0)
    finally:
        await engine.close()

    assert (ended, thread) == (client, threading.get_ident())


async def test_close_ends_a_running_transfer_closes_its_socket_and_joins_the_thread() -> None:
    loop = asyncio.get_running_loop()
    engine = Engine(loop, lambda _c: None, gso=True)
    with client_socket() as sock:
        sock.setblocking(False)
        given = handoff(sock.getsockname())
        engine.submit(given)
        await loop.sock_recvfrom(sock, 65536)
        await engine.close()
        error, _ = await loop.sock_recvfrom(sock, 65536)

    assert parse_packet(error) == Error(NOT_DEFINED, "the server is shutting down")
    assert given.sock.fileno() == -1
    assert "tftp-engine" not in [t.name for t in threading.enumerate()]


async def test_a_handoff_after_close_is_refused() -> None:
    engine = Engine(asyncio.get_running_loop(), lambda _c: None, gso=True)
    await engine.close()
    given = handoff(("127.0.0.1", 9))

    with pytest.raises(RuntimeError), given.sock:
        engine.submit(given)


async def test_a_finished_transfer_frees_its_slot_for_the_next_request() -> None:
    def files(name: str, _client: Address) -> Resolved:
        return b"x" * 10

    async with serving(files, max_sessions=1) as server, peer() as client:
        client.send(build_request("a.cfg"), server.address)
        first, port = await client.receive()
        client.send(build_ack(1), port)
        await idle(server)
        client.send(build_request("a.cfg"), server.address)
        second, _ = await client.receive()

    assert first == second == Data(1, b"x" * 10)


async def test_the_transfers_of_a_server_share_one_engine_thread() -> None:
    quiet = SessionConfig(mtu=LOOPBACK_MTU, timeout=30.0, max_timeout=30.0)
    async with serving(session=quiet) as server, peer() as a, peer() as b:
        for client in (a, b):
            client.send(build_request("sip.ld"), server.address)
            await client.receive()
        engines = [t for t in threading.enumerate() if t.name == "tftp-engine"]

    assert len(engines) == 1
