"""One TFTP read transfer as a pure state machine: bytes and `now` in, datagrams and a deadline out.

The adapter (relay/frontend/tftp.py) owns the sockets and timers; this module
decides what to send and when to wake up again, so every rule below is unit
tested on virtual time. Pure stdlib (relay.proto rules).

Decisions where the RFCs leave room:
- options (RFC 2347): blksize 8-65464 (RFC 2348 section 2) is clamped to the
  block that fits the path MTU unfragmented (`SessionConfig.blksize_limit`),
  timeout 1-255 s (RFC 2349 section 2) becomes the first retransmission
  interval, tsize (RFC 2349 section 3) is answered with the file size,
  windowsize 1-65535 (RFC 7440 section 3) is clamped to
  `SessionConfig.max_windowsize`; an unknown option, or a known one with a
  value out of range or not a number, is ignored (left out of the OACK), never
  refused: RFC 2347 lets the server ignore what it does not accept;
- block numbers roll over from 65535 to 0, as tftpd-hpa, atftp and curl expect
  (RFC 1350 does not say; some old clients roll to 1 and cannot fetch files
  over 65535 blocks here);
- windows (RFC 7440 section 4): the server sends `windowsize` blocks, then
  waits. An ACK for the window's last block advances; an ACK for an earlier
  block of the window means the client lost what follows, so the next window
  starts right after it. An ACK for the block already acknowledged (or older)
  is a duplicate and is ignored: RFC 1123 section 4.2.3.1 forbids answering
  a duplicate ACK with a retransmission (the sorcerer's apprentice bug); the
  timer alone retransmits;
- retransmission: the window (or the OACK) is sent again when the deadline
  passes, the interval doubling each time up to `max_timeout`; after `tries`
  transmissions without progress the session fails and tells the client with
  ERROR 0;
- anything from the client that is not an ACK or an ERROR (or does not parse)
  ends the transfer with ERROR 4 (RFC 1350 section 7); an ERROR from the client
  ends it silently (RFC 1350 section 7: errors are not acknowledged);
- only octet mode is served (see `screen` in names.py): netascii would change
  sizes and offsets, and phones fetch in octet mode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, NamedTuple, Protocol

from relay.proto.tftp.packet import (
    ACK,
    ILLEGAL_OPERATION,
    MAX_BLKSIZE,
    NOT_DEFINED,
    Ack,
    Error,
    Request,
    TftpError,
    build_data_run,
    build_error,
    build_oack,
    parse_packet,
)

DEFAULT_BLKSIZE = 512  # RFC 1350 section 2
MIN_BLKSIZE = 8  # RFC 2348 section 2
MAX_WINDOWSIZE = 65535  # RFC 7440 section 3
MIN_TIMEOUT, MAX_TIMEOUT = 1, 255  # RFC 2349 section 2
# IPv4 (20) or IPv6 (40) header, UDP header (8), TFTP DATA header (4).
_IPV4_OVERHEAD = 20 + 8 + 4
_IPV6_OVERHEAD = 40 + 8 + 4
_WIRE = 0x10000
# A wire block number maps to one block only while a window spans under half
# of the 16-bit space.
_MAX_CONFIG_WINDOW = 0x8000
_NUMBER_RE = re.compile(r"[0-9]{1,10}")
# A window prepared ahead (ReadSession.prepare) is held per transfer: 2,000
# transfers of 32 blocks of 1,468 bytes hold 94 MB; larger windows are not held.
_PREPARED_BYTES = 64 * 1024

Status = Literal["running", "done", "failed"]
# The per-ACK path builds its NamedTuples with tuple.__new__: a NamedTuple's own
# __new__ is a Python function, one more call per block in lock-step (bench/RESULTS.md).
_new = tuple.__new__


class DataSource(Protocol):
    """The bytes being served: `size` bytes, read a block at a time (any thread-safe store)."""

    @property
    def size(self) -> int:
        """The total number of bytes."""
        ...

    def read(self, offset: int, length: int) -> bytes:
        """`length` bytes from `offset` (fewer only at the end)."""
        ...


@dataclass(frozen=True, slots=True)
class BytesSource:
    """A DataSource over bytes already in memory (provisioning files are small)."""

    data: bytes | bytearray | memoryview

    @property
    def size(self) -> int:
        return len(self.data)

    def read(self, offset: int, length: int) -> bytes:
        return bytes(self.data[offset : offset + length])


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Server-side limits of a read session; see the module docstring for each rule."""

    mtu: int = 1500
    ipv6: bool = False
    timeout: float = 1.0
    max_timeout: float = 16.0
    tries: int = 6
    max_windowsize: int = 64

    def __post_init__(self) -> None:
        if self.blksize_limit < MIN_BLKSIZE:
            raise ValueError(f"an MTU of {self.mtu} leaves no room for a TFTP block")
        if not 0 < self.timeout <= self.max_timeout:
            raise ValueError("timeout must be positive and at most max_timeout")
        if self.tries < 1:
            raise ValueError("tries must be at least 1")
        if not 1 <= self.max_windowsize <= _MAX_CONFIG_WINDOW:
            raise ValueError(f"max_windowsize must be 1 to {_MAX_CONFIG_WINDOW}")

    @property
    def blksize_limit(self) -> int:
        """The largest block that crosses the path MTU unfragmented, and at most 65464."""
        overhead = _IPV6_OVERHEAD if self.ipv6 else _IPV4_OVERHEAD
        return min(MAX_BLKSIZE, self.mtu - overhead)


