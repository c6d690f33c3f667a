"""The phone's pure TFTP client: options, TIDs, windows, retransmission, refusals (virtual time).

Two tests run it against the server's own pure core (relay.proto.tftp.session)
over an in-memory link, one with losses; the last one fuzzes it with any datagram.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.proto.tftp.packet import (
    ACCESS_VIOLATION,
    DISK_FULL,
    FILE_NOT_FOUND,
    ILLEGAL_OPERATION,
    NOT_DEFINED,
    OPTION_REFUSED,
    UNKNOWN_TID,
    Ack,
    Data,
    Error,
    Packet,
    Request,
    build_ack,
    build_data,
    build_error,
    build_oack,
    build_request,
    parse_packet,
)
from relay.proto.tftp.session import BytesSource, ReadSession, SessionConfig
from relay.proto.tftp.session import Output as ServerOutput
from relay.sim.tftpclient import Address, ClientConfig, ClientSession, Failure, Output, Reply

SERVER: Address = ("192.0.2.1", 69)
TID: Address = ("192.0.2.1", 40000)


def sent(output: Output) -> list[tuple[Packet, Address]]:
    return [(parse_packet(datagram), address) for datagram, address in output.send]


def client(upload: bytes | None = None, **config: object) -> tuple[ClientSession, Output]:
    session = ClientSession(SERVER, "sip.ld", ClientConfig(**config), upload=upload)  # type: ignore[arg-type]
    return session, session.start(0.0)


def test_a_read_asks_for_blksize_and_tsize_in_octet_mode() -> None:
    _, first = client()

    assert sent(first) == [
        (Request(False, "sip.ld", "octet", (("blksize", "1468"), ("tsize", "0"))), SERVER)
    ]
    assert first.deadline == 1.0


def test_windowsize_is_asked_for_only_above_one() -> None:
    _, first = client(windowsize=8, tsize=False)

    assert sent(first)[0][0] == Request(
        False, "sip.ld", "octet", (("blksize", "1468"), ("windowsize", "8"))
    )


def test_a_write_offers_the_size_of_its_file() -> None:
    _, first = client(upload=b"x" * 3000)

    assert sent(first)[0][0] == Request(
        True, "sip.ld", "octet", (("blksize", "1468"), ("tsize", "3000"))
    )


def test_an_oack_is_acknowledged_with_ack_0_to_the_servers_new_port() -> None:
    session, _ = client()
    output = session.on_datagram(build_oack((("blksize", "1468"), ("tsize", "2000"))), TID, 0.1)

    assert sent(output) == [(Ack(0), TID)]


def test_data_1_instead_of_an_oack_means_the_server_ignored_the_options() -> None:
    session, _ = client()
    output = session.on_datagram(build_data(1, b"a" * 100), TID, 0.1)

    assert output.outcome == Reply(200, b"a" * 100)
    assert sent(output) == [(Ack(1), TID)]


def test_without_options_a_block_over_512_bytes_is_a_protocol_failure() -> None:
    session, _ = client()
    output = session.on_datagram(build_data(1, b"a" * 513), TID, 0.1)

    assert isinstance(output.outcome, Failure) and not output.outcome.timed_out
    assert sent(output) == [(Error(ILLEGAL_OPERATION, "block too large"), TID)]


def test_a_window_is_acknowledged_at_its_last_block_and_the_file_at_its_short_block() -> None:
    session, _ = client(blksize=8, windowsize=4)
    session.on_datagram(build_oack((("blksize", "8"), ("windowsize", "4"))), TID, 0.0)
    acks = [sent(session.on_datagram(build_data(n, bytes(8)), TID, 0.0)) for n in range(1, 5)]
    last = session.on_datagram(build_data(5, b"end"), TID, 0.0)

    assert acks == [[], [], [], [(Ack(4), TID)]]
    assert sent(last) == [(Ack(5), TID)]
    assert last.outcome == Reply(200, bytes(32) + b"end")


def test_a_block_out_of_sequence_is_answered_once_with_the_last_in_sequence_ack() -> None:
    session, _ = client(blksize=8, windowsize=4)
    session.on_datagram(build_oack((("blksize", "8"), ("windowsize", "4"))), TID, 0.0)
    session.on_datagram(build_data(1, bytes(8)), TID, 0.0)
    gap = session.on_datagram(build_data(3, bytes(8)), TID, 0.0)
    again = session.on_datagram(build_data(4, bytes(8)), TID, 0.0)
    resumed = session.on_datagram(build_data(2, bytes(8)), TID, 0.0)

    assert sent(gap) == [(Ack(1), TID)]
    assert again.send == ()
    assert resumed.send == () and resumed.outcome is None


def test_a_datagram_from_another_port_gets_error_5_and_changes_nothing() -> None:
    session, _ = client()
    session.on_datagram(build_oack((("blksize", "1468"),)), TID, 0.0)
    stranger = ("192.0.2.1", 40001)
    output = session.on_datagram(build_data(1, b"evil"), stranger, 0.0)
    real = session.on_datagram(build_data(1, b"good"), TID, 0.0)

    assert sent(output) == [(Error(UNKNOWN_TID, "unknown transfer ID"), stranger)]
    assert real.outcome == Reply(200, b"good")


def test_before_the_first_answer_only_the_servers_host_is_heard() -> None:
    session, _ = client()
    stranger = ("198.51.100.7", 69)
    output = session.on_datagram(build_data(1, b"evil"), stranger, 0.0)

    assert sent(output) == [(Error(UNKNOWN_TID, "unknown transfer ID"), stranger)]
    assert output.outcome is None


def test_an_oack_with_an_option_not_asked_for_is_refused_with_error_8() -> None:
    session, _ = client(tsize=False)
    output = session.on_datagram(build_oack((("tsize", "10"),)), TID, 0.0)

    assert sent(output) == [(Error(OPTION_REFUSED, "option refused"), TID)]
    assert isinstance(output.outcome, Failure) and "tsize" in output.outcome.reason


def test_an_oack_with_a_larger_blksize_than_asked_is_refused() -> None:
    session, _ = client(blksize=512)
    output = session.on_datagram(build_oack((("blksize", "1468"),)), TID, 0.0)

    assert sent(output) == [(Error(OPTION_REFUSED, "option refused"), TID)]


def test_a_repeated_oack_is_answered_with_ack_0_again() -> None:
    session, _ = client()
    session.on_datagram(build_oack((("blksize", "1468"),)), TID, 0.0)
    output = session.on_datagram(build_oack((("blksize", "1468"),)), TID, 1.0)

    assert sent(output) == [(Ack(0), TID)]


def test_server_errors_map_to_http_like_statuses_with_their_message() -> None:
    outcomes = []
    for code in (FILE_NOT_FOUND, ACCESS_VIOLATION, NOT_DEFINED, DISK_FULL):
        session, _ = client()
        outcomes.append(session.on_datagram(build_error(code, "why"), SERVER, 0.1).outcome)

    assert [reply.status for reply in outcomes if isinstance(reply, Reply)] == [404, 403, 503, 503]
    assert {reply.body for reply in outcomes if isinstance(reply, Reply)} == {b"why"}


def test_a_malformed_datagram_from_the_server_ends_the_transfer_with_error_4() -> None:
    session, _ = client()
    output = session.on_datagram(b"\x00\x03", TID, 0.1)

    assert sent(output) == [(Error(ILLEGAL_OPERATION, "malformed packet"), TID)]
    assert isinstance(output.outcome, Failure) and not output.outcome.timed_out


def test_silence_resends_the_request_with_doubling_intervals_then_times_out() -> None:
    session, first = client(total=7.0)
    times = [0.0]
    output = first
    while output.outcome is None:
        assert output.deadline is not None
        now = output.deadline
        output = session.on_timer(now)
        if output.send:
            times.append(now)

    assert times == [0.0, 1.0, 3.0]
    assert output.outcome == Failure(timed_out=True, reason="no answer within 7 s")


def test_an_early_wake_sends_nothing() -> None:
    session, _ = client()

    assert session.on_timer(0.5) == Output((), 1.0)


def test_a_transfer_that_stalls_tells_the_server_it_gave_up() -> None:
    session, _ = client(total=2.0)
    session.on_datagram(build_oack((("blksize", "1468"),)), TID, 0.0)
    output = session.on_timer(2.0)

    assert sent(output) == [(Error(NOT_DEFINED, "transfer timed out"), TID)]
    assert isinstance(output.outcome, Failure) and output.outcome.timed_out


def test_a_lost_ack_is_resent_when_the_data_stops() -> None:
    session, _ = client()
    session.on_datagram(build_oack((("blksize", "1468"),)), TID, 0.0)
    session.on_datagram(build_data(1, bytes(1468)), TID, 0.5)
    output = session.on_timer(1.5)

    assert sent(output) == [(Ack(1), TID)]


def test_limit_keeps_the_first_bytes_and_tells_the_server_to_stop() -> None:
    session, _ = client(blksize=512, limit=600)
    session.on_datagram(build_oack((("blksize", "512"),)), TID, 0.0)
    session.on_datagram(build_data(1, b"a" * 512), TID, 0.0)
    output = session.on_datagram(build_data(2, b"b" * 512), TID, 0.0)

    assert sent(output) == [(Error(NOT_DEFINED, "transfer cancelled"), TID)]
    assert output.outcome == Reply(200, b"a" * 512 + b"b" * 88)


def test_a_file_over_max_size_is_stopped_with_error_3() -> None:
    session, _ = client(blksize=512, max_size=1000)
    session.on_datagram(build_oack((("blksize", "512"),)), TID, 0.0)
    session.on_datagram(build_data(1, bytes(512)), TID, 0.0)
    output = session.on_datagram(build_data(2, bytes(512)), TID, 0.0)

    assert sent(output) == [(Error(DISK_FULL, "file too large"), TID)]
    assert isinstance(output.outcome, Failure)


def test_a_write_sends_lock_step_blocks_after_ack_0() -> None:
    session, _ = client(upload=b"x" * 600, blksize=512)
    first = session.on_datagram(build_ack(0), TID, 0.0)
    second = session.on_datagram(build_ack(1), TID, 0.0)
    done = session.on_datagram(build_ack(2), TID, 0.0)

    assert sent(first) == [(Data(1, b"x" * 512), TID)]
    assert sent(second) == [(Data(2, b"x" * 88), TID)]
    assert done.outcome == Reply(200, b"")


def test_a_write_uses_the_blksize_of_the_oack() -> None:
    session, _ = client(upload=b"x" * 600, blksize=1468)
    output = session.on_datagram(build_oack((("blksize", "100"),)), TID, 0.0)

    assert sent(output) == [(Data(1, b"x" * 100), TID)]


def test_a_duplicate_ack_during_a_write_is_not_answered() -> None:
    session, _ = client(upload=b"x" * 2000, blksize=512)
    session.on_datagram(build_ack(0), TID, 0.0)
    session.on_datagram(build_ack(1), TID, 0.0)
    duplicate = session.on_datagram(build_ack(1), TID, 0.0)

    assert duplicate.send == ()


def test_a_refused_write_is_403() -> None:
    session, _ = client(upload=b"log line\n")
    output = session.on_datagram(build_error(ACCESS_VIOLATION, "read-only server"), SERVER, 0.0)

    assert output.outcome == Reply(403, b"read-only server")


Link = Callable[[int], bool]


def against_server_core(
    data: bytes, config: ClientConfig, delivered: Link = lambda _: True
) -> Reply | Failure | None:
    """The client against ReadSession over an in-memory link; `delivered(n)` drops datagram n.

    A request that reaches a server already under way is dropped, as the relay's
    listening socket ignores a repeated RRQ.
    """
    client = ClientSession(SERVER, "sip.ld", config)
    server: ReadSession | None = None
    in_flight: list[tuple[bytes, bool]] = []
    count, now = 0, 0.0

    def from_client(output: Output) -> float | None:
        in_flight.extend((datagram, False) for datagram, _ in output.send)
        return output.deadline

    def from_server(output: ServerOutput) -> float | None:
        in_flight.extend((datagram, True) for datagram in output.send)
        return output.deadline

    client_at, server_at = from_client(client.start(now)), None
    while client.outcome is None:
        while in_flight and client.outcome is None:
            datagram, to_client = in_flight.pop(0)
            count += 1
            if not delivered(count):
                continue
            if to_client:
                client_at = from_client(client.on_datagram(datagram, TID, now))
            elif datagram[:2] == b"\0\1":
                if server is None:
                    request = parse_packet(datagram)
                    assert isinstance(request, Request)
                    server = ReadSession(request, BytesSource(data), SessionConfig(mtu=65536))
                    server_at = from_server(server.start(now))
            elif server is not None:
                server_at = from_server(server.on_datagram(datagram, now))
        if client.outcome is None:
            now = min(t for t in (client_at, server_at) if t is not None)
            if client_at is not None and now >= client_at:
                client_at = from_client(client.on_timer(now))
            if server is not None and server_at is not None and now >= server_at:
                server_at = from_server(server.on_timer(now))
    return client.outcome


def pattern(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


def test_a_file_past_65535_blocks_is_fetched_across_the_block_number_rollover() -> None:
    data = pattern(8 * 0x10000 + 100)

    outcome = against_server_core(data, ClientConfig(blksize=8, windowsize=16, tsize=False))

    assert outcome == Reply(200, data)


def test_a_windowed_fetch_survives_a_link_that_loses_every_fifth_datagram() -> None:
    data = pattern(20_000)

    outcome = against_server_core(
        data, ClientConfig(blksize=512, windowsize=4), delivered=lambda n: n % 5 != 0
    )

    assert outcome == Reply(200, data)


FUZZ = settings(max_examples=300, deadline=None)
server_packets = st.one_of(
    st.builds(build_data, st.integers(0, 0xFFFF), st.binary(max_size=600)),
    st.builds(build_data, st.integers(0, 3), st.binary(min_size=512, max_size=513)),
    st.builds(build_ack, st.integers(0, 3)),
    st.builds(build_error, st.integers(0, 9), st.text(max_size=20)),
    st.sampled_from(
        [
            build_oack((("blksize", "512"),)),
            build_oack((("blksize", "512"), ("windowsize", "4"), ("tsize", "99"))),
            build_oack((("blksize", "70000"),)),
            build_oack((("windowsize", "0"),)),
            build_oack((("other", "1"),)),
            build_request("x", write=True),
        ]
    ),
    st.binary(max_size=2000),
)
senders = st.sampled_from([SERVER, TID, ("192.0.2.1", 40001), ("198.51.100.7", 69)])
events = st.lists(
    st.tuples(st.booleans(), server_packets, senders, st.floats(0, 5, allow_nan=False)),
    max_size=60,
)
configs = st.builds(
    ClientConfig,
    blksize=st.sampled_from([8, 512, 1468]),
    windowsize=st.sampled_from([1, 4]),
    limit=st.one_of(st.none(), st.integers(0, 2000)),
    total=st.sampled_from([3.0, 30.0]),
    max_size=st.sampled_from([1000, 1 << 20]),
)


@FUZZ
@given(configs, st.one_of(st.none(), st.binary(max_size=3000)), events)
def test_any_datagrams_and_timers_keep_the_client_within_its_rules(
    config: ClientConfig,
    upload: bytes | None,
    steps: list[tuple[bool, bytes, Address, float]],
) -> None:
    session = ClientSession(SERVER, "sip.ld", config, upload=upload)
    output = session.start(0.0)
    now = 0.0
    for is_timer, datagram, sender, elapsed in steps:
        now += elapsed
        before = output.outcome
        output = session.on_timer(now) if is_timer else session.on_datagram(datagram, sender, now)
        assert len(output.send) <= 1
        assert (output.deadline is None) == (output.outcome is not None)
        if before is not None:
            assert (output.send, output.outcome) == ((), before)
        if isinstance(output.outcome, Reply):
            assert len(output.outcome.body) <= max(config.max_size, 255)
            if config.limit is not None and upload is None and output.outcome.status == 200:
                assert len(output.outcome.body) <= config.limit
