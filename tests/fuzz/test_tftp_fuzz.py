"""TFTP parsing and sessions never crash on hostile datagrams: TftpError or a packet, bounded time.

Random client packet sequences into a read session never raise, never send
more DATA at once than the window allows, never answer a repeated ACK, and
send nothing once the session is over.
"""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.proto.tftp.names import screen
from relay.proto.tftp.packet import (
    Data,
    Packet,
    Request,
    TftpError,
    build_ack,
    build_data,
    build_error,
    build_oack,
    build_request,
    parse_packet,
)
from relay.proto.tftp.session import BytesSource, ReadSession, SessionConfig, negotiate

FUZZ = settings(max_examples=400, deadline=None)
SECONDS_PER_PACKET = 0.5
VALID = [
    build_request("0004f2a1b2c3.cfg", "octet", (("blksize", "1428"), ("windowsize", "8"))),
    build_request("../x", "netascii", write=True),
    build_data(7, b"payload"),
    build_ack(65535),
    build_error(1, "file not found"),
    build_oack((("tsize", "1000"),)),
]

mutated = st.tuples(
    st.sampled_from(VALID), st.integers(0, 64), st.integers(0, 16), st.binary(max_size=32)
).map(lambda cut: cut[0][: cut[1]] + cut[3] + cut[0][cut[1] + cut[2] :])
tokens = st.lists(
    st.sampled_from(
        [
            b"\x00\x01",
            b"\x00\x02",
            b"\x00\x06",
            b"\x00",
            b"octet",
            b"blksize",
            b"65536",
            b"..",
            b"\xff",
        ]
    ),
    max_size=60,
).map(b"".join)
datagrams = st.one_of(st.binary(max_size=70_000), mutated, tokens)


def parse_or_error(data: bytes) -> Packet | None:
    started = time.monotonic()
    try:
        packet = parse_packet(data)
    except TftpError:
        packet = None
    assert time.monotonic() - started < SECONDS_PER_PACKET
    return packet


@FUZZ
@given(datagrams)
def test_any_bytes_parse_to_a_packet_or_tftp_error(data: bytes) -> None:
    packet = parse_or_error(data)

    if isinstance(packet, Request):
        assert len(packet.options) <= 16
        screen(packet)
        negotiate(packet, 1_000_000, SessionConfig())


client_packets = st.one_of(
    st.integers(0, 70).map(build_ack),
    st.integers(65500, 65535).map(build_ack),
    st.just(build_error(0, "bye")),
    st.just(build_data(1, b"x")),
    st.binary(max_size=8),
)
steps = st.lists(
    st.tuples(st.booleans(), client_packets, st.floats(0, 5, allow_nan=False)), max_size=60
)
options = st.lists(
    st.sampled_from(
        [
            ("blksize", "8"),
            ("blksize", "65536"),
            ("windowsize", "4"),
            ("windowsize", "70000"),
            ("tsize", "0"),
            ("timeout", "1"),
            ("other", "x"),
        ]
    ),
    unique_by=lambda option: option[0],
    max_size=4,
)


@FUZZ
@given(options, st.integers(0, 2000), steps)
def test_random_client_sequences_keep_the_session_within_its_rules(
    chosen: list[tuple[str, str]], size: int, sequence: list[tuple[bool, bytes, float]]
) -> None:
    request = Request(False, "sip.ld", "octet", tuple(chosen))
    session = ReadSession(request, BytesSource(bytes(size)), SessionConfig(max_windowsize=8))
    now = 0.0
    output = session.start(now)
    for is_timer, datagram, elapsed in sequence:
        now += elapsed
        over = output.status != "running"
        output = session.on_timer(now) if is_timer else session.on_datagram(datagram, now)
        sent = [parse_packet(d) for d in output.send]
        assert sum(isinstance(p, Data) for p in sent) <= session.windowsize
        if over:
            assert output.send == ()
        if not is_timer and output.status == "running":
            assert session.on_datagram(datagram, now).send == ()
