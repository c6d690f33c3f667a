"""A simulated phone verifies a firmware image as it arrives (relay.sim.firmware.ImageCheck)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.sim.firmware import FirmwareError, ImageCheck, make_image

IMAGE = make_image("VVX", "6.4.3", 100_000)


def _checked(chunks: list[bytes]) -> str:
    check = ImageCheck()
    for chunk in chunks:
        check.feed(chunk)
    return check.result().version


def test_an_image_in_one_piece_is_verified() -> None:
    assert _checked([IMAGE]) == "6.4.3"


@settings(max_examples=50, deadline=None)
@given(cuts=st.lists(st.integers(0, len(IMAGE)), max_size=20))
def test_an_image_in_any_pieces_is_verified(cuts: list[int]) -> None:
    edges = [0, *sorted(cuts), len(IMAGE)]
    assert _checked([IMAGE[a:b] for a, b in itertools.pairwise(edges)]) == "6.4.3"


def test_a_changed_byte_fails_the_sha256() -> None:
    damaged = bytearray(IMAGE)
    damaged[-1] ^= 1
    with pytest.raises(FirmwareError, match="sha256"):
        _checked([bytes(damaged)])


def test_a_truncated_image_fails_its_size() -> None:
    with pytest.raises(FirmwareError, match="the header says 100000"):
        _checked([IMAGE[:-10]])


def test_bytes_without_a_header_are_not_an_image() -> None:
    with pytest.raises(FirmwareError, match="SIMFW1 header"):
        _checked([b"\x00" * 4096])


def test_a_short_image_with_an_empty_payload_is_verified() -> None:
    assert _checked([make_image("VVX", "1.0", 0)]) == "1.0"
