"""FTP server replies as a phone reads them (RFC 959 section 4.2): assemble, parse, map to HTTP.

Everything an FTP server sends on its control connection passes through
`ReplyReader`, which accepts only well-formed replies within hard caps and
raises `FtpReplyError` (and nothing else) on anything else. Pure and
synchronous; relay/sim/transports.py owns the sockets.

Decisions where the RFCs leave room:
- a line is at most MAX_LINE bytes and a reply at most MAX_LINES lines; a
  line ends with LF, CR LF or not at all (the last line of a stream); text
  is decoded as UTF-8 (RFC 2640) with replacement characters;
- a reply code is three digits whose first is 1-5 (RFC 959 section 4.2);
  a single-line reply may carry no text at all;
- in a multi-line reply every line up to the one that starts with the same
  code and a space belongs to it, whatever it holds (RFC 959 section 4.2);
- the PASV answer's host is ignored and only its port is used: the data
  connection goes to the control connection's peer, as ftplib does since
  CVE-2021-4189, so a server cannot point a phone at a third host (the FTP
  bounce attack, RFC 2577 section 3);
- HTTP-like statuses for relay.sim.phone: 1yz and 2yz are 200; 332, 530 and
  532 (need an account, not logged in, need an account for storing) are 401;
  550 on RETR or SIZE is 404; 550 and 553 on STOR or APPE are 403; any other
  4yz is 503 (transient, RFC 959 section 4.2: "the action did not take place,
  but the error condition is temporary"); any other 5yz, and a 3yz where a
  final reply was due, is 500.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_LINE = 2048
MAX_LINES = 64
MAX_SIZE_DIGITS = 18

_CODE_RE = re.compile(rb"([1-5][0-9][0-9])([ -]?)")
_PASV_RE = re.compile(r"([0-9]{1,3})" + r",([0-9]{1,3})" * 5)
_SIZE_RE = re.compile(rf"[0-9]{{1,{MAX_SIZE_DIGITS}}}")


class FtpReplyError(ValueError):
    """Bytes that are not an FTP reply this module accepts, or a reply lacking what was asked."""


@dataclass(frozen=True, slots=True)
class FtpReply:
    """One reply: its code and the text of its lines (without the codes), joined by newlines."""

    code: int
    text: str

    @property
    def preliminary(self) -> bool:
        """1yz: the server will send another reply for the same command (RFC 959 section 4.2)."""
        return self.code < 200


class ReplyReader:
    """Turns control-connection lines into replies, one line at a time."""

    __slots__ = ("_code", "_lines")

    def __init__(self) -> None:
        self._code: bytes | None = None
        self._lines: list[str] = []

    def feed(self, line: bytes) -> FtpReply | None:
        """Take one line (with or without its line ending); return the reply it completes."""
        if len(line) > MAX_LINE:
            raise FtpReplyError(f"a reply line is at most {MAX_LINE} bytes")
        line = line.removesuffix(b"\n").removesuffix(b"\r")
        if self._code is None:
            return self._first(line)
        if len(self._lines) >= MAX_LINES:
            raise FtpReplyError(f"a reply is at most {MAX_LINES} lines")
        if line[:3] == self._code and line[3:4] in (b" ", b""):
            self._lines.append(_text(line[4:]))
            return self._done(int(self._code))
        self._lines.append(_text(line))
        return None

    def _first(self, line: bytes) -> FtpReply | None:
        match = _CODE_RE.match(line)
        if match is None or (not match[2] and len(line) > 3):
            raise FtpReplyError(f"not an FTP reply line: {line[:40]!r}")
        self._lines = [_text(line[4:])]
        if match[2] == b"-":
            self._code = match[1]
            return None
        return self._done(int(match[1]))

    def _done(self, code: int) -> FtpReply:
        reply = FtpReply(code, "\n".join(self._lines))
        self._code, self._lines = None, []
        return reply


def pasv_port(reply: FtpReply) -> int:
    """The data port of a 227 reply `h1,h2,h3,h4,p1,p2` (RFC 959 section 4.1.2, PASV)."""
    match = _PASV_RE.search(reply.text)
    if reply.code != 227 or match is None:
        raise FtpReplyError(f"not a PASV answer: {reply.code} {reply.text[:60]!r}")
    numbers = [int(group) for group in match.groups()]
    if any(number > 255 for number in numbers):
        raise FtpReplyError("a PASV answer number is over 255")
    port = numbers[4] * 256 + numbers[5]
    if port == 0:
        raise FtpReplyError("a PASV answer names port 0")
    return port


def size_value(reply: FtpReply) -> int:
    """The size in a 213 answer to SIZE (RFC 3659 section 4)."""
    text = reply.text.strip()
    if reply.code != 213 or _SIZE_RE.fullmatch(text) is None:
        raise FtpReplyError(f"not a SIZE answer: {reply.code} {reply.text[:60]!r}")
    return int(text)


def status_for(command: str, code: int) -> int:
    """The HTTP-like status a phone reads from the final reply `code` to `command`."""
    if code < 300:
        return 200
    if code in (332, 530, 532):
        return 401
    if code == 550 and command in ("RETR", "SIZE"):
        return 404
    if code in (550, 553) and command in ("STOR", "APPE"):
        return 403
    return 503 if 400 <= code < 500 else 500


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")
