"""kill -9 of `python -m download_agent` at random points of a sync, 50 times (issue 6,
"Faults and bad input"): after every kill index.json parses, every blob it names
is there with the right sha256 and nothing in blobs/ is unverified; the next
start resumes, and in the end every image is published intact.

The agent runs against a stand-in for the cloud's three agent routes (the real
`/api/v1/agent/images` routes were not there yet), on loopback, with a throttled
content route so that each image takes about a second.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import signal
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp import web

from management_agent.agent import CREDENTIAL_FILE
from management_agent.link import Identity
from relay.sync.images import CachedImage, ImageSet, parse_index
from tests.download_agent.conftest import MIB, image_of, payload, until

KILLS = 50
CHUNK = 64 * 1024
CHUNK_PAUSE = 0.05
ROOT = Path(__file__).resolve().parents[2]
IDENTITY = Identity("http://127.0.0.1:0", "tenant1", "relay0001", "s3cret-for-tests")


class StandInCloud:
    """The cloud's agent image routes (GET set, GET content, PUT status), nothing else."""

    def __init__(self, images: list[CachedImage]) -> None:
        self.images = images
        self.blobs: dict[str, bytes] = {}
        self.current = ImageSet("e0", ())
        self.polls = 0
        self.changed = asyncio.Event()
        self.port = 0
        self._runner: web.AppRunner | None = None

    def offer(self, images: list[CachedImage], etag: str) -> None:
        self.current = ImageSet(etag, tuple(images))
        self.changed.set()
        self.changed = asyncio.Event()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/api/v1/agent/images", self._set)
        app.router.add_get("/api/v1/agent/images/{id}/content", self._content)
        app.router.add_put("/api/v1/agent/images/status", self._status)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        self.changed.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def _allowed(self, request: web.Request) -> bool:
        expected = f"Relay {IDENTITY.relay_id}:{IDENTITY.secret}"
        return request.headers.get("Authorization") == expected

    async def _set(self, request: web.Request) -> web.StreamResponse:
        if not self._allowed(request):
            return web.json_response({"error": {"message": "who?"}}, status=401)
        self.polls += 1
        tag = f'"{self.current.etag}"'
        if request.headers.get("If-None-Match") == tag:
            changed = self.changed
            try:
                async with asyncio.timeout(float(request.query.get("wait", "30"))):
                    await changed.wait()
            except TimeoutError:
                return web.Response(status=304)
        return web.json_response(self.current.to_wire(), headers={"ETag": f'"{self.current.etag}"'})

    async def _content(self, request: web.Request) -> web.StreamResponse:
        if not self._allowed(request):
            return web.json_response({"error": {"message": "who?"}}, status=401)
        data = self.blobs[request.match_info["id"]]
        asked = request.headers.get("Range")
        start = int(asked.removeprefix("bytes=").removesuffix("-")) if asked else 0
        response = web.StreamResponse(status=206 if asked else 200)
        if asked:
            response.headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        response.content_length = len(data) - start
        await response.prepare(request)
        try:
            for offset in range(start, len(data), CHUNK):
                await response.write(data[offset : offset + CHUNK])
                await asyncio.sleep(CHUNK_PAUSE)
        except ConnectionResetError:
            response.force_close()
        return response

    async def _status(self, request: web.Request) -> web.StreamResponse:
        if not self._allowed(request):
            return web.json_response({"error": {"message": "who?"}}, status=401)
        await request.read()
        return web.json_response({"etag": self.current.etag})


@pytest.fixture
async def cloud() -> AsyncIterator[StandInCloud]:
    images: list[CachedImage] = []
    server = StandInCloud(images)
    await server.start()
    for number in range(1, 5):
        data = payload(MIB, seed=number)
        image = image_of(data, "", number=number)
        server.blobs[image.id] = data
        images.append(image)
    yield server
    await server.stop()


def verified(images_dir: Path) -> list[str]:
    """The invariant a phone relies on; returns the ids index.json publishes."""
    blobs = images_dir / "blobs"
    for blob in blobs.iterdir() if blobs.exists() else []:
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name, blob.name
    index = images_dir / "index.json"
    listed = parse_index(index.read_bytes()) if index.exists() else ()
    for image in listed:
        assert (blobs / image.sha256).exists(), image.id
    return [i.id for i in listed]


async def start_agent(data_dir: Path, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as stderr:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "download_agent",
            "--data-dir",
            str(data_dir),
            "--reserve",
            "0",
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
            cwd=ROOT,
        )


async def test_kill_9_at_random_points_never_publishes_an_unverified_image(
    cloud: StandInCloud, tmp_path: Path
) -> None:
    data_dir = tmp_path / "relay"
    identity = Identity(
        f"http://127.0.0.1:{cloud.port}", IDENTITY.tenant, IDENTITY.relay_id, IDENTITY.secret
    )
    identity.save(data_dir / "agent" / CREDENTIAL_FILE)
    log = tmp_path / "agent.log"
    rng = random.Random(6)
    images = cloud.images
    for kill in range(KILLS):
        cloud.offer([images[kill % 4], images[(kill + 1) % 4]], f"e{kill}")
        agent = await start_agent(data_dir, log)
        try:
            await until(polled(cloud, cloud.polls), seconds=30)
            await asyncio.sleep(rng.uniform(0.0, 0.8))
        finally:
            agent.send_signal(signal.SIGKILL)
            await agent.wait()
        verified(data_dir / "images")
    cloud.offer(images[:2], "final")
    agent = await start_agent(data_dir, log)
    try:
        await until(lambda: verified(data_dir / "images") == [i.id for i in images[:2]], 60)
        await until(lambda: _all_synced(data_dir), 10)
        status = json.loads((data_dir / "images" / "status.json").read_bytes())
    finally:
        agent.send_signal(signal.SIGTERM)
        assert await agent.wait() == 0
    assert [i["id"] for i in status["images"]] == [i.id for i in images[:2]]
    assert sorted(p.name for p in (data_dir / "images" / "blobs").iterdir()) == sorted(
        i.sha256 for i in images[:2]
    )


def polled(cloud: StandInCloud, before: int) -> Callable[[], bool]:
    return lambda: cloud.polls > before


def _all_synced(data_dir: Path) -> bool:
    status = json.loads((data_dir / "images" / "status.json").read_bytes())
    return all(entry["status"] == "synced" for entry in status["images"])
