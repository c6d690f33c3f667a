"""The content store as the agent keeps it: content-addressed, never deleting a blob
a reader holds, resuming after a restart, and never filling the disk."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from download_agent.settings import DownloadSettings
from relay.frontend.firmware import PublishedImages
from tests.download_agent.conftest import (
    MIB,
    ContentServer,
    LocalSource,
    Runner,
    assert_not_published,
    assert_published,
    payload,
    published_ids,
    until,
    until_status,
)


async def test_two_images_with_the_same_bytes_are_downloaded_and_stored_once(
    content: ContentServer, source: LocalSource, agent: Runner, settings: DownloadSettings
) -> None:
    data = payload(MIB)
    first = content.add(data, number=1)
    second = content.add(data, number=2)
    source.publish([first, second])
    async with agent():
        await until(lambda: published_ids(settings) == [first.id, second.id])
    assert len(content.ranges) == 1
    assert [p.name for p in (settings.images_dir / "blobs").iterdir()] == [first.sha256]
    assert_published(settings, second)


async def test_a_dropped_image_leaves_the_index_but_its_blob_waits_for_the_reader(
    content: ContentServer, source: LocalSource, agent: Runner, settings: DownloadSettings
) -> None:
    kept = content.add(payload(MIB, seed=1), number=1)
    dropped = content.add(payload(MIB, seed=2), number=2)
    source.publish([kept, dropped])
    async with agent():
        await until(lambda: published_ids(settings) == [kept.id, dropped.id])
        blob = settings.images_dir / "blobs" / dropped.sha256
        # The relay's front end serving it: a shared lock until it is done.
        name = f"images/{dropped.id}/{dropped.filename}"
        served = PublishedImages(settings.images_dir).open(name)
        assert served is not None
        fd, _ = served
        try:
            source.publish([kept])
            await until(lambda: published_ids(settings) == [kept.id])
            assert blob.exists()
            assert hashlib.sha256(os.pread(fd, 2 * MIB, 0)).hexdigest() == dropped.sha256
        finally:
            os.close(fd)
        await until(lambda: not blob.exists())
    assert_published(settings, kept)


async def test_a_partial_of_an_image_no_longer_wanted_is_removed(
    content: ContentServer, source: LocalSource, agent: Runner, settings: DownloadSettings
) -> None:
    image = content.add(payload(MIB))
    content.fault = "truncate"
    source.publish([image])
    part = settings.images_dir / "partial" / f"{image.sha256}.part"
    async with agent():
        await until_status(settings, image, "failed")
        assert part.exists()
        source.publish([])
        await until(lambda: not part.exists())
    assert_not_published(settings, image)


async def test_a_restart_resumes_the_partial_and_trusts_blobs_of_the_right_size(
    content: ContentServer, source: LocalSource, agent: Runner, settings: DownloadSettings
) -> None:
    whole = content.add(payload(MIB, seed=1), number=1)
    cut = content.add(payload(MIB, seed=2), number=2)
    source.publish([whole])
    async with agent():
        await until_status(settings, whole, "synced")
    content.fault = "truncate"
    source.publish([whole, cut])
    async with agent():
        await until_status(settings, cut, "failed")
    content.fault = None
    content.ranges.clear()
    async with agent():
        await until_status(settings, cut, "synced")
    assert content.ranges == [f"bytes={MIB // 2}-"]
    assert_published(settings, whole)
    assert_published(settings, cut)


async def test_a_blob_of_the_wrong_size_is_not_trusted_at_start(
    content: ContentServer, source: LocalSource, agent: Runner, settings: DownloadSettings
) -> None:
    image = content.add(payload(MIB))
    source.publish([image])
    async with agent():
        await until_status(settings, image, "synced")
    blob = settings.images_dir / "blobs" / image.sha256
    blob.chmod(0o644)
    with blob.open("r+b") as damaged:
        damaged.truncate(1000)
    source.publish([])
    async with agent():
        await until(lambda: not blob.exists())
        assert published_ids(settings) == []


async def test_the_reserve_is_never_filled_and_the_status_says_how_to_fix_it(
    content: ContentServer, source: LocalSource, agent: Runner, settings: DownloadSettings
) -> None:
    image = content.add(payload(MIB))
    source.publish([image])
    async with agent(reserve_bytes=2**60):
        state = await until_status(settings, image, "failed")
    assert state["reason"].startswith("not enough disk space: needs ")
    assert "kept in reserve; free space or lower the reserve" in state["reason"]
    assert content.ranges == []
    assert_not_published(settings, image)
    async with agent(reserve_bytes=0):
        await until_status(settings, image, "synced")
    assert_published(settings, image)


async def test_an_image_bigger_than_the_disk_is_refused_and_leaves_nothing(
    content: ContentServer,
    source: LocalSource,
    agent: Runner,
    settings: DownloadSettings,
    small_disk: Path,
) -> None:
    image = content.add(payload(12 * MIB))
    source.publish([image])
    async with agent(data_dir=small_disk):
        on_disk = DownloadSettings(data_dir=small_disk)
        state = await until_status(on_disk, image, "failed")
        assert state["reason"].startswith("not enough disk space")
        assert not any((small_disk / "images" / "partial").iterdir())
        assert_not_published(on_disk, image)


async def test_a_disk_that_fills_up_mid_download_leaves_nothing_half_written(
    content: ContentServer,
    source: LocalSource,
    agent: Runner,
    small_disk: Path,
) -> None:
    image = content.add(payload(6 * MIB))
    filler = small_disk / "filler"

    def fill_the_disk() -> None:
        stats = os.statvfs(small_disk)
        with filler.open("wb") as out:
            out.write(b"\0" * (stats.f_bavail * stats.f_frsize - MIB))

    content.before_body = fill_the_disk
    source.publish([image])
    on_disk = DownloadSettings(data_dir=small_disk)
    async with agent(data_dir=small_disk):
        state = await until_status(on_disk, image, "failed")
        assert state["reason"].startswith("disk full")
        assert not any((small_disk / "images" / "partial").iterdir())
        assert_not_published(on_disk, image)
        content.before_body = None
        filler.unlink()
        source.sync_again()
        await until_status(on_disk, image, "synced")
    assert_published(on_disk, image)


async def test_the_published_index_stays_while_the_cloud_is_unreachable(
    content: ContentServer,
    source: LocalSource,
    agent: Runner,
    settings: DownloadSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    image = content.add(payload(MIB))
    source.publish([image])
    async with agent():
        await until_status(settings, image, "synced")
    source.down = True
    async with agent(retry_base=0.01, retry_cap=0.02):
        await until(lambda: source.refused >= 3)
        assert published_ids(settings) == [image.id]
        assert [r.getMessage() for r in caplog.records].count("link_down") == 1
    assert_published(settings, image)


async def test_the_cloud_hears_every_image_synced(
    content: ContentServer, source: LocalSource, agent: Runner, settings: DownloadSettings
) -> None:
    image = content.add(payload(MIB))
    source.publish([image])
    async with agent():
        await until(
            lambda: bool(source.reports) and source.reports[-1].states[0].status == "synced"
        )
    state = source.reports[-1].states[0]
    assert (state.image, state.progress, state.reason) == (image.id, 1.0, "")
