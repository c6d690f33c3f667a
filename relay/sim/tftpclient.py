"""The phone's side of one TFTP transfer as a pure state machine: datagrams and `now` in.

RFC 1350 in octet mode with RFC 2347 options (blksize RFC 2348, tsize RFC 2349,
windowsize RFC 7440). The adapter (relay/sim/transports.py) owns the socket and
the timer; this module decides what to send, to whom, and when to wake up, so
every rule is unit tested on virtual time. Packets are parsed and built by
relay.proto.tftp.packet, whose parser is bounded and raises only TftpError.

Decisions where the RFCs leave room:
- options asked for: blksize always, windowsize only above 1 (a server that
  does not know it must ignore it anyway, RFC 2347), tsize when wanted: "0" on
  a read, the file's size on a write (RFC 2349 section 3);
- a server that ignores options answers a read with DATA 1 and a write with
  ACK 0 (RFC 2347 "Negotiation Protocol"): the defaults then apply (512-byte
  blocks, one-block windows);
- an OACK with no option at all (atftpd 0.8 sends one when it accepts none
  of those asked for; packet.py refuses it, RFC 2347 gives an OACK options)
  is taken as accepting none: the defaults apply;
- an OACK must hold only options that were asked for, a blksize of 8 up to
  the one asked, a windowsize of 1 up to the one asked and a numeric tsize
  (RFC 2347-2349, RFC 7440 section 3); anything else is refused with ERROR 8
  and the transfer fails as a protocol error;
- transfer identifiers (RFC 1350 section 4): the first answer from the server's
  host fixes the server's port; a datagram from any other address is answered
  with ERROR 5 and changes nothing;
- windows (RFC 7440 section 4): the client acknowledges every `windowsize`
  in-sequence blocks, and the last (short) block at once; a block out of
  sequence (a gap, or an old block sent again) is answered with an ACK of the
  last in-sequence block, once until the transfer moves on, so that a resent
  window does not draw a storm of ACKs;
- block numbers roll over from 65535 to 0, as relay.proto.tftp.session and
  tftpd-hpa do;
- retransmission: when nothing moves the transfer on for an interval, the
  last packet sent (the request, an ACK or a DATA) is sent again; the interval
  starts at `interval` and doubles up to `max_interval`; the transfer fails as
  timed out at `start + total` whatever happens;
- writes are lock-step (one block per ACK, RFC 1350 section 2); a duplicate
  ACK is never answered (RFC 1123 section 4.2.3.1, the sorcerer's apprentice
  bug), only the timer resends;
- the client does not dally after its final ACK (RFC 1350 section 6 suggests
  it): a phone moves on to its next file at once, and a server whose last
  DATA is lost times out on its own;
- `limit`: once `limit` bytes are in, the client ends the transfer with
  ERROR 0 (an error ends a transfer, RFC 1350 section 7) and keeps those bytes;
- a read over `max_size` bytes ends with ERROR 3 and fails: the simulator
  holds files in memory;
- an ERROR from the server is an answer, not a failure: code 1 is 404, code 2
  is 403, any other 503 (HTTP-like statuses for relay.sim.phone); its message
  becomes the body, as an HTTP error page would;
- a malformed datagram, or a packet of the wrong kind, from the server ends
  the transfer with ERROR 4 (RFC 1350 section 7) and fails as a protocol error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from relay.proto.tftp.packet import (
    ACCESS_VIOLATION,
    DISK_FULL,
    FILE_NOT_FOUND,
    ILLEGAL_OPERATION,
    MAX_BLKSIZE,
    NOT_DEFINED,
    OACK,
    OPTION_REFUSED,
    UNKNOWN_TID,
    Ack,
    Data,
    Error,
    OAck,
    Request,
    TftpError,
    build_ack,
    build_data,
    build_error,
    build_request,
    parse_packet,
)

Address = tuple[str, int]
Phase = Literal["requesting", "transferring"]

DEFAULT_BLKSIZE = 512  # RFC 1350 section 5
MIN_BLKSIZE = 8  # RFC 2348 section 2
# A wire block number maps to one block only while a window spans under half
# of the 16-bit space (as in relay.proto.tftp.session).
MAX_WINDOWSIZE = 0x8000
MAX_SIZE = 256 * 1024 * 1024
_WIRE = 0x10000
_EMPTY_OACK = OACK.to_bytes(2, "big")
_NUMBER_RE = re.compile(r"[0-9]{1,10}")


@dataclass(frozen=True, slots=True)
class ClientConfig:
    """What the phone asks for and how long it waits; see the module docstring for each rule."""

    blksize: int = 1468
    windowsize: int = 1
    tsize: bool = True
    limit: int | None = None
    total: float = 30.0
    interval: float = 1.0
    max_interval: float = 8.0
    max_size: int = MAX_SIZE

    def __post_init__(self) -> None:
        if not MIN_BLKSIZE <= self.blksize <= MAX_BLKSIZE:
            raise ValueError(f"blksize must be {MIN_BLKSIZE} to {MAX_BLKSIZE}")
        if not 1 <= self.windowsize <= MAX_WINDOWSIZE:
            raise ValueError(f"windowsize must be 1 to {MAX_WINDOWSIZE}")
        if self.limit is not None and self.limit < 0:
            raise ValueError("limit must not be negative")
        if not self.total > 0:
            raise ValueError("total must be positive")
        if not 0 < self.interval <= self.max_interval:
            raise ValueError("interval must be positive and at most max_interval")
        if self.max_size < 0:
            raise ValueError("max_size must not be negative")


@dataclass(frozen=True, slots=True)
class Reply:
    """The server's answer: HTTP-like `status` and the file (or the ERROR's message)."""

    status: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Failure:
    """No answer: the transfer timed out, or the server broke the protocol."""

    timed_out: bool
    reason: str


@dataclass(frozen=True, slots=True)
class Output:
    """What the adapter must do: send each datagram to its address, wake at `deadline`.

    `outcome` is set once the transfer is over; `deadline` is then None.
    """

    send: tuple[tuple[bytes, Address], ...] = ()
    deadline: float | None = None
    outcome: Reply | Failure | None = None


def status_for_error(code: int) -> int:
    """The HTTP-like status a phone reads from a TFTP ERROR code (RFC 1350 section 5)."""
    if code == FILE_NOT_FOUND:
        return 404
    if code == ACCESS_VIOLATION:
        return 403
    return 503


class ClientSession:
    """One RRQ (or, with `upload`, one WRQ) from `server`'s listening address.

    Mutable, one object per transfer; block counts are absolute (past 65535),
    only the wire carries them modulo 65536.
    """

    __slots__ = (
        "_blksize",
        "_blocks",
        "_body",
        "_config",
        "_end",
        "_filename",
        "_in_window",
        "_interval",
        "_last",
        "_nacked",
        "_oack",
        "_outcome",
        "_phase",
        "_retransmit_at",
        "_server",
        "_tid",
        "_upload",
        "_windowsize",
    )

    def __init__(
        self,
        server: Address,
        filename: str,
        config: ClientConfig | None = None,
        *,
        upload: bytes | None = None,
    ) -> None:
        self._config = config or ClientConfig()
        self._server = server
        self._filename = filename
        self._upload = upload
        if upload is not None and len(upload) > self._config.max_size:
            raise ValueError(f"an upload is at most {self._config.max_size} bytes")
        self._phase: Phase = "requesting"
        self._tid: Address | None = None
        self._blksize = DEFAULT_BLKSIZE
        self._windowsize = 1
        self._oack = False
        self._blocks = 0
        self._body = bytearray()
        self._in_window = 0
        self._nacked = False
        self._last = b""
        self._interval = self._config.interval
        self._retransmit_at = 0.0
        self._end = 0.0
        self._outcome: Reply | Failure | None = None

    @property
    def outcome(self) -> Reply | Failure | None:
        return self._outcome

    def start(self, now: float) -> Output:
        """Send the request; called once, later calls change nothing.

        Raises TftpError when the name cannot be put in a request.
        """
        if self._last or self._outcome is not None:
            return self._idle()
        self._last = build_request(
            self._filename, "octet", self._options(), write=self._upload is not None
        )
        self._end = now + self._config.total
        return self._transmit(now)

    def on_datagram(self, data: bytes, sender: Address, now: float) -> Output:
        """A datagram that arrived on the client's socket from `sender`."""
        if self._outcome is not None or not self._last:
            return self._idle()
        expected_host = self._server[0] if self._tid is None else self._tid[0]
        if sender[0] != expected_host or (self._tid is not None and sender != self._tid):
            stray = build_error(UNKNOWN_TID, "unknown transfer ID")
            return Output(((stray, sender),), self._deadline())
        self._tid = self._tid or sender
        if data == _EMPTY_OACK:
            return self._on_oack(OAck(()), now)
        try:
            packet = parse_packet(data)
        except TftpError as exc:
            return self._abort(ILLEGAL_OPERATION, "malformed packet", f"malformed packet: {exc}")
        if isinstance(packet, Error):
            reply = Reply(status_for_error(packet.code), packet.message.encode("ascii", "replace"))
            return self._finish(reply)
        if isinstance(packet, OAck):
            return self._on_oack(packet, now)
        if self._upload is None and isinstance(packet, Data):
            return self._on_data(packet, now)
        if self._upload is not None and isinstance(packet, Ack):
            return self._on_ack(packet.block, now)
        kind = "request" if isinstance(packet, Request) else type(packet).__name__.upper()
        return self._abort(ILLEGAL_OPERATION, f"unexpected {kind}", f"the server sent {kind}")

    def on_timer(self, now: float) -> Output:
        """The deadline passed (or the adapter woke early): give up, resend, or wait on."""
        if self._outcome is not None:
            return self._idle()
        if now >= self._end:
            reason = f"no answer within {self._config.total:g} s"
            if self._tid is None:
                return self._fail(Failure(timed_out=True, reason=reason))
            return self._abort(NOT_DEFINED, "transfer timed out", reason, timed_out=True)
        if now < self._retransmit_at:
            return self._idle()
        self._interval = min(self._interval * 2, self._config.max_interval)
        self._retransmit_at = now + self._interval
        self._in_window = 0  # a resent ACK starts the server's next window after it
        return Output(((self._last, self._peer()),), self._deadline())

    def _options(self) -> tuple[tuple[str, str], ...]:
        config = self._config
        options = [("blksize", str(config.blksize))]
        if config.tsize:
            options.append(("tsize", str(len(self._upload)) if self._upload is not None else "0"))
        if config.windowsize > 1 and self._upload is None:
            options.append(("windowsize", str(config.windowsize)))
        return tuple(options)

    def _on_oack(self, packet: OAck, now: float) -> Output:
        if self._phase != "requesting":
            if self._oack and self._blocks == (0 if self._upload is None else 1):
                # Our ACK 0 (or DATA 1) was lost and the server sent its OACK again.
                return Output(((self._last, self._peer()),), self._deadline())
            return self._abort(ILLEGAL_OPERATION, "unexpected OACK", "the server sent OACK")
        asked = dict(self._options())
        blksize, windowsize = DEFAULT_BLKSIZE, 1
        for name, value in packet.options:
            if name not in asked or _NUMBER_RE.fullmatch(value) is None:
                return self._refuse(f"option {name}={value!r} was not asked for or not a number")
            number = int(value)
            if name == "blksize":
                if not MIN_BLKSIZE <= number <= int(asked[name]):
                    return self._refuse(f"blksize {number} is outside {MIN_BLKSIZE}-{asked[name]}")
                blksize = number
            elif name == "windowsize":
                if not 1 <= number <= int(asked[name]):
                    return self._refuse(f"windowsize {number} is outside 1-{asked[name]}")
                windowsize = number
        self._blksize, self._windowsize, self._oack = blksize, windowsize, True
        self._phase = "transferring"
        if self._upload is None:
            self._last = build_ack(0)  # RFC 2347: the client acknowledges an OACK with ACK 0
            return self._transmit(now)
        return self._send_block(now)

    def _on_data(self, packet: Data, now: float) -> Output:
        if self._phase == "requesting":
            if packet.block != 1:
                return self._abort(
                    ILLEGAL_OPERATION, "unexpected block", f"the first block is {packet.block}"
                )
            self._phase = "transferring"
        if packet.block != (self._blocks + 1) % _WIRE:
            if self._nacked:
                return self._idle()
            self._nacked, self._in_window = True, 0
            self._last = build_ack(self._blocks % _WIRE)
            return Output(((self._last, self._peer()),), self._deadline())
        if len(packet.payload) > self._blksize:
            return self._abort(
                ILLEGAL_OPERATION,
                "block too large",
                f"block {self._blocks + 1} holds {len(packet.payload)} bytes, over {self._blksize}",
            )
        self._blocks += 1
        self._nacked = False
        self._body += packet.payload
        config = self._config
        if len(self._body) > config.max_size:
            reason = f"the file is over {config.max_size} bytes"
            return self._abort(DISK_FULL, "file too large", reason)
        self._last = build_ack(packet.block)
        if len(packet.payload) < self._blksize:
            body = bytes(self._body if config.limit is None else self._body[: config.limit])
            return self._finish(Reply(200, body), (self._last, self._peer()))
        if config.limit is not None and len(self._body) >= config.limit:
            stop = build_error(NOT_DEFINED, "transfer cancelled")
            return self._finish(Reply(200, bytes(self._body[: config.limit])), (stop, self._peer()))
        self._in_window += 1
        if self._in_window >= self._windowsize:
            self._in_window = 0
            return self._transmit(now)
        self._interval = config.interval
        self._retransmit_at = now + self._interval
        return self._idle()

    def _on_ack(self, wire: int, now: float) -> Output:
        if self._phase == "requesting":
            if wire != 0:
                return self._abort(ILLEGAL_OPERATION, "unexpected ACK", f"the first ACK is {wire}")
            self._phase = "transferring"
            return self._send_block(now)
        if wire != self._blocks % _WIRE:
            return self._idle()  # a duplicate: only the timer resends (RFC 1123 4.2.3.1)
        assert self._upload is not None
        if self._blocks == len(self._upload) // self._blksize + 1:
            return self._finish(Reply(200, b""))
        return self._send_block(now)

    def _send_block(self, now: float) -> Output:
        assert self._upload is not None
        offset = self._blocks * self._blksize
        self._blocks += 1
        payload = self._upload[offset : offset + self._blksize]
        self._last = build_data(self._blocks % _WIRE, payload)
        return self._transmit(now)

    def _transmit(self, now: float) -> Output:
        """Send `_last` as progress: the retransmission interval starts again."""
        self._interval = self._config.interval
        self._retransmit_at = now + self._interval
        return Output(((self._last, self._peer()),), self._deadline())

    def _refuse(self, reason: str) -> Output:
        return self._abort(OPTION_REFUSED, "option refused", f"bad OACK: {reason}")

    def _abort(self, code: int, message: str, reason: str, *, timed_out: bool = False) -> Output:
        """End the transfer with an ERROR to the server and fail."""
        output = self._fail(Failure(timed_out=timed_out, reason=reason))
        return Output(((build_error(code, message), self._peer()),), None, output.outcome)

    def _finish(self, reply: Reply, *send: tuple[bytes, Address]) -> Output:
        self._outcome = reply
        return Output(tuple(send), None, reply)

    def _fail(self, failure: Failure) -> Output:
        self._outcome = failure
        return Output((), None, failure)

    def _peer(self) -> Address:
        return self._tid or self._server

    def _deadline(self) -> float:
        return min(self._retransmit_at, self._end)

    def _idle(self) -> Output:
        if self._outcome is not None:
            return Output((), None, self._outcome)
        return Output((), self._deadline())
