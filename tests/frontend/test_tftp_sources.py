"""The TFTP server's contract with its resolver and sources, over real loopback UDP.

A resolver refuses with `TftpRefusal` (its code and message to the client, one
line at its level, never an internal error), a slow one gets its client a
retryable ERROR 0; a source with `close()` is closed once its transfer is over
however it ends; files are served with pread (`FileSource`); windows go out
with UDP segmentation offload, or without it, intact either way.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import pytest

from relay.frontend.tftp import Address, FileSource, Resolved, TftpRefusal
from relay.proto.tftp.packet import (
    ACCESS_VIOLATION,
    NOT_DEFINED,
    Data,
    Error,
    build_ack,
    build_error,
    build_request,
)
from relay.proto.tftp.session import SessionConfig
from tests.frontend.test_tftp_server import error_for, idle, need, peer, run, serving

IMAGE = os.urandom(900_001)


class Counted:
    """A source that counts its close() calls."""

    def __init__(self, data: bytes, size: int | None = None) -> None:
        self.data = data
        self.size = len(data) if size is None else size
        self.closed = 0

    def read(self, offset: int, length: int) -> bytes:
        return self.data[offset : offset + length]

    def close(self) -> None:
        self.closed += 1


def lines(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == message]


async def test_a_resolver_refusal_reaches_the_client_with_its_code_and_message() -> None:
    def resolve(name: str, client: Address) -> Resolved:
        raise TftpRefusal(ACCESS_VIOLATION, "not for you", "the cloud answered 403")

    async with serving(resolve) as server:
        error = await error_for(server, build_request("0004f2a1b2c3.cfg"))

    assert error == Error(ACCESS_VIOLATION, "not for you")


async def test_a_resolver_refusal_is_one_line_at_its_level_and_not_an_internal_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, "relay.tftp")

    async def resolve(name: str, client: Address) -> Resolved:
        raise TftpRefusal(NOT_DEFINED, "try again", "the cloud is unreachable")

    async with serving(resolve) as server:
        for _ in range(3):
            await error_for(server, build_request("0004f2a1b2c3.cfg"))

    declined = lines(caplog, "tftp_declined")
    assert [r.levelno for r in declined] == [logging.INFO] * 3
    assert declined[0].__dict__["fields"]["reason"] == "the cloud is unreachable"
    assert lines(caplog, "tftp_request_failed") == []


async def test_a_resolver_slower_than_resolve_timeout_gets_a_retryable_error_0() -> None:
    async def resolve(name: str, client: Address) -> Resolved:
        await asyncio.sleep(30)
        return b""

    async with serving(resolve, resolve_timeout=0.05) as server:
        error = await error_for(server, build_request("0004f2a1b2c3.cfg"))

    assert error == Error(NOT_DEFINED, "not ready, try again")


async def test_a_source_is_closed_once_when_its_transfer_completes() -> None:
    source = Counted(b"x" * 700)

    async with serving(lambda _n, _c: source) as server, peer() as client:
        client.send(build_request("sip.ld"), server.address)
        first, port = await client.receive()
        client.send(build_ack(1), port)
        second, _ = await client.receive()
        client.send(build_ack(2), port)
        left = await idle(server)

    assert (first, second) == (Data(1, b"x" * 512), Data(2, b"x" * 188))
    assert (left, source.closed) == (0, 1)


async def test_a_source_is_closed_when_the_client_ends_the_transfer() -> None:
    source = Counted(IMAGE)

    async with serving(lambda _n, _c: source) as server, peer() as client:
        client.send(build_request("sip.ld"), server.address)
        _, port = await client.receive()
        client.send(build_error(0, "user cancelled"), port)
        left = await idle(server)

    assert (left, source.closed) == (0, 1)


async def test_a_source_is_closed_when_its_transfer_never_starts() -> None:
    source = Counted(b"", size=-1)  # a session refuses a negative size

    async with serving(lambda _n, _c: source) as server:
        error = await error_for(server, build_request("sip.ld"))

    assert error == Error(NOT_DEFINED, "internal error")
    assert source.closed == 1


async def test_a_source_is_closed_when_the_server_shuts_down_mid_transfer() -> None:
    source = Counted(IMAGE)

    async with peer() as client, serving(lambda _n, _c: source) as server:
        client.send(build_request("sip.ld"), server.address)
        await client.receive()

    assert source.closed == 1


def test_a_file_source_reads_with_pread_at_any_offset(tmp_path: Path) -> None:
    path = tmp_path / "sip.ld"
    path.write_bytes(IMAGE)
    source = FileSource.open(path)
    try:
        assert source.size == len(IMAGE)
        assert source.read(900_000, 10) == IMAGE[900_000:]
        assert source.read(5, 7) == IMAGE[5:12]
    finally:
        source.close()
        source.close()  # idempotent


async def test_a_file_truncated_while_it_is_served_ends_the_transfer(tmp_path: Path) -> None:
    path = tmp_path / "sip.ld"
    path.write_bytes(IMAGE)
    source = FileSource.open(path)

    async with serving(lambda _n, _c: source) as server, peer() as client:
        client.send(build_request("sip.ld"), server.address)
        packet, port = await client.receive()
        path.write_bytes(b"")
        for _ in range(3):  # a block prepared before the cut may still come
            if not isinstance(packet, Data):
                break
            client.send(build_ack(packet.block), port)
            packet, _ = await client.receive()

    assert packet == Error(NOT_DEFINED, "file changed")


@pytest.mark.parametrize("gso", [True, False], ids=["gso", "one-send-per-block"])
async def test_a_windowed_transfer_of_a_file_arrives_intact(tmp_path: Path, gso: bool) -> None:
    path = tmp_path / "sip.ld"
    path.write_bytes(IMAGE)
    out = tmp_path / "out"
    async with serving(
        lambda _n, _c: FileSource.open(path), gso=gso, session=SessionConfig()
    ) as server:
        await run(
            need("atftp", "atftp"),
            "--option",
            "blksize 1468",
            "--option",
            "windowsize 32",
            "-g",
            "-r",
            "sip.ld",
            "-l",
            str(out),
            "127.0.0.1",
            str(server.address[1]),
        )

    assert out.read_bytes() == IMAGE


async def test_a_window_that_overflows_the_clients_buffer_still_arrives_intact(
    tmp_path: Path,
) -> None:
    """64 blocks of 65,464 bytes (4 MB) at once: the client's socket drops some; its ACKs and
    the server's windows (RFC 7440 section 4) recover them."""
    data = os.urandom(9_000_000)
    out = tmp_path / "out"
    async with serving(
        lambda _n, _c: data, session=SessionConfig(mtu=65536, max_windowsize=64)
    ) as server:
        await run(
            need("atftp", "atftp"),
            "--option",
            "blksize 65464",
            "--option",
            "windowsize 64",
            "-g",
            "-r",
            "sip.ld",
            "-l",
            str(out),
            "127.0.0.1",
            str(server.address[1]),
        )

    assert out.read_bytes() == data
