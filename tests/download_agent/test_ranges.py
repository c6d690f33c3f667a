"""Judging a server's answer to a ranged GET (RFC 9110 14.4, 15.3.7): pure rules,
and the Content-Range parser under random input."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from download_agent.faults import FetchFailed
from download_agent.ranges import (
    Answer,
    ContentRange,
    RangeError,
    check_answer,
    parse_content_range,
)


def test_a_whole_body_from_the_start_is_accepted() -> None:
    assert check_answer(200, None, 1000, asked=0, size=1000) == Answer(0)


def test_a_200_to_a_ranged_request_starts_over() -> None:
    assert check_answer(200, None, 1000, asked=400, size=1000) == Answer(0, restart=True)


def test_a_206_continuing_where_asked_is_accepted() -> None:
    assert check_answer(206, "bytes 400-999/1000", 600, asked=400, size=1000) == Answer(400)


def test_a_206_from_elsewhere_is_an_ignored_range() -> None:
    with pytest.raises(FetchFailed, match="the server ignored the range") as caught:
        check_answer(206, "bytes 0-999/1000", 1000, asked=400, size=1000)
    assert not caught.value.discard


def test_a_206_for_another_size_is_refused() -> None:
    with pytest.raises(FetchFailed, match="the image has 1000 bytes"):
        check_answer(206, "bytes 400-1999/2000", 1600, asked=400, size=1000)


@pytest.mark.parametrize(("status", "length"), [(200, 999), (200, 1001), (206, 601)])
def test_a_length_the_image_size_does_not_imply_is_refused(status: int, length: int) -> None:
    content_range = "bytes 400-999/1000" if status == 206 else None
    asked = 400 if status == 206 else 0
    with pytest.raises(FetchFailed, match="wrong Content-Length"):
        check_answer(status, content_range, length, asked=asked, size=1000)


def test_an_unsatisfiable_range_discards_the_partial() -> None:
    with pytest.raises(FetchFailed) as caught:
        check_answer(416, None, None, asked=400, size=1000)
    assert caught.value.discard


def test_an_http_error_names_its_status() -> None:
    with pytest.raises(FetchFailed, match="HTTP 503"):
        check_answer(503, None, 10, asked=0, size=1000)


def test_content_range_forms() -> None:
    assert parse_content_range("bytes 0-9/10") == ContentRange(0, 9, 10)
    assert parse_content_range("bytes 5-9/*") == ContentRange(5, 9, None)


@pytest.mark.parametrize(
    "value", ["", "bytes */10", "bytes 9-5/10", "bytes 0-10/10", "items 0-1/2", "bytes 0-1/2" * 40]
)
def test_malformed_content_ranges_are_refused(value: str) -> None:
    with pytest.raises(RangeError):
        parse_content_range(value)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.from_regex(r"bytes \d{1,25}-\d{1,25}/(\d{1,25}|\*)"))
def test_any_content_range_text_raises_only_range_error(value: str) -> None:
    with contextlib.suppress(RangeError):
        got = parse_content_range(value)
        assert 0 <= got.first <= got.last


@settings(max_examples=300, deadline=None)
@given(
    st.integers(100, 599),
    st.none() | st.text(max_size=60),
    st.none() | st.integers(0, 2**40),
    st.integers(0, 2000),
)
def test_any_answer_is_accepted_or_refused_with_a_reason(
    status: int, content_range: str | None, length: int | None, asked: int
) -> None:
    try:
        answer = check_answer(status, content_range, length, asked=min(asked, 999), size=1000)
    except FetchFailed as failed:
        assert failed.reason
    else:
        assert answer.start in (0, min(asked, 999))
