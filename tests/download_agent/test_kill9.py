"""kill -9 of `python -m download_agent` at random points of a sync, 50 times (issue 6,
"Faults and bad input"): after every kill index.json parses, every blob it names
is there with the right sha256 and nothing in blobs/ is unverified; the next
start resumes, and in the end every image is published intact and the cloud
shows each one synced.

The agent talks to the real embedded cloud (the control plane's API on loopback,
as a registered relay); the relay image set changes through `PUT
/api/v1/relay-images` before every start, so publishing and deleting both happen
under kills. The agent's own `--rate-limit` slows the sync so that an image
takes most of a second and kills land mid-download.
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

from management_agent.agent import CREDENTIAL_FILE
from relay.sync.images import parse_index
from tests.download_agent.conftest import MIB, RealCloud, payload, until

KILLS = 50
RATE_LIMIT = 1_000_000
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def cloud(real_cloud: RealCloud) -> AsyncIterator[RealCloud]:
    """The real cloud with four images of 1 MiB uploaded to it."""
    for number in range(1, 5):
        await real_cloud.upload(payload(MIB, seed=number), number)
    yield real_cloud


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
            "--rate-limit",
            str(RATE_LIMIT),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=stderr,
            cwd=ROOT,
        )


async def test_kill_9_at_random_points_never_publishes_an_unverified_image(
    cloud: RealCloud, tmp_path: Path
) -> None:
    data_dir = tmp_path / "relay"
    cloud.relay.save(data_dir / "agent" / CREDENTIAL_FILE)
    log = tmp_path / "agent.log"
    rng = random.Random(6)
    images = cloud.images
    for kill in range(KILLS):
        await cloud.choose([images[kill % 4], images[(kill + 1) % 4]])
        agent = await start_agent(data_dir, log)
        try:
            await until(polled(cloud, cloud.polls), seconds=30)
            await asyncio.sleep(rng.uniform(0.0, 0.8))
        finally:
            agent.send_signal(signal.SIGKILL)
            await agent.wait()
        verified(data_dir / "images")
    final = images[:2]
    await cloud.choose(final)
    agent = await start_agent(data_dir, log)
    try:
        await until(lambda: verified(data_dir / "images") == [i.id for i in final], 60)
        await until(lambda: _all_synced(data_dir), 10)
        status = json.loads((data_dir / "images" / "status.json").read_bytes())
        for _ in range(300):
            view = await cloud.relay_view()
            if all(entry["status"] == "synced" for entry in view):
                break
            await asyncio.sleep(0.1)
    finally:
        agent.send_signal(signal.SIGTERM)
        assert await agent.wait() == 0
    assert [i["id"] for i in status["images"]] == [i.id for i in final]
    assert sorted(p.name for p in (data_dir / "images" / "blobs").iterdir()) == sorted(
        i.sha256 for i in final
    )
    assert [(e["image"], e["status"], e["progress"]) for e in view] == [
        (i.id, "synced", 1) for i in final
    ]


def polled(cloud: RealCloud, before: int) -> Callable[[], bool]:
    return lambda: cloud.polls > before


def _all_synced(data_dir: Path) -> bool:
    status = json.loads((data_dir / "images" / "status.json").read_bytes())
    return all(entry["status"] == "synced" for entry in status["images"])
