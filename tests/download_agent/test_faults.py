"""A content server at fault (issue 6, "Faults and bad input"): the image is not
published, status.json says why, and a later attempt publishes it intact."""

from __future__ import annotations

from download_agent.settings import DownloadSettings
from relay.sync.images import CachedImage
from tests.download_agent.conftest import (
    MIB,
    ContentServer,
    LocalSource,
    RawServer,
    Runner,
    assert_not_published,
    assert_published,
    image_of,
    payload,
    until,
    until_status,
)


async def failed_because(settings: DownloadSettings, image: CachedImage, reason: str) -> None:
    """The image failed for `reason` and nothing of it is served."""
    state = await until_status(settings, image, "failed")
    assert reason in state["reason"]
    assert_not_published(settings, image)


async def recovers(
    content: ContentServer, source: LocalSource, settings: DownloadSettings, image: CachedImage
) -> None:
    """With the fault gone, "sync images" publishes the image."""
    content.fault = None
    source.sync_again()
    await until_status(settings, image, "synced")


async def test_corrupted_bytes_fail_the_sha256_check_and_the_partial_is_deleted(
    content: ContentServer, source: LocalSource, agent: Runner, settings: DownloadSettings
) -> None:
    image = content.add(payload(MIB))
    content.fault = "corrupt"
    source.publish([image])
    async with agent():
        await failed_because(settings, image, "do not match the image's sha256")
        assert not (settings.images_dir / "partial" / f"{image.sha256}.part").exists()
        await recovers(content, source, settings, image)
    assert_published(settings, image)
    assert content.ranges[-1] is None


async def test_a_truncated_body_keeps_the_partial_and_the_retry_resumes_from_it(
    content: ContentServer, source: LocalSource, agent: Runner, settings: DownloadSettings
) -> None:
    image = content.add(payload(MIB))
    content.fault = "truncate"
    source.publish([image])
    async with agent():
        await failed_because(settings, image, "resumes from there")
        part = settings.images_dir / "partial" / f"{image.sha256}.part"
        assert part.stat().st_size == MIB // 2
        await recovers(content, source, settings, image)
    assert_published(settings, image)
    assert content.ranges == [None, f"bytes={MIB // 2}-"]


async def test_a_wrong_content_length_is_refused_before_any_byte_is_kept(
    source: LocalSource, agent: Runner, settings: DownloadSettings
) -> None:
    data = payload(MIB)
    raw = RawServer(data)
    await raw.start()
    try:
        image = image_of(data, f"http://127.0.0.1:{raw.port}/sip.ld")
        raw.skew = -100
        source.publish([image])
        async with agent():
            state = await until_status(settings, image, "failed")
            assert "wrong Content-Length" in state["reason"]
            assert_not_published(settings, image)
            raw.skew = 0
            source.sync_again()
            await until_status(settings, image, "synced")
        assert_published(settings, image)
    finally:
        await raw.stop()


async def test_more_bytes_than_the_image_size_fail_and_the_partial_is_deleted(
    content: ContentServer, source: LocalSource, agent: Runner, settings: DownloadSettings
) -> None:
    image = content.add(payload(MIB))
    content.fault = "extra"
    source.publish([image])
    async with agent():
        await failed_because(settings, image, "more bytes than the image's")
        assert not (settings.images_dir / "partial" / f"{image.sha256}.part").exists()
        await recovers(content, source, settings, image)
    assert_published(settings, image)


async def test_a_200_to_a_ranged_request_starts_over_with_that_body(
    content: ContentServer, source: LocalSource, agent: Runner, settings: DownloadSettings
) -> None:
    image = content.add(payload(MIB))
    content.fault = "truncate"
    source.publish([image])
    async with agent():
        await until_status(settings, image, "failed")
        content.fault = "ignore_range"
        source.sync_again()
        await until_status(settings, image, "synced")
    assert_published(settings, image)
    assert content.ranges == [None, f"bytes={MIB // 2}-"]


async def test_a_206_from_the_wrong_start_fails_as_an_ignored_range(
    content: ContentServer, source: LocalSource, agent: Runner, settings: DownloadSettings
) -> None:
    image = content.add(payload(MIB))
    content.fault = "truncate"
    source.publish([image])
    async with agent():
        await until_status(settings, image, "failed")
        content.fault = "wrong_start"
        source.sync_again()
        await until(lambda: len(content.ranges) == 2)
        await failed_because(settings, image, "the server ignored the range")
        await recovers(content, source, settings, image)
    assert_published(settings, image)
    assert content.ranges[-1] == f"bytes={MIB // 2}-"


async def test_a_stall_fails_after_the_stall_timeout_and_the_retry_resumes(
    content: ContentServer, source: LocalSource, agent: Runner, settings: DownloadSettings
) -> None:
    image = content.add(payload(MIB))
    content.fault = "stall"
    source.publish([image])
    async with agent():
        await failed_because(settings, image, "no data for 0.5 s")
        content.fault = None
        content.released.set()
        source.sync_again()
        await until_status(settings, image, "synced")
    assert_published(settings, image)
    assert content.ranges == [None, f"bytes={MIB // 2}-"]


async def test_an_http_error_fails_with_its_status(
    content: ContentServer, source: LocalSource, agent: Runner, settings: DownloadSettings
) -> None:
    image = content.add(payload(MIB))
    content.fault = "http_error"
    source.publish([image])
    async with agent():
        await failed_because(settings, image, "HTTP 503")
        await recovers(content, source, settings, image)
    assert_published(settings, image)


async def test_a_failed_image_is_retried_with_backoff_without_being_asked(
    content: ContentServer, source: LocalSource, agent: Runner, settings: DownloadSettings
) -> None:
    image = content.add(payload(MIB))
    content.fault = "http_error"
    source.publish([image])
    async with agent(retry_base=0.05, retry_cap=0.1):
        await until(lambda: len(content.ranges) >= 3)
        content.fault = None
        await until_status(settings, image, "synced")
    assert_published(settings, image)
