"""TFTP packets (RFC 1350 section 5, RFC 2347): round trips, and every cap refuses cleanly."""

from __future__ import annotations

import pytest

from relay.proto.tftp.packet import (
    MAX_BLKSIZE,
    MAX_OPTIONS,
    MAX_REQUEST,
    Ack,
    Data,
    Error,
    OAck,
    Request,
    TftpError,
    build_ack,
    build_data,
    build_data_run,
    build_error,
    build_oack,
    build_request,
    parse_packet,
)


def test_a_read_request_with_options_round_trips() -> None:
    wire = build_request("0004f2a1b2c3.cfg", "octet", (("blksize", "1428"), ("tsize", "0")))

    assert parse_packet(wire) == Request(
        False, "0004f2a1b2c3.cfg", "octet", (("blksize", "1428"), ("tsize", "0"))
    )


def test_a_write_request_is_parsed_as_a_write() -> None:
    assert parse_packet(build_request("a.log", write=True)) == Request(True, "a.log", "octet")


def test_mode_and_option_names_are_case_insensitive() -> None:
    request = parse_packet(b"\x00\x01sip.ld\x00OcTeT\x00BLKSIZE\x001024\x00")

    assert request == Request(False, "sip.ld", "octet", (("blksize", "1024"),))


def test_request_option_lookup_returns_the_value_or_none() -> None:
    request = Request(False, "a", "octet", (("tsize", "0"),))

    assert (request.option("tsize"), request.option("blksize")) == ("0", None)


def test_data_ack_error_and_oack_round_trip() -> None:
    assert parse_packet(build_data(65535, b"xyz")) == Data(65535, b"xyz")
    assert parse_packet(build_ack(0)) == Ack(0)
    assert parse_packet(build_error(1, "file not found")) == Error(1, "file not found")
    assert parse_packet(build_oack((("blksize", "512"),))) == OAck((("blksize", "512"),))


def test_an_error_without_its_final_nul_is_still_an_error() -> None:
    assert parse_packet(b"\x00\x05\x00\x08no options") == Error(8, "no options")


@pytest.mark.parametrize(
    "wire",
    [
        b"",
        b"\x00",
        b"\x00\x07",
        b"\x00\x01name\x00octet",
        b"\x00\x01name\x00",
        b"\x00\x01\x00octet\x00",
        b"\x00\x01name\x00binary\x00",
        b"\x00\x01name\x00octet\x00blksize\x00",
        b"\x00\x01name\x00octet\x00blksize\x00512\x00BLKSIZE\x00512\x00",
        b"\x00\x01na\xffme\x00octet\x00",
        b"\x00\x01na\x01me\x00octet\x00",
        b"\x00\x03\x00",
        b"\x00\x04\x00\x01\x00",
        b"\x00\x04\x00",
        b"\x00\x05\x00",
        b"\x00\x05\x00\x01msg\x00trailing",
        b"\x00\x06",
    ],
    ids=repr,
)
def test_malformed_packets_raise_tftp_error(wire: bytes) -> None:
    with pytest.raises(TftpError):
        parse_packet(wire)


def test_a_request_over_512_bytes_is_refused() -> None:
    wire = b"\x00\x01" + b"a" * 250 + b"\x00octet\x00" + b"x\x00" * 130

    assert len(wire) > MAX_REQUEST
    with pytest.raises(TftpError, match="512"):
        parse_packet(wire)


def test_more_than_the_option_cap_is_refused() -> None:
    options = b"".join(b"o%d\x001\x00" % i for i in range(MAX_OPTIONS + 1))

    with pytest.raises(TftpError, match="options"):
        parse_packet(b"\x00\x01f\x00octet\x00" + options)


def test_a_filename_over_255_characters_is_refused() -> None:
    with pytest.raises(TftpError, match="filename"):
        parse_packet(b"\x00\x01" + b"a" * 256 + b"\x00octet\x00")


def test_an_option_field_over_64_characters_is_refused() -> None:
    with pytest.raises(TftpError, match="option"):
        parse_packet(b"\x00\x01f\x00octet\x00blksize\x00" + b"1" * 65 + b"\x00")


def test_a_data_packet_over_the_largest_block_is_refused() -> None:
    with pytest.raises(TftpError, match="DATA"):
        parse_packet(b"\x00\x03\x00\x01" + b"x" * (MAX_BLKSIZE + 1))


def test_builders_refuse_out_of_range_values() -> None:
    with pytest.raises(TftpError):
        build_ack(65536)
    with pytest.raises(TftpError):
        build_data(1, b"x" * (MAX_BLKSIZE + 1))
    with pytest.raises(TftpError):
        build_request("f", "binary")
    with pytest.raises(TftpError):
        build_oack(())


def test_an_error_message_is_made_printable_and_bounded() -> None:
    wire = build_error(0, "bad\nthing" + "x" * 1000)

    parsed = parse_packet(wire)
    assert isinstance(parsed, Error)
    assert parsed.message.startswith("bad?thing")
    assert len(parsed.message) == 255


def test_a_run_of_data_packets_is_build_data_per_block_rolling_over_after_65535() -> None:
    payload = bytes(range(250)) * 4  # 1,000 bytes: 3 full blocks of 300 and 100 more

    run = build_data_run(65534, 4, payload, 300)

    assert run == tuple(
        build_data(block, payload[i * 300 : (i + 1) * 300])
        for i, block in enumerate((65534, 65535, 0, 1))
    )


def test_a_run_ends_with_an_empty_block_when_the_payload_fills_the_ones_before() -> None:
    assert build_data_run(1, 3, b"ab" * 4, 4) == (
        build_data(1, b"abab"),
        build_data(2, b"abab"),
        build_data(3, b""),
    )


@pytest.mark.parametrize(
    ("first", "count", "size", "blksize"),
    [(65536, 1, 1, 512), (-1, 1, 1, 512), (1, 0, 0, 512), (1, 2, 1025, 512), (1, 1, 1, 65465)],
)
def test_a_run_refuses_what_build_data_refuses(
    first: int, count: int, size: int, blksize: int
) -> None:
    with pytest.raises(TftpError):
        build_data_run(first, count, b"x" * size, blksize)
