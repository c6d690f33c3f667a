"""The pure TFTP read session: negotiation, windows, ACKs, wrap-around, timers (virtual time)."""

from __future__ import annotations

import pytest

from relay.proto.tftp.packet import (
    ILLEGAL_OPERATION,
    NOT_DEFINED,
    Data,
    Error,
    OAck,
    Request,
    build_ack,
    build_error,
    build_request,
    parse_packet,
)
from relay.proto.tftp.session import (
    BytesSource,
    Negotiated,
    Output,
    ReadSession,
    SessionConfig,
    negotiate,
)

BIG_MTU = SessionConfig(mtu=65536)


def request(*options: tuple[str, str]) -> Request:
    return Request(False, "sip.ld", "octet", tuple(options))


def blocks(output: Output) -> list[int]:
    numbers = []
    for datagram in output.send:
        packet = parse_packet(datagram)
        assert isinstance(packet, Data)
        numbers.append(packet.block)
    return numbers


def session(
    size: int, *options: tuple[str, str], config: SessionConfig = BIG_MTU
) -> tuple[ReadSession, Output]:
    data = bytes(i % 251 for i in range(size))
    started = ReadSession(request(*options), BytesSource(data), config)
    return started, started.start(0.0)


def test_no_options_means_512_byte_blocks_without_an_oack() -> None:
    transfer, first = session(1000)

    assert blocks(first) == [1]
    assert len(first.send[0]) == 4 + 512
    assert first.deadline == 1.0
    assert transfer.windowsize == 1


def test_blksize_65536_is_clamped_to_65464() -> None:
    agreed = negotiate(request(("blksize", "65536")), 10, BIG_MTU)

    assert agreed.blksize == 65464
    assert agreed.oack == (("blksize", "65464"),)


def test_blksize_is_clamped_to_the_path_mtu() -> None:
    assert negotiate(request(("blksize", "65464")), 10, SessionConfig(mtu=1500)).blksize == 1468
    assert (
        negotiate(request(("blksize", "9000")), 10, SessionConfig(mtu=1500, ipv6=True)).blksize
        == 1448
    )


def test_a_blksize_under_8_is_ignored_not_refused() -> None:
    assert negotiate(request(("blksize", "7")), 10, BIG_MTU) == Negotiated()


def test_tsize_is_answered_with_the_file_size() -> None:
    assert negotiate(request(("tsize", "0")), 123456, BIG_MTU).oack == (("tsize", "123456"),)


def test_timeout_in_range_is_accepted_and_out_of_range_ignored() -> None:
    assert negotiate(request(("timeout", "3")), 1, BIG_MTU).timeout == 3.0
    assert negotiate(request(("timeout", "0")), 1, BIG_MTU).oack == ()
    assert negotiate(request(("timeout", "256")), 1, BIG_MTU).oack == ()


def test_windowsize_is_clamped_to_the_configured_maximum() -> None:
    agreed = negotiate(request(("windowsize", "65535")), 1, SessionConfig(max_windowsize=16))

    assert agreed.windowsize == 16
    assert agreed.oack == (("windowsize", "16"),)


def test_unknown_and_non_numeric_options_are_ignored() -> None:
    agreed = negotiate(request(("multicast", "1"), ("blksize", "big"), ("tsize", "-1")), 1, BIG_MTU)

    assert agreed == Negotiated()


def test_accepted_options_are_answered_with_an_oack_then_data_after_ack_0() -> None:
    transfer, first = session(3000, ("blksize", "1024"), ("tsize", "0"))

    assert parse_packet(first.send[0]) == OAck((("blksize", "1024"), ("tsize", "3000")))
    assert blocks(transfer.on_datagram(build_ack(0), 0.1)) == [1]


def test_an_ack_other_than_0_before_the_oack_is_acknowledged_is_ignored() -> None:
    transfer, _ = session(3000, ("blksize", "1024"))

    assert transfer.on_datagram(build_ack(1), 0.1).send == ()


def test_a_window_of_blocks_is_sent_at_once() -> None:
    transfer, _ = session(10 * 100 + 50, ("blksize", "100"), ("windowsize", "4"))

    assert blocks(transfer.on_datagram(build_ack(0), 0.0)) == [1, 2, 3, 4]
    assert blocks(transfer.on_datagram(build_ack(4), 0.0)) == [5, 6, 7, 8]
    assert blocks(transfer.on_datagram(build_ack(8), 0.0)) == [9, 10, 11]


def test_an_ack_inside_the_window_rewinds_to_the_next_block() -> None:
    transfer, _ = session(2000, ("blksize", "100"), ("windowsize", "4"))
    transfer.on_datagram(build_ack(0), 0.0)

    assert blocks(transfer.on_datagram(build_ack(2), 0.0)) == [3, 4, 5, 6]


def test_a_duplicate_ack_sends_nothing() -> None:
    transfer, _ = session(2000)
    transfer.on_datagram(build_ack(1), 0.0)

    assert transfer.on_datagram(build_ack(1), 0.0).send == ()
    assert transfer.on_datagram(build_ack(1), 0.0).send == ()
    assert transfer.progress.duplicates == 2


def test_an_ack_for_a_block_not_yet_sent_is_ignored() -> None:
    transfer, _ = session(2000)

    assert transfer.on_datagram(build_ack(5), 0.0).send == ()
    assert blocks(transfer.on_datagram(build_ack(1), 0.0)) == [2]


