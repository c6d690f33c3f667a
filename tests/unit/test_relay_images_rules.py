"""The relay image set's rules (cloud.md "Software": at most 40 images and 30 GB),
its etag and the per-relay view, without sockets or a store."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.relayimages import (
    WAITING,
    cached_image,
    check_set,
    disk_view,
    parse_set_body,
    relay_view,
    set_etag,
    set_summary,
)
from relay.sync.images import MAX_SET_BYTES, MAX_SET_IMAGES, CachedImage

GB = 10**9


def image(n: int, **changes: Any) -> CachedImage:
    base = CachedImage(f"{n:016x}", "VVX", f"6.4.{n}", "sip.ld", 1000 + n, f"{n:064x}")
    return dataclasses.replace(base, **changes)


def refusal(fn: Any, *args: Any) -> RuleError:
    with pytest.raises(RuleError) as caught:
        fn(*args)
    return caught.value


def test_a_list_of_ids_is_kept_in_order() -> None:
    assert parse_set_body(["b", "a", "c"]) == ("b", "a", "c")


@pytest.mark.parametrize("body", [{"images": []}, "a", None, 5])
def test_a_body_that_is_not_a_list_is_400(body: object) -> None:
    assert refusal(parse_set_body, body).status == 400


@pytest.mark.parametrize("item", [5, None, "", "x" * 65, ["a"]])
def test_an_item_that_is_not_an_id_is_400(item: object) -> None:
    error = refusal(parse_set_body, ["a", item])
    assert error.status == 400
    assert "item 1" in error.message


def test_an_image_named_twice_is_refused_naming_it() -> None:
    error = refusal(parse_set_body, ["a", "b", "a"])
    assert (error.status, error.code) == (422, "duplicate_image")
    assert "'a'" in error.message


def test_forty_images_are_allowed() -> None:
    ids = [str(n) for n in range(MAX_SET_IMAGES)]
    assert check_set(ids, dict.fromkeys(ids, 1)) == MAX_SET_IMAGES


def test_forty_one_images_are_refused_saying_the_limit_and_the_count() -> None:
    ids = [str(n) for n in range(MAX_SET_IMAGES + 1)]
    error = refusal(check_set, ids, dict.fromkeys(ids, 1))
    assert (error.status, error.code) == (422, "too_many_images")
    assert error.message == "the relay set may hold at most 40 images; this one has 41"


def test_an_unknown_image_is_404_naming_it() -> None:
    error = refusal(check_set, ["a", "ghost"], {"a": 1})
    assert (error.status, error.code) == (404, "not_found")
    assert "'ghost'" in error.message


def test_exactly_30_gb_is_allowed() -> None:
    assert check_set(["a", "b"], {"a": 10 * GB, "b": 20 * GB}) == MAX_SET_BYTES


def test_one_byte_over_30_gb_is_refused_saying_the_total_and_the_limit() -> None:
    error = refusal(check_set, ["a", "b"], {"a": 10 * GB, "b": 20 * GB + 1})
    assert (error.status, error.code) == (422, "too_large")
    assert "at most 30 GB" in error.message
    assert "30.01 GB" in error.message


def test_the_summary_states_the_limits() -> None:
    assert set_summary(["a"], 5) == {
        "images": ["a"],
        "count": 1,
        "bytes": 5,
        "max_images": 40,
        "max_bytes": 30_000_000_000,
    }


def test_an_uploaded_image_is_fetched_from_the_cloud_even_with_a_url() -> None:
    row = {**image(1).to_wire(), "url": "http://x.example/sip.ld", "stored": 1}
    assert cached_image(row).url == ""


def test_a_registered_image_without_upload_is_fetched_from_its_url() -> None:
    row = {**image(1).to_wire(), "url": "http://x.example/sip.ld", "stored": 0}
    assert cached_image(row).url == "http://x.example/sip.ld"


def test_the_etag_is_stable_for_the_same_set_and_counter() -> None:
    assert set_etag([image(1), image(2)], 3) == set_etag([image(1), image(2)], 3)


@pytest.mark.parametrize(
    "field", [("size", 5), ("sha256", "f" * 64), ("url", "http://a.example/"), ("version", "7")]
)
def test_the_etag_changes_with_any_fact_of_an_image(field: tuple[str, object]) -> None:
    changed = image(1, **{field[0]: field[1]})
    assert set_etag([changed], 0) != set_etag([image(1)], 0)


def test_the_etag_changes_with_the_order() -> None:
    assert set_etag([image(1), image(2)], 0) != set_etag([image(2), image(1)], 0)


def test_the_etag_changes_with_the_sync_counter() -> None:
    assert set_etag([image(1)], 1) != set_etag([image(1)], 2)


def test_the_view_follows_the_set_order_and_waits_for_unreported_images() -> None:
    states = {"b": {"status": "failed", "progress": 0.5, "reason": "disk full", "updated": 0.0}}
    view = relay_view(["a", "b"], states)
    assert [(v["image"], v["status"], v["progress"], v["reason"]) for v in view] == [
        ("a", "syncing", 0.0, WAITING),
        ("b", "failed", 0.5, "disk full"),
    ]
    assert view[1]["updated"] == "1970-01-01T00:00:00+00:00"


def test_the_view_leaves_out_states_of_images_outside_the_set() -> None:
    states = {"old": {"status": "synced", "progress": 1.0, "reason": "", "updated": 0.0}}
    assert [v["image"] for v in relay_view(["a"], states)] == ["a"]


def test_the_disk_view_counts_states_and_shows_unknown_room_as_null() -> None:
    view = relay_view(["a", "b"], {})
    assert disk_view(None, view) == {
        "free_bytes": None,
        "reserve_bytes": None,
        "reported": None,
        "sync": 0,
        "synced": 0,
        "syncing": 2,
        "failed": 0,
    }
