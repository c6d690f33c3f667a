"""The image-set messages and the published index (relay/sync/images.py) under random
input: every parser raises only SyncError, and what `to_wire`/`index_bytes` write
reads back equal (docs/agent-link.md "Images")."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.sync import images as im
from relay.sync.messages import SyncError

FUZZ = settings(max_examples=200, deadline=None)

PARSERS: dict[str, Callable[[object], object]] = {
    "CachedImage": im.CachedImage.from_wire,
    "ImageSet": im.ImageSet.from_wire,
    "ImageState": im.ImageState.from_wire,
    "ImageReport": im.ImageReport.from_wire,
}
KEYS = [
    "etag", "images", "sync", "id", "model", "version", "filename", "size", "sha256",
    "url", "image", "status", "progress", "reason", "states", "free_bytes",
    "reserve_bytes", "format",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["0123456789abcdef", "a" * 64, "VVX", "sip.ld", "http://a.example/x"]),
    st.sampled_from([*im.IMAGE_STATES, 1, 0.5]),
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=8),
    ),
    max_leaves=40,
)

ids = st.from_regex(r"[0-9a-f]{8,64}", fullmatch=True)
words = st.from_regex(r"[0-9A-Za-z][0-9A-Za-z.\-_]{0,20}", fullmatch=True)
cached = st.builds(
    im.CachedImage,
    id=ids,
    model=words,
    version=words,
    filename=words,
    size=st.integers(1, im.MAX_IMAGE_BYTES),
    sha256=st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    url=st.sampled_from(["", "https://cdn.example/sip.ld", "http://198.51.100.1/a"]),
)
unique_images = st.lists(cached, max_size=5, unique_by=lambda i: i.id).map(tuple)
states = st.builds(
    im.ImageState,
    image=ids,
    status=st.sampled_from(im.IMAGE_STATES),
    progress=st.sampled_from([0.0, 0.25, 0.5, 1.0]),
    reason=st.text(max_size=30),
)


@pytest.mark.parametrize("name", sorted(PARSERS))
@FUZZ
@given(value=JSONISH)
def test_from_wire_raises_only_sync_error(name: str, value: Any) -> None:
    with contextlib.suppress(SyncError):
        PARSERS[name](value)


@FUZZ
@given(data=st.binary(max_size=512))
def test_parse_index_raises_only_sync_error_on_bytes(data: bytes) -> None:
    with contextlib.suppress(SyncError):
        im.parse_index(data)


@FUZZ
@given(value=JSONISH)
def test_parse_index_raises_only_sync_error_on_json(value: Any) -> None:
    with contextlib.suppress(SyncError):
        im.parse_index(json.dumps(value).encode())


def test_an_index_over_its_cap_is_refused_before_parsing() -> None:
    with pytest.raises(SyncError, match="at most"):
        im.parse_index(b" " * (im.MAX_INDEX_BYTES + 1))


@FUZZ
@given(images=unique_images, etag=st.text(min_size=1, max_size=128), sync=st.integers(0, 2**62))
def test_an_image_set_reads_back_equal(
    images: tuple[im.CachedImage, ...], etag: str, sync: int
) -> None:
    image_set = im.ImageSet(etag, images, sync)
    assert im.ImageSet.from_wire(json.loads(json.dumps(image_set.to_wire()))) == image_set


@FUZZ
@given(
    report_states=st.lists(states, max_size=5).map(tuple),
    free=st.integers(0, 2**62),
    reserve=st.integers(0, 2**62),
)
def test_an_image_report_reads_back_equal(
    report_states: tuple[im.ImageState, ...], free: int, reserve: int
) -> None:
    report = im.ImageReport(report_states, free, reserve)
    assert im.ImageReport.from_wire(json.loads(json.dumps(report.to_wire()))) == report


@FUZZ
@given(images=unique_images)
def test_an_index_reads_back_equal(images: tuple[im.CachedImage, ...]) -> None:
    assert im.parse_index(im.index_bytes(images)) == images