def test_the_last_ack_ends_the_transfer_and_a_full_last_block_is_followed_by_an_empty_one() -> None:
    transfer, first = session(512)

    assert blocks(first) == [1]
    last = transfer.on_datagram(build_ack(1), 0.0)
    assert blocks(last) == [2]
    assert last.send[0] == b"\x00\x03\x00\x02"
    assert transfer.on_datagram(build_ack(2), 0.0) == Output(status="done")


def test_block_numbers_wrap_from_65535_to_0() -> None:
    transfer, _ = session(65537 * 8, ("blksize", "8"), ("windowsize", "2"))
    output = transfer.on_datagram(build_ack(0), 0.0)
    while blocks(output)[0] != 65535:
        output = transfer.on_datagram(build_ack(blocks(output)[-1]), 0.0)

    assert blocks(output) == [65535, 0]
    assert blocks(transfer.on_datagram(build_ack(0), 0.0)) == [1, 2]


def test_a_wrapped_duplicate_ack_is_still_a_duplicate() -> None:
    transfer, _ = session(65540 * 8, ("blksize", "8"), ("windowsize", "8"))
    output = transfer.on_datagram(build_ack(0), 0.0)
    while 0 not in blocks(output):
        output = transfer.on_datagram(build_ack(blocks(output)[-1]), 0.0)
    last_before_wrap = blocks(output)[-1]
    output = transfer.on_datagram(build_ack(last_before_wrap), 0.0)

    assert transfer.on_datagram(build_ack(last_before_wrap), 0.0).send == ()


def test_a_timeout_resends_the_window_with_exponential_backoff() -> None:
    transfer, first = session(5000, ("blksize", "100"), ("windowsize", "3"))
    window = transfer.on_datagram(build_ack(0), 10.0)
    assert first.deadline == 1.0 and window.deadline == 11.0

    again = transfer.on_timer(11.0)
    assert blocks(again) == [1, 2, 3]
    assert again.deadline == 13.0
    assert transfer.on_timer(13.0).deadline == 17.0


def test_an_early_wake_sends_nothing_and_keeps_the_deadline() -> None:
    transfer, _ = session(5000)

    assert transfer.on_timer(0.5) == Output(deadline=1.0)


def test_backoff_is_capped_by_max_timeout() -> None:
    transfer, _ = session(5000, config=SessionConfig(timeout=1.0, max_timeout=3.0, tries=10))
    now, deadlines = 1.0, []
    for _ in range(4):
        output = transfer.on_timer(now)
        assert output.deadline is not None
        deadlines.append(output.deadline - now)
        now = output.deadline

    assert deadlines == [2.0, 3.0, 3.0, 3.0]


def test_the_session_gives_up_after_the_configured_tries_with_error_0() -> None:
    transfer, first = session(5000, config=SessionConfig(tries=3))
    now = first.deadline
    assert now is not None
    for _ in range(2):
        output = transfer.on_timer(now)
        assert blocks(output) == [1]
        assert output.deadline is not None
        now = output.deadline

    final = transfer.on_timer(now)
    assert final.status == "failed"
    error = parse_packet(final.send[0])
    assert isinstance(error, Error) and error.code == NOT_DEFINED
    assert transfer.progress.retransmissions == 2


def test_the_oack_is_retransmitted_on_timeout() -> None:
    transfer, first = session(100, ("tsize", "0"))

    assert transfer.on_timer(1.0).send == first.send


def test_progress_resets_the_tries() -> None:
    transfer, _ = session(5000, config=SessionConfig(tries=2))
    transfer.on_timer(1.0)
    output = transfer.on_datagram(build_ack(1), 2.5)

    assert output.deadline == 3.5
    assert blocks(transfer.on_timer(3.5)) == [2]


def test_an_error_from_the_client_ends_the_session_silently() -> None:
    transfer, _ = session(5000)

    output = transfer.on_datagram(build_error(0, "cancelled"), 0.2)

    assert output.send == () and output.status == "failed"
    assert "cancelled" in output.reason
    assert transfer.on_timer(10.0).send == ()


@pytest.mark.parametrize(
    "datagram", [b"\x00\x04\x00", build_request("x"), b"\x00\x03\x00\x01data"], ids=repr
)
def test_anything_but_ack_or_error_ends_the_session_with_error_4(datagram: bytes) -> None:
    transfer, _ = session(5000)

    output = transfer.on_datagram(datagram, 0.2)

    assert output.status == "failed"
    error = parse_packet(output.send[0])
    assert isinstance(error, Error) and error.code == ILLEGAL_OPERATION


def test_a_source_that_shrinks_fails_the_session() -> None:
    class Shrinking:
        size = 1000

        def read(self, offset: int, length: int) -> bytes:
            return b"x" * (length - 1)

    output = ReadSession(request(), Shrinking()).start(0.0)

    assert output.status == "failed" and "changed" in output.reason


def test_an_empty_file_is_one_empty_block() -> None:
    transfer, first = session(0)

    assert first.send == (b"\x00\x03\x00\x01",)
    assert transfer.on_datagram(build_ack(1), 0.0).status == "done"


def test_start_twice_sends_nothing_the_second_time() -> None:
    transfer, _ = session(100)

    assert transfer.start(0.5).send == ()


def test_config_refuses_an_mtu_too_small_for_a_block() -> None:
    with pytest.raises(ValueError, match="MTU"):
        SessionConfig(mtu=30)
