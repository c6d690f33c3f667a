"""FTP replies as the simulated phone reads them: assembly, caps, PASV, SIZE, statuses; fuzzed."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.sim.ftpreplies import (
    MAX_LINE,
    MAX_LINES,
    FtpReply,
    FtpReplyError,
    ReplyReader,
    pasv_port,
    size_value,
    status_for,
)


def read(*lines: bytes) -> list[FtpReply]:
    reader = ReplyReader()
    return [reply for line in lines if (reply := reader.feed(line)) is not None]


def test_a_single_line_reply_is_its_code_and_text() -> None:
    assert read(b"220 lab ftp ready\r\n") == [FtpReply(220, "lab ftp ready")]


def test_a_reply_may_carry_no_text() -> None:
    assert read(b"200\r\n") == [FtpReply(200, "")]


def test_a_multi_line_reply_ends_at_its_code_and_a_space() -> None:
    replies = read(b"230-Welcome\r\n", b" 123 not the end\r\n", b"230-still\r\n", b"230 Done\r\n")

    assert replies == [FtpReply(230, "Welcome\n 123 not the end\n230-still\nDone")]


def test_a_preliminary_reply_is_marked_so() -> None:
    [opening, done] = read(b"150 Opening data connection\r\n", b"226 Transfer complete\r\n")

    assert (opening.preliminary, done.preliminary) == (True, False)


@pytest.mark.parametrize(
    "line", [b"SSH-2.0-OpenSSH_9.2\r\n", b"620 no such class\r\n", b"2201 x\r\n", b"22\r\n"]
)
def test_a_line_that_is_not_a_reply_is_refused(line: bytes) -> None:
    with pytest.raises(FtpReplyError):
        read(line)


def test_a_line_over_the_cap_is_refused() -> None:
    with pytest.raises(FtpReplyError):
        read(b"220 " + b"x" * MAX_LINE + b"\r\n")


def test_a_reply_over_the_line_cap_is_refused() -> None:
    with pytest.raises(FtpReplyError):
        read(b"230-Welcome\r\n", *[b"more\r\n"] * MAX_LINES)


def test_pasv_gives_the_port_and_ignores_the_host() -> None:
    reply = FtpReply(227, "Entering Passive Mode (203,0,113,9,195,80).")

    assert pasv_port(reply) == 195 * 256 + 80


@pytest.mark.parametrize(
    "reply",
    [
        FtpReply(227, "Entering Passive Mode (127,0,0,1,256,1)"),
        FtpReply(227, "Entering Passive Mode (127,0,0,1,0,0)"),
        FtpReply(227, "Entering Passive Mode"),
        FtpReply(229, "Entering Extended Passive Mode (|||6446|)"),
    ],
)
def test_a_pasv_answer_without_a_usable_port_is_refused(reply: FtpReply) -> None:
    with pytest.raises(FtpReplyError):
        pasv_port(reply)


def test_size_reads_the_number() -> None:
    assert size_value(FtpReply(213, "1234")) == 1234


@pytest.mark.parametrize(
    "reply", [FtpReply(213, "12 bytes"), FtpReply(213, "9" * 19), FtpReply(250, "1234")]
)
def test_a_size_answer_that_is_not_a_number_is_refused(reply: FtpReply) -> None:
    with pytest.raises(FtpReplyError):
        size_value(reply)


@pytest.mark.parametrize(
    ("command", "code", "status"),
    [
        ("RETR", 226, 200),
        ("PASS", 530, 401),
        ("STOR", 532, 401),
        ("PASS", 332, 401),
        ("TYPE", 350, 500),
        ("RETR", 550, 404),
        ("SIZE", 550, 404),
        ("STOR", 550, 403),
        ("APPE", 553, 403),
        ("RETR", 421, 503),
        ("STOR", 452, 503),
        ("SIZE", 502, 500),
        ("RETR", 553, 500),
    ],
)
def test_final_replies_map_to_http_like_statuses(command: str, code: int, status: int) -> None:
    assert status_for(command, code) == status


codes = st.integers(100, 699).map(lambda code: str(code).encode())
lines = st.one_of(
    st.binary(max_size=MAX_LINE + 10),
    st.sampled_from(
        [b"220 ready\r\n", b"230-a\r\n", b"230 b\r\n", b"150 go\n", b"227 (1,2,3,4,5,6)\r\n"]
    ),
    st.tuples(
        st.integers(100, 699), st.sampled_from([b" ", b"-", b""]), st.binary(max_size=40)
    ).map(lambda parts: str(parts[0]).encode() + parts[1] + parts[2]),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(lines, max_size=200))
def test_any_lines_give_bounded_replies_or_ftp_reply_error(stream: list[bytes]) -> None:
    reader = ReplyReader()
    for line in stream:
        try:
            reply = reader.feed(line)
        except FtpReplyError:
            return
        if reply is None:
            continue
        assert 100 <= reply.code <= 599
        assert reply.text.count("\n") < MAX_LINES + 1
        for parse in (pasv_port, size_value):
            try:
                value = parse(reply)
            except FtpReplyError:
                continue
            assert 0 <= value < 10**18
