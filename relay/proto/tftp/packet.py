"""TFTP packets (RFC 1350 section 5, RFC 2347 options): parse and build, strictly and bounded.

Every datagram on the TFTP ports comes from anyone on the LAN, so the parser
accepts only well-formed packets within hard caps and raises `TftpError` (and
nothing else) on anything else. Pure stdlib (relay.proto rules).

Decisions where the RFCs leave room:
- a request (RRQ/WRQ) is capped at 512 bytes, the limit RFC 2347 ("Packet
  Format") sets for a request with its options;
- the filename and every option field must be printable ASCII (RFC 1350
  section 5 makes them netascii; phones' names are ASCII), at most
  MAX_FILENAME and MAX_OPTION_FIELD characters, at most MAX_OPTIONS options;
- option names are case-insensitive (RFC 2347) and kept lower-case; a name
  given twice makes the request ambiguous and it is refused;
- an ACK is exactly 4 bytes; an ERROR whose message lacks its terminating NUL
  is still accepted (it only ever ends a transfer), its message decoded with
  replacement characters.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

# RFC 1350 section 5 opcodes; 6 (OACK) is RFC 2347.
RRQ = 1
WRQ = 2
DATA = 3
ACK = 4
ERROR = 5
OACK = 6

# RFC 1350 appendix "Error Codes"; 8 is RFC 2347 (option negotiation refused).
NOT_DEFINED = 0
FILE_NOT_FOUND = 1
ACCESS_VIOLATION = 2
DISK_FULL = 3
ILLEGAL_OPERATION = 4
UNKNOWN_TID = 5
FILE_EXISTS = 6
NO_SUCH_USER = 7
OPTION_REFUSED = 8

MODES = ("netascii", "octet", "mail")
# RFC 2348 section 2: the largest block size, 65535 less IP and UDP headers.
MAX_BLKSIZE = 65464
MAX_BLOCK = 0xFFFF
MAX_REQUEST = 512
MAX_DATA_PACKET = 4 + MAX_BLKSIZE
MAX_ERROR_MESSAGE = 255
MAX_FILENAME = 255
MAX_OPTIONS = 16
MAX_OPTION_FIELD = 64

_HEADER = struct.Struct("!HH")
_OPCODE = struct.Struct("!H")


class TftpError(ValueError):
    """Bytes that are not a TFTP packet this module accepts, or a packet that cannot be built."""


@dataclass(frozen=True, slots=True)
class Request:
    """RRQ or WRQ (RFC 1350 section 5) with RFC 2347 options, names lower-cased, in order."""

    write: bool
    filename: str
    mode: str
    options: tuple[tuple[str, str], ...] = ()

    def option(self, name: str) -> str | None:
        """The value of option `name` (lower-case), or None when the client did not send it."""
        for key, value in self.options:
            if key == name:
                return value
        return None


@dataclass(frozen=True, slots=True)
class Data:
    """One block of a transfer (RFC 1350 section 5); `block` is the 16-bit wire number."""

    block: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Ack:
    """Acknowledges block `block` (RFC 1350 section 5); block 0 acknowledges an OACK."""

    block: int


@dataclass(frozen=True, slots=True)
class Error:
    """Ends a transfer (RFC 1350 section 5, section 7 for its codes)."""

    code: int
    message: str


@dataclass(frozen=True, slots=True)
class OAck:
    """The server's answer to the options it accepts (RFC 2347 "Packet Format")."""

    options: tuple[tuple[str, str], ...]


Packet = Request | Data | Ack | Error | OAck


