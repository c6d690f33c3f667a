"""Images served by relay.webfiles.send_file over HTTPS (bodies encrypted on worker threads,
relay.tlsfile) and plain HTTP (sendfile), with curl as the phone (issue 6, part 3).

Every body is checked by sha256; TLS 1.2 and 1.3 clients; Range; keep-alive and
pipelined requests after a body; 20 parallel clients; a client that hangs up or stalls
mid-body; the plain path when the TLS internals are not the ones relay.tlsfile knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import shutil
import ssl
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web

from certs.lab import ensure_lab_identity
from certs.tls import client_context, server_context
from relay import webfiles
from relay.tlsfile import send_sealed
from relay.webfiles import send_file

HOST = "127.0.0.1"
IMAGE = "3111-48500-001.sip.ld"
# Several pieces and worker jobs (relay.tlsfile PIECE, SHARE), and not a multiple of either.
IMAGE_BYTES = 9 * 1024 * 1024 + 12_345
# Larger than loopback's socket buffers together, so the server cannot finish first.
LARGE = "large.sip.ld"
LARGE_BYTES = 64 * 1024 * 1024
ETAG = "the-sha256"
CURL = shutil.which("curl")

pytestmark = pytest.mark.skipif(CURL is None, reason="needs curl (apt-get install curl)")


@dataclass(frozen=True, slots=True)
class Served:
    https: str
    http: str
    ca: Path
    image: bytes
    work: Path


@pytest.fixture
async def runner(tmp_path: Path) -> AsyncIterator[web.AppRunner]:
    files = tmp_path / "files"
    files.mkdir()

    async def handle(request: web.Request) -> web.StreamResponse:
        return await send_file(request, files / request.match_info["name"], etag=ETAG)

    app = web.Application()
    app.router.add_route("*", "/{name}", handle)
    running = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await running.setup()
    try:
        yield running
    finally:
        await running.cleanup()
        # send_file's worker threads are the loop's default executor's.
        await asyncio.get_running_loop().shutdown_default_executor()


@pytest.fixture
async def served(runner: web.AppRunner, tmp_path: Path) -> Served:
    identity = ensure_lab_identity(tmp_path / "tls", ["localhost"], [HOST])
    image = os.urandom(IMAGE_BYTES)
    (tmp_path / "files" / IMAGE).write_bytes(image)
    with (tmp_path / "files" / LARGE).open("wb") as large:
        large.truncate(LARGE_BYTES)
    tls = web.TCPSite(runner, HOST, 0, ssl_context=server_context(identity))
    plain = web.TCPSite(runner, HOST, 0)
    await tls.start()
    await plain.start()
    tls_port, plain_port = (address[1] for address in runner.addresses)
    return Served(
        f"https://{HOST}:{tls_port}",
        f"http://{HOST}:{plain_port}",
        identity.ca_cert,
        image,
        tmp_path,
    )


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    status: int
    body: bytes
    headers: str


async def curl(served: Served, base: str, *args: str, name: str = IMAGE) -> Reply:
    """One curl run; the body is written to a file and read back."""
    assert CURL is not None
    out = served.work / f"body-{os.urandom(6).hex()}"
    headers = out.with_suffix(".headers")
    proc = await asyncio.create_subprocess_exec(
        CURL,
        "--silent",
        "--max-time",
        "120",
        "--cacert",
        str(served.ca),
        "-D",
        str(headers),
        "-o",
        str(out),
        "-w",
        "%{http_code}",
        *args,
        f"{base}/{name}",
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await proc.communicate()
    body = out.read_bytes() if out.exists() else b""
    text = headers.read_text() if headers.exists() else ""
    out.unlink(missing_ok=True)
    headers.unlink(missing_ok=True)
    return Reply(proc.returncode or 0, int(stdout or b"0"), body, text)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


TLS_VERSIONS = pytest.mark.parametrize(
    "versions", [("--tlsv1.3",), ("--tlsv1.2", "--tls-max", "1.2")], ids=["tls1.3", "tls1.2"]
)


@TLS_VERSIONS
async def test_a_whole_image_arrives_intact_over_https(
    served: Served, versions: Sequence[str]
) -> None:
    reply = await curl(served, served.https, *versions)
    assert (reply.code, reply.status) == (0, 200)
    assert digest(reply.body) == digest(served.image)


async def test_a_whole_image_arrives_intact_over_plain_http(served: Served) -> None:
    reply = await curl(served, served.http)
    assert reply.status == 200
    assert digest(reply.body) == digest(served.image)


@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_a_range_gets_206_with_exactly_those_bytes(served: Served, scheme: str) -> None:
    first, last = 300_001, 5_000_000
    reply = await curl(served, getattr(served, scheme), "-H", f"Range: bytes={first}-{last}")
    assert reply.status == 206
    assert f"content-range: bytes {first}-{last}/{IMAGE_BYTES}" in reply.headers.lower()
    assert reply.body == served.image[first : last + 1]


@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_a_matching_etag_gets_304_without_a_body(served: Served, scheme: str) -> None:
    reply = await curl(served, getattr(served, scheme), "-H", f'If-None-Match: "{ETAG}"')
    assert reply.status == 304
    assert reply.body == b""


@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_head_gives_the_length_and_no_body(served: Served, scheme: str) -> None:
    reply = await curl(served, getattr(served, scheme), "--head")
    assert reply.status == 200
    assert f"content-length: {IMAGE_BYTES}" in reply.headers.lower()
    assert reply.body.startswith(b"HTTP/1.1 200")  # --head writes the headers as the body


@pytest.mark.parametrize(
    ("scheme", "versions"),
    [("https", ("--tlsv1.3",)), ("https", ("--tlsv1.2", "--tls-max", "1.2")), ("http", ())],
    ids=["tls1.3", "tls1.2", "plain"],
)
async def test_a_second_request_on_the_same_connection_is_answered_after_a_body(
    served: Served, scheme: str, versions: Sequence[str]
) -> None:
    base = getattr(served, scheme)
    assert CURL is not None
    proc = await asyncio.create_subprocess_exec(
        CURL,
        *versions,
        "--silent",
        "--max-time",
        "120",
        "--cacert",
        str(served.ca),
        "-w",
        "%{http_code} %{num_connects}\n",
        "-o",
        str(served.work / "first"),
        f"{base}/{IMAGE}",
        "-o",
        str(served.work / "second"),
        f"{base}/{IMAGE}",
        stdout=asyncio.subprocess.PIPE,
    )
    stdout, _ = await proc.communicate()
    assert stdout.decode().split("\n")[:2] == ["200 1", "200 0"]  # one connection, reused
    for name in ("first", "second"):
        assert digest((served.work / name).read_bytes()) == digest(served.image)


async def _response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lengths = [
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    ]
    return head, await reader.readexactly(lengths[0] if lengths else 0)


async def test_requests_pipelined_behind_a_body_are_answered_in_order(served: Served) -> None:
    """The 304 in the middle goes through asyncio's own TLS writes, between two bodies
    encrypted by relay.tlsfile: the TLS state passes back and forth intact."""
    reader, writer = await asyncio.open_connection(
        HOST,
        int(served.https.rsplit(":", 1)[1]),
        ssl=client_context(served.ca),
        server_hostname="localhost",
    )
    try:
        request = f"GET /{IMAGE} HTTP/1.1\r\nHost: localhost\r\n"
        writer.write(
            f"{request}\r\n"
            f'{request}If-None-Match: "{ETAG}"\r\n\r\n'
            f"{request}Range: bytes=-1000\r\n\r\n".encode()
        )
        replies = [await _response(reader) for _ in range(3)]
    finally:
        writer.close()
        await writer.wait_closed()
    assert [head.split(b" ")[1] for head, _ in replies] == [b"200", b"304", b"206"]
    assert [digest(body) for _, body in replies] == [
        digest(served.image),
        digest(b""),
        digest(served.image[-1000:]),
    ]


@pytest.mark.parametrize("scheme", ["https", "http"])
async def test_twenty_parallel_downloads_all_arrive_intact(served: Served, scheme: str) -> None:
    replies = await asyncio.gather(*(curl(served, getattr(served, scheme)) for _ in range(20)))
    assert [reply.status for reply in replies] == [200] * 20
    assert {digest(reply.body) for reply in replies} == {digest(served.image)}


async def _stalled(served: Served) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A TLS client that asked for the large image, read its headers and stopped reading."""
    reader, writer = await asyncio.open_connection(
        HOST,
        int(served.https.rsplit(":", 1)[1]),
        ssl=client_context(served.ca),
        server_hostname="localhost",
    )
    writer.write(f"GET /{LARGE} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(100_000)
    return reader, writer, head


async def _dropped(caplog: pytest.LogCaptureFixture, count: int) -> int:
    """How many download_dropped events, once there are `count` (the server logs them on
    its own time: a client's abort reaches it on its next write)."""
    found = 0
    for _ in range(500):
        found = sum(record.getMessage() == "download_dropped" for record in caplog.records)
        if found >= count:
            break
        await asyncio.sleep(0.02)
    return found


async def test_a_client_that_hangs_up_mid_body_is_logged_and_others_are_still_served(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="relay.webfiles")
    _, writer, _ = await _stalled(served)
    writer.transport.abort()  # unread data in flight: the server's next write fails
    assert await _dropped(caplog, 1) == 1
    reply = await curl(served, served.https)
    assert digest(reply.body) == digest(served.image)


async def test_clients_hanging_up_mid_body_do_not_disturb_parallel_downloads(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="relay.webfiles")
    stalled = await asyncio.gather(*(_stalled(served) for _ in range(10)))
    downloads = asyncio.gather(*(curl(served, served.https) for _ in range(10)))
    for _, writer, _ in stalled:
        writer.transport.abort()
    replies = await downloads
    assert {digest(reply.body) for reply in replies} == {digest(served.image)}
    assert await _dropped(caplog, len(stalled)) == len(stalled)


async def test_stopping_the_server_mid_body_cuts_the_connection(
    served: Served, runner: web.AppRunner
) -> None:
    reader, writer, head = await _stalled(served)
    try:
        await runner.cleanup()  # shutdown_timeout 0.5 s: the stalled body is cancelled
        received = 100_000
        async with asyncio.timeout(60):  # a guard against hanging, not a measurement
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                while chunk := await reader.read(1 << 20):
                    received += len(chunk)
        assert f"Content-Length: {LARGE_BYTES}".encode() in head
        assert received < LARGE_BYTES
    finally:
        writer.transport.abort()


async def test_an_https_body_is_encrypted_by_relay_tlsfile(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards against a silent fall back to the plain path (e.g. another asyncio layout)."""
    results: list[bool] = []

    async def record(transport: asyncio.BaseTransport, fd: int, offset: int, count: int) -> bool:
        results.append(await send_sealed(transport, fd, offset, count))
        return results[-1]

    monkeypatch.setattr(webfiles, "send_sealed", record)
    reply = await curl(served, served.https)
    assert digest(reply.body) == digest(served.image)
    assert results == [True]


async def test_a_tls_connection_relay_tlsfile_cannot_drive_gets_the_plain_path(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    declined: list[int] = []

    async def decline(transport: asyncio.BaseTransport, fd: int, offset: int, count: int) -> bool:
        declined.append(count)
        return False

    monkeypatch.setattr(webfiles, "send_sealed", decline)
    reply = await curl(served, served.https, "-H", "Range: bytes=10-")
    assert reply.status == 206
    assert declined == [IMAGE_BYTES - 10]
    assert digest(reply.body) == digest(served.image[10:])


async def test_send_sealed_declines_a_transport_that_is_not_asyncio_tls(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x" * 100)
    with (tmp_path / "file").open("rb") as file:
        assert await send_sealed(asyncio.Transport(), file.fileno(), 0, 100) is False
