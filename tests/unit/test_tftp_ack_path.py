"""The session's quick ACK path reads a datagram exactly as parse_packet does."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.proto.tftp.packet import Ack, Request, TftpError, build_ack, build_error, parse_packet
from relay.proto.tftp.session import BytesSource, Output, ReadSession, SessionConfig

FILE = bytes(range(256)) * 40


def started() -> ReadSession:
    request = Request(False, "sip.ld", "octet", (("blksize", "64"), ("windowsize", "4")))
    session = ReadSession(request, BytesSource(FILE), SessionConfig())
    session.start(0.0)
    session.on_datagram(build_ack(0), 0.0)
    return session


def parsed_answer(data: bytes) -> Output:
    """What a session answers when given the datagram's packet rebuilt from parse_packet."""
    session = started()
    try:
        packet = parse_packet(data)
    except TftpError:
        return session.on_datagram(b"\xff\xff", 1.0)  # malformed, as the datagram is
    if isinstance(packet, Ack):
        return session.on_datagram(build_ack(packet.block), 1.0)
    return session.on_datagram(data, 1.0)


@settings(max_examples=500, deadline=None)
@given(
    st.one_of(
        st.binary(min_size=4, max_size=4),
        st.integers(0, 0xFFFF).map(build_ack),
        st.just(build_error(0, "x")),
    )
)
def test_any_four_bytes_get_the_answer_their_parsed_packet_gets(data: bytes) -> None:
    answer = started().on_datagram(data, 1.0)
    expected = parsed_answer(data)

    assert (answer.send, answer.status) == (expected.send, expected.status)