def parse_packet(data: bytes) -> Packet:
    """Parse one datagram; raise TftpError for anything malformed or over a cap."""
    if len(data) < 2:
        raise TftpError("a TFTP packet is at least 2 bytes (its opcode)")
    (opcode,) = _OPCODE.unpack_from(data)
    if opcode in (RRQ, WRQ):
        return _parse_request(data, write=opcode == WRQ)
    if opcode == DATA:
        if len(data) < 4:
            raise TftpError("a DATA packet is at least 4 bytes")
        if len(data) > MAX_DATA_PACKET:
            raise TftpError(f"a DATA packet is at most {MAX_DATA_PACKET} bytes")
        return Data(_HEADER.unpack_from(data)[1], bytes(data[4:]))
    if opcode == ACK:
        if len(data) != 4:
            raise TftpError("an ACK packet is exactly 4 bytes")
        return Ack(_HEADER.unpack_from(data)[1])
    if opcode == ERROR:
        return _parse_error(data)
    if opcode == OACK:
        if len(data) > MAX_REQUEST:
            raise TftpError(f"an OACK packet is at most {MAX_REQUEST} bytes")
        fields = _fields(data[2:])
        return OAck(_options(fields))
    raise TftpError(f"unknown TFTP opcode {opcode}")


def build_request(
    filename: str,
    mode: str = "octet",
    options: tuple[tuple[str, str], ...] = (),
    *,
    write: bool = False,
) -> bytes:
    """An RRQ (or WRQ) packet; raises TftpError for what the parser would refuse."""
    if mode.lower() not in MODES:
        raise TftpError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    _check_field(filename, MAX_FILENAME, "filename")
    body = _join((filename, mode.lower(), *_flatten(options)))
    packet = _OPCODE.pack(WRQ if write else RRQ) + body
    if len(packet) > MAX_REQUEST:
        raise TftpError(f"a request is at most {MAX_REQUEST} bytes")
    return packet


def build_data(block: int, payload: bytes) -> bytes:
    """A DATA packet for the 16-bit wire block number `block`."""
    _check_block(block)
    if len(payload) > MAX_BLKSIZE:
        raise TftpError(f"a DATA payload is at most {MAX_BLKSIZE} bytes")
    return _HEADER.pack(DATA, block) + payload


def build_data_run(first: int, count: int, payload: bytes, blksize: int) -> tuple[bytes, ...]:
    """The DATA packets of `count` consecutive blocks holding `payload`, cut every `blksize` bytes.

    Blocks are numbered from the wire number `first` on, rolling over from 65535
    to 0; blocks past the end of `payload` are empty (a file whose size is a
    multiple of blksize ends with an empty block, RFC 1350 section 6). Checks
    once what build_data checks per block: a window is framed in one call, on
    the server's per-ACK path.
    """
    if not 0 <= first <= MAX_BLOCK:
        raise TftpError(f"block number {first} is not a 16-bit number")
    if not 0 < blksize <= MAX_BLKSIZE:
        raise TftpError(f"a DATA payload is at most {MAX_BLKSIZE} bytes")
    if count < 1 or len(payload) > count * blksize:
        raise TftpError(f"{len(payload)} bytes do not fit {count} blocks of {blksize}")
    pack = _HEADER.pack
    if count == 1:
        return (pack(DATA, first) + payload,)
    return tuple(
        pack(DATA, (first + index) & MAX_BLOCK) + payload[offset : offset + blksize]
        for index, offset in enumerate(range(0, count * blksize, blksize))
    )


def build_ack(block: int) -> bytes:
    """An ACK packet for the 16-bit wire block number `block`."""
    if not 0 <= block <= MAX_BLOCK:
        raise TftpError(f"block number {block} is not a 16-bit number")
    return _HEADER.pack(ACK, block)


def build_error(code: int, message: str) -> bytes:
    """An ERROR packet; the message is made printable ASCII and cut to MAX_ERROR_MESSAGE."""
    if not 0 <= code <= 0xFFFF:
        raise TftpError(f"error code {code} is not a 16-bit number")
    text = "".join(c if " " <= c <= "~" else "?" for c in message[:MAX_ERROR_MESSAGE])
    return _HEADER.pack(ERROR, code) + text.encode("ascii") + b"\0"