@dataclass(frozen=True, slots=True)
class Negotiated:
    """The transfer parameters agreed from a request's options, and the OACK to send."""

    blksize: int = DEFAULT_BLKSIZE
    timeout: float = 1.0
    windowsize: int = 1
    oack: tuple[tuple[str, str], ...] = ()


class Output(NamedTuple):
    """What the adapter must do after an input: send these datagrams, wake at `deadline`.

    `deadline` is None once the session is over; `reason` says why it failed.
    An immutable NamedTuple rather than a frozen dataclass: one is built per ACK,
    the hot path, and a frozen dataclass's __init__ (object.__setattr__ per
    field) cost more than the rest of the ACK's handling (bench/RESULTS.md).
    """

    send: tuple[bytes, ...] = ()
    deadline: float | None = None
    status: Status = "running"
    reason: str = ""


class _Window(NamedTuple):
    """Blocks `first` to `last` framed as DATA packets, and their payload bytes."""

    first: int
    last: int
    datagrams: tuple[bytes, ...]
    size: int


@dataclass(frozen=True, slots=True)
class Progress:
    """Counters for the adapter's log line."""

    blocks: int
    bytes: int
    retransmissions: int
    duplicates: int


def negotiate(request: Request, size: int, config: SessionConfig) -> Negotiated:
    """Agree blksize, timeout, tsize and windowsize (RFC 2347-2349, 7440) for a read of `size`."""
    blksize, timeout, windowsize = DEFAULT_BLKSIZE, config.timeout, 1
    accepted: list[tuple[str, str]] = []
    for name, value in request.options:
        number = int(value) if _NUMBER_RE.fullmatch(value) else None
        if number is None:
            continue
        if name == "blksize" and number >= MIN_BLKSIZE:
            blksize = min(number, config.blksize_limit)
            accepted.append((name, str(blksize)))
        elif name == "timeout" and MIN_TIMEOUT <= number <= MAX_TIMEOUT:
            timeout = float(number)
            accepted.append((name, str(number)))
        elif name == "tsize":
            accepted.append((name, str(size)))
        elif name == "windowsize" and 1 <= number <= MAX_WINDOWSIZE:
            windowsize = min(number, config.max_windowsize)
            accepted.append((name, str(windowsize)))
    return Negotiated(blksize, timeout, windowsize, tuple(accepted))


