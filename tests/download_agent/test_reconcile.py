"""Matching the store to an image set: pure decisions."""

from __future__ import annotations

from download_agent.reconcile import plan
from relay.sync.images import CachedImage


def image(number: int, sha: str, size: int = 100) -> CachedImage:
    return CachedImage(f"{number:08x}", "VVX", "6.4.3", f"sip{number}.ld", size, sha * 64)


def test_a_present_blob_of_the_right_size_is_published_in_set_order() -> None:
    images = [image(1, "a"), image(2, "b")]
    result = plan(images, {"b" * 64: 100, "a" * 64: 100}, set())
    assert result.published == tuple(images)
    assert result.missing == ()


def test_a_missing_image_is_downloaded_once_per_sha256() -> None:
    first, twin, other = image(1, "a"), image(2, "a"), image(3, "b")
    assert plan([first, twin, other], {}, set()).missing == (first, other)


def test_a_blob_of_the_wrong_size_is_neither_published_nor_kept() -> None:
    damaged = image(1, "a")
    result = plan([damaged], {"a" * 64: 99}, set())
    assert result.published == ()
    assert result.missing == (damaged,)
    assert result.drop_blobs == ("a" * 64,)


def test_blobs_of_images_dropped_from_the_set_are_deleted() -> None:
    result = plan([image(1, "a")], {"a" * 64: 100, "c" * 64: 5}, set())
    assert result.drop_blobs == ("c" * 64,)


def test_partials_are_kept_only_for_images_still_missing() -> None:
    result = plan([image(1, "a"), image(2, "b")], {"a" * 64: 100}, {"a" * 64, "b" * 64, "c" * 64})
    assert result.drop_partials == ("a" * 64, "c" * 64)


def test_an_empty_set_drops_everything() -> None:
    result = plan([], {"a" * 64: 1}, {"b" * 64})
    assert (result.published, result.missing) == ((), ())
    assert (result.drop_blobs, result.drop_partials) == (("a" * 64,), ("b" * 64,))
