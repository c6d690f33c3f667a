"""Windows packed for UDP segmentation offload: cut back at the segment size, they are the
window's DATA packets, in order, within the kernel's limits per send."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.proto.tftp.gso import MAX_BYTES, MAX_SEGMENTS, batches, split


def window(blocks: int, blksize: int, last: int) -> tuple[bytes, ...]:
    full = [bytes([n % 256]) * (4 + blksize) for n in range(blocks)]
    return (*full, b"L" * (4 + last))


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 200), st.integers(8, 20_000), st.integers(0, 20_000))
def test_the_kernel_cuts_the_sends_back_into_the_window(
    blocks: int, blksize: int, last: int
) -> None:
    datagrams = window(blocks, blksize, min(last, blksize - 1))
    segment = 4 + blksize

    sends = batches(datagrams, segment)

    assert [d for send in sends for d in split(send, segment)] == list(datagrams)
    for send in sends:
        assert len(send) <= segment or (
            len(send) <= MAX_BYTES and -(-len(send) // segment) <= MAX_SEGMENTS
        )


def test_a_window_of_32_blocks_of_1468_is_one_send() -> None:
    datagrams = (*window(31, 1468, 1468)[:-1], b"x" * 1472)

    assert len(batches(datagrams, 1472)) == 1


def test_a_short_packet_ends_a_send_and_the_next_starts_afresh() -> None:
    datagrams = (b"a" * 10, b"b" * 4, b"c" * 10, b"d" * 10)

    assert batches(datagrams, 10) == [b"a" * 10 + b"b" * 4, b"c" * 10 + b"d" * 10]


def test_a_packet_over_the_segment_size_goes_alone() -> None:
    assert batches((b"a" * 10, b"b" * 11, b"c" * 10), 10) == [b"a" * 10, b"b" * 11, b"c" * 10]