class ReadSession:
    """The server side of one RRQ: negotiation, windows, ACKs, retransmission.

    A mutable object, not a frozen dataclass: it is the per-transfer hot path
    (one call per ACK) and nothing else holds it. Block indexes are absolute
    (1, 2, ... past 65535); only the wire carries them modulo 65536.
    """

    __slots__ = (
        "_acked",
        "_blksize",
        "_config",
        "_deadline",
        "_duplicates",
        "_oack",
        "_prepared",
        "_reason",
        "_release",
        "_retransmissions",
        "_sent_blocks",
        "_sent_bytes",
        "_sent_end",
        "_size",
        "_source",
        "_status",
        "_timeout",
        "_total",
        "_tries",
        "_windowsize",
    )

    def __init__(
        self, request: Request, source: DataSource, config: SessionConfig | None = None
    ) -> None:
        self._config = config or SessionConfig()
        size = source.size
        if size < 0:
            raise ValueError("a data source cannot have a negative size")
        agreed = negotiate(request, size, self._config)
        self._source = source
        self._size = size
        self._blksize = agreed.blksize
        self._windowsize = agreed.windowsize
        self._timeout = agreed.timeout
        self._oack = build_oack(agreed.oack) if agreed.oack else None
        self._total = size // agreed.blksize + 1  # the last block is short, maybe empty
        self._acked = 0
        self._sent_end = 0
        self._prepared: _Window | None = None
        self._release = b""  # the ACK that releases the prepared window
        self._tries = 0
        self._deadline = 0.0
        self._status: Status = "running"
        self._reason = ""
        self._sent_blocks = 0
        self._sent_bytes = 0
        self._retransmissions = 0
        self._duplicates = 0

    @property
    def blksize(self) -> int:
        return self._blksize

    @property
    def windowsize(self) -> int:
        return self._windowsize

    @property
    def status(self) -> Status:
        return self._status

    @property
    def progress(self) -> Progress:
        return Progress(
            self._sent_blocks, self._sent_bytes, self._retransmissions, self._duplicates
        )

    def start(self, now: float) -> Output:
        """The first transmission: the OACK when options were accepted, else the first window.

        Called once; later calls change nothing.
        """
        if self._status != "running" or self._tries:
            return self._idle()
        self._tries = 1
        self._deadline = now + self._timeout
        if self._oack is not None:
            return Output((self._oack,), self._deadline)
        return self._send_window(now)

    def on_datagram(self, data: bytes, now: float) -> Output:
        """A datagram from the client's TID (the adapter answers other TIDs with ERROR 5)."""
        if self._status != "running":
            return self._idle()
        window = self._prepared
        if window is not None and data == self._release:
            # The hot path: the ACK of everything sent releases the window prepared after it,
            # exactly as _on_ack and _send_window would (tests/unit/test_tftp_prepare.py).
            self._prepared = None
            self._acked = self._sent_end
            self._tries = 1
            self._deadline = deadline = now + self._timeout
            self._sent_bytes += window.size
            self._sent_blocks += len(window.datagrams)
            self._sent_end = window.last
            return _new(Output, (window.datagrams, deadline, "running", ""))
        if len(data) == 4 and data[0] == 0 and data[1] == ACK:
            # The hot path, one ACK per window: read as parse_packet would, without a packet object.
            return self._on_ack(data[2] << 8 | data[3], now)
        try:
            packet = parse_packet(data)
        except TftpError as exc:
            return self._fail(ILLEGAL_OPERATION, "malformed packet", f"malformed packet: {exc}")
        if isinstance(packet, Error):
            self._status, self._deadline = "failed", 0.0
            self._reason = f"the client sent error {packet.code}: {packet.message[:80]!r}"
            return self._idle()
        if not isinstance(packet, Ack):
            kind = type(packet).__name__.upper()
            return self._fail(ILLEGAL_OPERATION, f"unexpected {kind}", f"the client sent {kind}")
        return self._on_ack(packet.block, now)

    def on_timer(self, now: float) -> Output:
        """The deadline passed (or the adapter woke early): retransmit, or give up."""
        if self._status != "running":
            return self._idle()
        if now < self._deadline:
            return self._idle()
        if self._tries >= self._config.tries:
            return self._fail(
                NOT_DEFINED,
                "transfer timed out",
                f"no answer after {self._tries} transmissions",
            )
        self._tries += 1
        self._retransmissions += 1
        interval = self._timeout * 2 ** (self._tries - 1)
        self._deadline = now + min(interval, max(self._config.max_timeout, self._timeout))
        if self._oack is not None and self._sent_end == 0:
            return Output((self._oack,), self._deadline)
        return self._send_window(now, restart=False)

    def _on_ack(self, wire: int, now: float) -> Output:
        if self._oack is not None and self._sent_end == 0:
            if wire != 0:  # RFC 2347: the client acknowledges an OACK with ACK 0
                self._duplicates += 1
                return self._idle()
            return self._send_window(now)
        block = self._acked + (wire - self._acked) % _WIRE
        if block == self._acked or block > self._sent_end:
            self._duplicates += 1
            return self._idle()
        self._acked = block
        if block == self._total:
            self._status, self._deadline = "done", 0.0
            return self._idle()
        return self._send_window(now)

    def prepare(self) -> None:
        """Build now the window that an ACK of everything sent will release.

        The adapter may call it once the datagrams of an input are sent: reading
        and framing the next window then overlap the client's handling of this
        one instead of delaying the answer to its ACK. Kept only up to
        _PREPARED_BYTES; an ACK that asks for another window discards it. The
        ACK that releases it is answered without the general ACK path (the
        per-window hot path, `on_datagram`).
        """
        if self._status != "running" or self._prepared is not None or not self._tries:
            return
        first = self._sent_end + 1
        last = min(self._sent_end + self._windowsize, self._total)
        if first > last or (last - first + 1) * self._blksize > _PREPARED_BYTES:
            return
        self._prepared = self._build(first, last)
        # build_ack's bytes, without a call per block: the ACK opcode, then the wire block.
        self._release = (ACK << 16 | self._sent_end % _WIRE).to_bytes(4, "big")

    def _send_window(self, now: float, *, restart: bool = True) -> Output:
        """Send blocks after the last acknowledged one, up to a window (RFC 7440 section 4)."""
        if restart:
            self._tries = 1
            self._deadline = now + self._timeout
        first = self._acked + 1
        last = min(self._acked + self._windowsize, self._total)
        window, self._prepared = self._prepared, None
        if window is None or window.first != first or window.last != last:
            window = self._build(first, last)
        if window is None:
            return self._fail(
                NOT_DEFINED, "file changed", "the file changed while it was being sent"
            )
        self._sent_bytes += window.size
        self._sent_blocks += len(window.datagrams)
        self._sent_end = max(self._sent_end, last)
        return _new(Output, (window.datagrams, self._deadline, "running", ""))

    def _build(self, first: int, last: int) -> _Window | None:
        """The DATA packets of blocks `first` to `last`; None when the source changed size.

        One read for the whole window (one pread of a file, not one per block).
        """
        blksize, size, source = self._blksize, self._size, self._source
        offset = (first - 1) * blksize
        expected = min((last - first + 1) * blksize, size - offset)
        payload = source.read(offset, expected)
        if len(payload) != expected or source.size != size:
            return None
        datagrams = build_data_run(first % _WIRE, last - first + 1, payload, blksize)
        return _new(_Window, (first, last, datagrams, expected))

    def _fail(self, code: int, message: str, reason: str) -> Output:
        self._status, self._deadline, self._reason = "failed", 0.0, reason
        return Output((build_error(code, message),), None, "failed", reason)

    def _idle(self) -> Output:
        if self._status == "running":
            return Output((), self._deadline)
        return Output((), None, self._status, self._reason)