def build_oack(options: tuple[tuple[str, str], ...]) -> bytes:
    """An OACK packet (RFC 2347) carrying the accepted options in the order given."""
    if not options:
        raise TftpError("an OACK carries at least one option (RFC 2347)")
    packet = _OPCODE.pack(OACK) + _join(_flatten(options))
    if len(packet) > MAX_REQUEST:
        raise TftpError(f"an OACK packet is at most {MAX_REQUEST} bytes")
    return packet


def _parse_request(data: bytes, *, write: bool) -> Request:
    if len(data) > MAX_REQUEST:
        raise TftpError(f"a request is at most {MAX_REQUEST} bytes (RFC 2347)")
    fields = _fields(data[2:])
    if len(fields) < 2:
        raise TftpError("a request holds a filename and a mode")
    filename, mode = fields[0], fields[1].lower()
    _check_field(filename, MAX_FILENAME, "filename")
    if mode not in MODES:
        raise TftpError(f"mode {_shorten(mode)!r} is not one of {', '.join(MODES)}")
    return Request(write, filename, mode, _options(fields[2:]))


def _parse_error(data: bytes) -> Error:
    if len(data) < 4:
        raise TftpError("an ERROR packet is at least 4 bytes")
    if len(data) > 4 + MAX_ERROR_MESSAGE + 1:
        raise TftpError(f"an ERROR message is at most {MAX_ERROR_MESSAGE} bytes")
    code = _HEADER.unpack_from(data)[1]
    raw = data[4:]
    end = raw.find(b"\0")
    if end != -1:
        if end != len(raw) - 1:
            raise TftpError("an ERROR packet has bytes after its message")
        raw = raw[:end]
    return Error(code, raw.decode("ascii", "replace"))


def _fields(body: bytes) -> list[str]:
    """Split NUL-terminated fields; every field, the last too, must end with a NUL."""
    if not body.endswith(b"\0"):
        raise TftpError("a request field is not NUL-terminated")
    parts = body[:-1].split(b"\0")
    if len(parts) > 2 + 2 * MAX_OPTIONS:
        raise TftpError(f"a packet carries at most {MAX_OPTIONS} options")
    try:
        return [part.decode("ascii") for part in parts]
    except UnicodeDecodeError:
        raise TftpError("a request field is not ASCII") from None


def _options(fields: list[str]) -> tuple[tuple[str, str], ...]:
    if len(fields) % 2:
        raise TftpError("an option has a name but no value")
    options: list[tuple[str, str]] = []
    seen: set[str] = set()
    for index in range(0, len(fields), 2):
        name, value = fields[index].lower(), fields[index + 1]
        _check_field(name, MAX_OPTION_FIELD, "option name")
        _check_field(value, MAX_OPTION_FIELD, "option value", empty_ok=True)
        if name in seen:
            raise TftpError(f"option {name!r} is given twice")
        seen.add(name)
        options.append((name, value))
    return tuple(options)


def _check_field(text: str, limit: int, what: str, *, empty_ok: bool = False) -> None:
    if not text and not empty_ok:
        raise TftpError(f"the {what} is empty")
    if len(text) > limit:
        raise TftpError(f"the {what} is over {limit} characters")
    if any(not " " <= c <= "~" for c in text):
        raise TftpError(f"the {what} holds a control or non-ASCII character")


def _flatten(options: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    if len(options) > MAX_OPTIONS:
        raise TftpError(f"a packet carries at most {MAX_OPTIONS} options")
    flat: list[str] = []
    for name, value in options:
        _check_field(name, MAX_OPTION_FIELD, "option name")
        _check_field(value, MAX_OPTION_FIELD, "option value", empty_ok=True)
        flat += [name, value]
    return tuple(flat)


def _join(fields: tuple[str, ...]) -> bytes:
    return b"".join(field.encode("ascii") + b"\0" for field in fields)


def _check_block(block: int) -> None:
    if not 0 <= block <= MAX_BLOCK:
        raise TftpError(f"block number {block} is not a 16-bit number")


def _shorten(text: str) -> str:
    return text if len(text) <= 40 else text[:37] + "..."
