"""A window prepared ahead (ReadSession.prepare) is exactly what the next ACK releases."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.proto.tftp.packet import DATA, Request, build_ack
from relay.proto.tftp.session import BytesSource, ReadSession, SessionConfig

FILE = bytes(i % 251 for i in range(10_000))


def session(windowsize: int, oack: bool = True) -> ReadSession:
    options = (("blksize", "512"), ("windowsize", str(windowsize))) if oack else ()
    return ReadSession(
        Request(False, "sip.ld", "octet", options), BytesSource(FILE), SessionConfig()
    )


TIMER, ACK_ALL = -1, -2


def answers(
    windowsize: int, events: list[int], *, oack: bool = True, prepared: bool = True
) -> list[tuple[tuple[bytes, ...], float | None, str]]:
    """The session's outputs for `events`, 20 s apart after its start: an ACK of that block
    number, TIMER (its deadline has passed), or ACK_ALL (an ACK of the last block sent)."""
    transfer = session(windowsize, oack)
    output = transfer.start(0.0)
    out = []
    last = 0
    for now, event in enumerate(events, 1):
        for datagram in output.send:
            if datagram[1] == DATA:
                last = datagram[2] << 8 | datagram[3]
        if prepared:
            transfer.prepare()
        if event == TIMER:
            output = transfer.on_timer(now * 20.0)
        else:
            ack = build_ack(last if event == ACK_ALL else event)
            output = transfer.on_datagram(ack, now * 20.0)
        out.append((output.send, output.deadline, output.status))
    return out


def unprepared_answers(
    windowsize: int, acks: list[int], oack: bool = True
) -> list[tuple[tuple[bytes, ...], float | None, str]]:
    return answers(windowsize, acks, oack=oack, prepared=False)


def prepared_answers(
    windowsize: int, acks: list[int], oack: bool = True
) -> list[tuple[tuple[bytes, ...], float | None, str]]:
    return answers(windowsize, acks, oack=oack)


def test_the_prepared_window_is_the_one_the_ack_of_everything_sent_releases() -> None:
    acks = [0, 4, 8, 12, 16, 20]

    assert prepared_answers(4, acks) == unprepared_answers(4, acks)


def test_an_ack_for_an_earlier_block_gets_the_window_after_it_not_the_prepared_one() -> None:
    acks = [0, 2, 6, 7]

    assert prepared_answers(4, acks) == unprepared_answers(4, acks)


def test_lock_step_with_preparation_sends_every_block_once_in_order() -> None:
    acks = list(range(0, 20))

    assert prepared_answers(1, acks) == unprepared_answers(1, acks)


def test_progress_counts_only_what_was_sent() -> None:
    transfer = session(4)
    transfer.start(0.0)
    transfer.on_datagram(build_ack(0), 0.0)
    transfer.prepare()

    assert transfer.progress.blocks == 4
    assert transfer.progress.bytes == 4 * 512


@settings(max_examples=300, deadline=None)
@given(
    st.integers(1, 8),
    st.lists(st.one_of(st.sampled_from([TIMER, ACK_ALL]), st.integers(0, 24)), max_size=40),
    st.booleans(),
)
def test_any_sequence_of_acks_and_timeouts_gets_the_same_answers_prepared_or_not(
    windowsize: int, acks: list[int], oack: bool
) -> None:
    assert prepared_answers(windowsize, acks, oack) == unprepared_answers(windowsize, acks, oack)
