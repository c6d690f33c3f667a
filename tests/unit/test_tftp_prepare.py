"""A window prepared ahead (ReadSession.prepare) is exactly what the next ACK releases."""

from __future__ import annotations

from relay.proto.tftp.packet import Request, build_ack
from relay.proto.tftp.session import BytesSource, ReadSession, SessionConfig

FILE = bytes(i % 251 for i in range(10_000))


def session(windowsize: int) -> ReadSession:
    options = (("blksize", "512"), ("windowsize", str(windowsize)))
    return ReadSession(
        Request(False, "sip.ld", "octet", options), BytesSource(FILE), SessionConfig()
    )


def unprepared_answers(windowsize: int, acks: list[int]) -> list[tuple[bytes, ...]]:
    transfer = session(windowsize)
    transfer.start(0.0)
    return [transfer.on_datagram(build_ack(a), 0.0).send for a in acks]


def prepared_answers(windowsize: int, acks: list[int]) -> list[tuple[bytes, ...]]:
    transfer = session(windowsize)
    transfer.start(0.0)
    answers = []
    for ack in acks:
        transfer.prepare()
        answers.append(transfer.on_datagram(build_ack(ack), 0.0).send)
    return answers


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
