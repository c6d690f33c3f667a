"""The one Range form phones send, `bytes=a-b` (RFC 9110 section 14.1.2), read by
relay.webfiles.byte_range: a span inside the file, or None (the whole file, 200)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.webfiles import byte_range

SIZE = 1000


@pytest.mark.parametrize(
    ("header", "span"),
    [
        ("bytes=0-99", (0, 99)),
        ("bytes=900-", (900, 999)),
        ("bytes=-100", (900, 999)),
        ("bytes=-5000", (0, 999)),
        ("bytes=990-5000", (990, 999)),
    ],
)
def test_a_satisfiable_range_is_clipped_to_the_file(header: str, span: tuple[int, int]) -> None:
    assert byte_range(header, SIZE) == span


@pytest.mark.parametrize(
    "header",
    ["", "bytes=1000-", "bytes=5-4", "bytes=-0", "bytes=0-1,5-6", "items=0-1", "bytes=a-b"],
)
def test_an_absent_or_unusable_range_means_the_whole_file(header: str) -> None:
    assert byte_range(header, SIZE) is None


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        st.builds(lambda a, b: f"bytes={a}-{b}", st.text("0123456789-, ", max_size=12), st.text()),
    ),
    st.integers(1, 1 << 40),
)
def test_any_header_gives_none_or_a_span_inside_the_file(header: str, size: int) -> None:
    span = byte_range(header, size)
    assert span is None or 0 <= span[0] <= span[1] < size
