"""Fixtures for the download agent: a loopback content server that serves images
correctly or with one fault at a time, an in-test image source standing in for
the cloud, a way to run the agent against both, and the real embedded cloud with
a registered relay for the agent as its own process."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import os
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from download_agent.settings import DownloadSettings
from download_agent.source import ranged_get
from download_agent.syncer import DownloadAgent
from management_agent.link import Identity, LinkDown
from relay.sync.images import CachedImage, ImageReport, ImageSet, parse_index
from tests.api.conftest import Api, register_relay, served_plane

MIB = 1024 * 1024
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FAULTS = ("corrupt", "truncate", "ignore_range", "wrong_start", "stall", "extra", "http_error")


def image_of(data: bytes, url: str, *, number: int = 1) -> CachedImage:
    return CachedImage(
        id=f"{number:08x}",
        model="VVX",
        version=f"6.4.{number}",
        filename=f"sip-{number}.ld",
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        url=url,
    )


def payload(size: int, seed: int = 1) -> bytes:
    block = hashlib.sha256(seed.to_bytes(4, "big")).digest()
    return (block * (size // len(block) + 1))[:size]


class ContentServer:
    """Serves `blobs[name]` at /name with Range support, or with `fault`:
    corrupt (one byte flipped), truncate (half the body, then the connection
    closes), ignore_range (200 with the whole body), wrong_start (206 from one
    byte later than asked), stall (half the body, then nothing), extra (no
    Content-Length, more bytes than the image), http_error (503)."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.fault: str | None = None
        self.ranges: list[str | None] = []
        self.before_body: Callable[[], None] | None = None
        self.released = asyncio.Event()
        self.port = 0
        self._runner: web.AppRunner | None = None

    def add(self, data: bytes, number: int = 1) -> CachedImage:
        name = f"image-{number}"
        self.blobs[name] = data
        return image_of(data, f"http://127.0.0.1:{self.port}/{name}", number=number)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/{name}", self._serve)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self.released.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        data = self.blobs[request.match_info["name"]]
        asked = request.headers.get("Range")
        self.ranges.append(asked)
        fault = self.fault
        if fault == "http_error":
            return web.Response(status=503, text="busy")
        start = int(asked.removeprefix("bytes=").removesuffix("-")) if asked else 0
        if fault == "ignore_range":
            start = 0
        if fault == "wrong_start":
            start += 1
        body = data[start:]
        if fault == "corrupt":
            middle = len(body) // 2
            body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
        response = web.StreamResponse(status=206 if asked and fault != "ignore_range" else 200)
        if response.status == 206:
            response.headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        if fault == "extra":
            response.enable_chunked_encoding()
            body += b"x" * 4096
        else:
            response.content_length = len(body)
        if self.before_body is not None:
            self.before_body()
        await response.prepare(request)
        if fault in ("truncate", "stall"):
            await response.write(body[: len(body) // 2])
            if fault == "stall":
                await self.released.wait()
            response.force_close()
            return response
        await response.write(body)
        return response


class RawServer:
    """Raw HTTP/1.1 on a socket: answers with a Content-Length `skew` bytes off the
    body it sends (aiohttp's server would not let a handler lie about it)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.skew = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Length: {len(self.data) + self.skew}\r\n"
                "Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + self.data)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class LocalSource:
    """The cloud's side of the agent, in the test: `publish` a new set; reports are
    kept in `reports`; content is fetched from each image's URL; `down` makes it
    unreachable (`refused` counts the attempts)."""

    def __init__(self) -> None:
        self.current: ImageSet | None = None
        self.reports: list[ImageReport] = []
        self.down = False
        self.refused = 0
        self._changed = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._count = 0

    def publish(self, images: Sequence[CachedImage], sync: int = 0) -> None:
        self._count += 1
        self.current = ImageSet(f"set-{self._count}", tuple(images), sync)
        self._changed.set()

    def sync_again(self) -> None:
        """An admin's "sync images": same images, a larger `sync`."""
        assert self.current is not None
        self.publish(self.current.images, self.current.sync + 1)

    async def image_set(self, etag: str | None, wait: float) -> ImageSet | None:
        if self.down:
            self.refused += 1
            raise LinkDown("the stand-in cloud is down")
        if self.current is not None and self.current.etag != etag:
            return self.current
        self._changed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._changed.wait()
        if self.current is not None and self.current.etag != etag:
            return self.current
        return None

    async def report(self, report: ImageReport) -> None:
        if self.down:
            raise LinkDown("the stand-in cloud is down")
        self.reports.append(report)

    def content(
        self, image: CachedImage, offset: int, stall_seconds: float
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        if self._session is None:
            self._session = aiohttp.ClientSession(auto_decompress=False)
        return ranged_get(self._session, image.url, offset, stall_seconds)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


@pytest.fixture
async def content() -> AsyncIterator[ContentServer]:
    server = ContentServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def source() -> AsyncIterator[LocalSource]:
    local = LocalSource()
    yield local
    await local.aclose()


@pytest.fixture
def settings(tmp_path: Path) -> DownloadSettings:
    """Fast test settings; a failed image waits a minute unless the test syncs again."""
    return DownloadSettings(
        data_dir=tmp_path / "data",
        reserve_bytes=0,
        stall_seconds=0.5,
        poll_wait=1.0,
        report_seconds=0.05,
        status_seconds=0.05,
        sweep_seconds=0.05,
        retry_base=60.0,
        retry_cap=60.0,
    )


Runner = Callable[..., AbstractAsyncContextManager[DownloadAgent]]


@pytest.fixture
def agent(source: LocalSource, settings: DownloadSettings) -> Runner:
    """`async with agent(**changes):` runs a DownloadAgent on `source` until the block ends."""

    @contextlib.asynccontextmanager
    async def running(**changes: Any) -> AsyncIterator[DownloadAgent]:
        download = DownloadAgent(source, replace(settings, **changes))
        task = asyncio.create_task(download.run())
        try:
            yield download
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    return running


def status_of(settings: DownloadSettings, image: CachedImage) -> dict[str, Any] | None:
    try:
        document = json.loads((settings.images_dir / "status.json").read_bytes())
    except (OSError, ValueError):
        return None
    for entry in document["images"]:
        if entry["id"] == image.id:
            return dict(entry)
    return None


def published_ids(settings: DownloadSettings) -> list[str]:
    try:
        return [i.id for i in parse_index((settings.images_dir / "index.json").read_bytes())]
    except FileNotFoundError:
        return []


async def until(condition: Callable[[], bool], seconds: float = 20.0) -> None:
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


async def until_status(
    settings: DownloadSettings, image: CachedImage, wanted: str
) -> dict[str, Any]:
    def reached() -> bool:
        state = status_of(settings, image)
        return state is not None and state["status"] == wanted

    await until(reached)
    state = status_of(settings, image)
    assert state is not None
    return state


def assert_published(settings: DownloadSettings, image: CachedImage) -> None:
    blob = settings.images_dir / "blobs" / image.sha256
    assert image.id in published_ids(settings)
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == image.sha256
    assert blob.stat().st_mode & 0o777 == 0o444


def assert_not_published(settings: DownloadSettings, image: CachedImage) -> None:
    assert image.id not in published_ids(settings)
    assert not (settings.images_dir / "blobs" / image.sha256).exists()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs: a disk that fills up for real."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


AGENT_IMAGES = "/api/v1/agent/images"


@dataclass
class RealCloud:
    """The embedded control plane's API on loopback, a relay registered to it (its
    `identity` is what `python -m download_agent` reads), and images uploaded to it.
    `polls` counts the agent's requests for its image set."""

    api: Api
    relay: Identity
    images: list[CachedImage] = field(default_factory=list)
    polls: int = 0

    async def choose(self, images: Sequence[CachedImage]) -> None:
        """Set the tenant's relay image set through `PUT /api/v1/relay-images`."""
        reply = await self.api.put("/relay-images", [i.id for i in images])
        assert reply.status == 200, reply.text

    async def relay_view(self) -> list[dict[str, Any]]:
        """`GET /api/v1/relays/{id}/images`: the relay's last report, as an admin sees it."""
        reply = await self.api.get(f"/relays/{self.relay.relay_id}/images")
        assert reply.status == 200, reply.text
        return list(reply.body)

    async def upload(self, data: bytes, number: int) -> CachedImage:
        """`POST /api/v1/images` with the file as the body; streamed, as aiohttp asks of
        a body this large."""
        params = {"model": "VVX", "version": f"6.4.{number}", "filename": "sip.ld"}
        stream: Any = io.BytesIO(data)
        reply = await self.api.post(
            "/images", data=stream, content_type="application/octet-stream", params=params
        )
        assert reply.status == 201, reply.text
        image = CachedImage(
            reply.body["id"], "VVX", params["version"], "sip.ld", len(data), reply.body["sha256"]
        )
        self.images.append(image)
        return image


@pytest.fixture
async def real_cloud(tmp_path: Path) -> AsyncIterator[RealCloud]:
    """ControlPlane and its API app on 127.0.0.1 port 0, one registered relay."""
    cloud: RealCloud | None = None

    @web.middleware
    async def count_polls(request: web.Request, handler: Handler) -> web.StreamResponse:
        if cloud is not None and request.method == "GET" and request.path == AGENT_IMAGES:
            cloud.polls += 1
        return await handler(request)

    async with served_plane(tmp_path, middlewares=[count_polls]) as served:
        api = served.api
        base = api.base.removesuffix("/api/v1")
        credential = await register_relay(api)
        tenant = (await api.get("/tenant")).body["id"]
        relay = Identity(base, tenant, credential.relay_id, credential.secret)
        cloud = RealCloud(api, relay)
        yield cloud
