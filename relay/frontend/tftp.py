"""The TFTP server for phones (RFC 1350 with RFC 2347-2349 options and RFC 7440 windows).

Two halves around the pure core in relay/proto/tftp. On the asyncio loop: one
listening UDP socket takes requests, screens them and resolves names (a
resolver may await the cloud). Then each transfer gets its own ephemeral UDP
socket, its transfer identifier (RFC 1350 section 4), and is handed to the
engine (relay.frontend.tftp_engine): one thread that runs every transfer's
ACKs, windows and timers in a blocking epoll loop, because asyncio's dispatch
per datagram costs as much as the transfer's own work and lock-step pays it
once per block (the measurements are in that module). The engine reports each
end back to the loop (`call_soon_threadsafe`), where `active` and
`max_sessions` are kept: the rest are refused with ERROR 0 "server busy".
Sockets are plain non-blocking sockets, not asyncio datagram transports: a
transport reads every datagram into a fresh 256 KiB buffer (an mmap, mremap and
munmap per ACK, bench/RESULTS.md). epoll on both sides: no select() limit on
concurrent transfers.

Why the server is our own and not tftpy's (architecture.md names tftpy): measured
here, tftpy 0.8.7's server dies on a blksize=65536 request, stops at about 1,000
concurrent sessions (it multiplexes with select()), has no windowsize (RFC 7440)
and reaches about half of tftpd-hpa's throughput. tftpy remains a good client and
is used as one in the tests.

Safety: the server is read-only and answers only provisioning names
(relay.proto.tftp.names.screen). A refused name that tries to leave the served
names (`..`, absolute paths, backslashes, NULs) is audited with a WARNING line
carrying the client address. No single request can stop the server: every
exception of a request or a transfer is contained, logged once, and ends only
that transfer (with ERROR 0 to its client). A resolver that cannot serve a name
for a known reason (the cloud is unreachable) raises `TftpRefusal`: the client
gets that ERROR, and the log one line at the level the resolver chose.

Decisions: refusals (bad request, refused name, unknown file, busy) are sent
from the listening socket, so a flood of bad requests costs no sockets; a
repeated RRQ from a client address whose transfer is under way is ignored (the
transfer's own retransmission answers it, and a second transfer would double
the traffic); a datagram from another address on a transfer's socket is
answered with ERROR 5 and does not disturb the transfer (RFC 1350 section 4),
which is why transfer sockets are not connected to the client; a client that
vanishes is given up after the session's retransmissions; a resolver that
takes longer than `resolve_timeout` gets its client ERROR 0 "try again" (the
client retries; nothing is wrong with the server); a datagram that does not fit
the send buffer waits for the socket to be writable, in order.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from relay.frontend.tftp_engine import (
    RECEIVE_SIZE,
    Engine,
    Handoff,
    release,
    send_quietly,
    text,
)
from relay.frontend.tftp_engine import Address as Address  # the callers' type, defined there
from relay.logs import event
from relay.proto.tftp.names import screen
from relay.proto.tftp.packet import (
    FILE_NOT_FOUND,
    ILLEGAL_OPERATION,
    NOT_DEFINED,
    UNKNOWN_TID,
    Error,
    Request,
    TftpError,
    build_error,
    parse_packet,
)
from relay.proto.tftp.session import BytesSource, DataSource, ReadSession, SessionConfig

log = logging.getLogger("relay.tftp")

Resolved = DataSource | bytes | bytearray | memoryview | None
# A source with a `close()` method is closed once its transfer is over, however
# it ends, or at once when the transfer never starts.
Resolver = Callable[[str, Address], Resolved | Awaitable[Resolved]]


class TftpRefusal(Exception):
    """Raised by a resolver to answer with ERROR `code` and `message` instead of a file.

    For refusals with a known cause, not failures of the server: one
    `tftp_declined` line at `level` with `reason`, never `tftp_request_failed`
    (issue 5: while the cloud is down, Upstream logs the outage once and phones
    get an error they retry on).
    """

    def __init__(
        self, code: int, message: str, reason: str = "", level: int = logging.INFO
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or message
        self.level = level


class FileSource:
    """A DataSource over an open file descriptor, read with pread (no shared file offset).

    Not in relay.proto.tftp.session: it does I/O. The size is taken once, when
    opened: a file truncated while it is served ends the transfer ("file
    changed"), and a file replaced by rename keeps being served from the inode
    opened. Owns the descriptor; `close()` (called by the server when the
    transfer ends) closes it once.
    """

    __slots__ = ("_fd", "size")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        # An attribute, not a property: the session reads it once per block sent.
        self.size = os.fstat(fd).st_size

    @classmethod
    def open(cls, path: Path) -> FileSource:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return cls(fd)
        except BaseException:
            os.close(fd)
            raise

    def read(self, offset: int, length: int) -> bytes:
        return os.pread(self._fd, length, offset)

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)


@dataclass(frozen=True, slots=True)
class TftpConfig:
    """Where to listen and how many transfers at once; `session` holds the per-transfer limits.

    `session.mtu` is the path MTU to the phones: blksize is clamped to it so
    that blocks are never fragmented. Each transfer holds one socket, and one
    more file descriptor when its source is a file: RLIMIT_NOFILE must exceed
    twice `max_sessions`. `gso` sends each window (RFC 7440) with UDP
    segmentation offload where the kernel has it; it turns itself off (logged
    once) on a path that refuses it.
    """

    host: str = "0.0.0.0"  # noqa: S104 - phones on any interface of the appliance
    port: int = 69
    max_sessions: int = 2000
    resolve_timeout: float = 10.0
    gso: bool = True
    session: SessionConfig = field(default_factory=SessionConfig)


class TftpServer:
    """Serve read requests for the names `resolve` knows; `async with` or start()/close()."""

    def __init__(self, resolve: Resolver, config: TftpConfig | None = None) -> None:
        self._resolve = resolve
        self._config = config or TftpConfig()
        self._session_config = self._config.session
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: socket.socket | None = None
        self._family = socket.AF_INET
        self._bind_host = self._config.host
        self._pending: dict[Address, asyncio.Task[None]] = {}
        self._transfers: set[Address] = set()
        self._engine: Engine | None = None
        self._busy_logged = False
        self._closing = False

    async def __aenter__(self) -> TftpServer:
        await self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind the listening socket (port 0 picks a free one; see `address`)."""
        loop = asyncio.get_running_loop()
        host, port = self._config.host, self._config.port
        passive = socket.AI_PASSIVE
        try:  # an address literal needs no resolver thread
            infos = socket.getaddrinfo(
                host, port, type=socket.SOCK_DGRAM, flags=passive | socket.AI_NUMERICHOST
            )
        except socket.gaierror:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM, flags=passive)
        family, _, _, _, address = infos[0]
        listener = _udp_socket(family, address)
        try:
            self._engine = Engine(loop, self._detach, gso=self._config.gso)
        except BaseException:
            listener.close()
            raise
        self._loop, self._listener, self._family = loop, listener, family
        self._bind_host = str(address[0])
        if family == socket.AF_INET6:
            self._session_config = replace(self._session_config, ipv6=True)
        loop.add_reader(listener.fileno(), self._on_readable)
        event(log, "tftp_listening", address=text(self.address))

    @property
    def address(self) -> Address:
        """The bound (host, port) of the listening socket."""
        if self._listener is None:
            raise RuntimeError("the TFTP server is not started")
        host, port = self._listener.getsockname()[:2]
        return str(host), int(port)

    @property
    def active(self) -> int:
        """Transfers under way, counting those still being resolved."""
        return len(self._transfers) + len(self._pending)

    async def close(self) -> None:
        """Stop listening, end every transfer (ERROR 0 to its client), close every socket and
        stop the engine's thread."""
        self._closing = True
        if self._listener is not None and self._loop is not None:
            self._loop.remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None
        pending = list(self._pending.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        if self._engine is not None:
            await self._engine.close()
        self._transfers.clear()

    def _on_readable(self) -> None:
        if self._listener is None:
            return
        try:
            data, addr = self._listener.recvfrom(RECEIVE_SIZE)
        except OSError as exc:  # nothing to read after all, or an ICMP error reported
            event(log, "tftp_listener_error", logging.DEBUG, error=repr(exc))
            return
        client = (str(addr[0]), int(addr[1]))
        try:
            self._on_request(data, client)
        except Exception as exc:
            event(log, "tftp_request_failed", logging.ERROR, client=text(client), error=repr(exc))

    def _on_request(self, data: bytes, client: Address) -> None:
        if self._closing:
            return
        try:
            packet = parse_packet(data)
        except TftpError as exc:
            event(log, "tftp_bad_request", logging.WARNING, client=text(client), reason=str(exc))
            self._reply(client, ILLEGAL_OPERATION, "malformed request")
            return
        if isinstance(packet, Error):
            return  # RFC 1350 section 7: an error is never answered
        if not isinstance(packet, Request):
            self._reply(client, UNKNOWN_TID, "no transfer on this port")
            return
        if client in self._transfers or client in self._pending:
            return
        refusal = screen(packet)
        if refusal is not None:
            level = logging.WARNING if refusal.audit else logging.INFO
            fields: dict[str, Any] = {"audit": True} if refusal.audit else {}
            event(
                log,
                "tftp_refused",
                level,
                client=text(client),
                file=packet.filename,
                reason=refusal.reason,
                **fields,
            )
            self._reply(client, refusal.code, refusal.message)
            return
        if self.active >= self._config.max_sessions:
            if not self._busy_logged:
                event(
                    log,
                    "tftp_busy",
                    logging.WARNING,
                    client=text(client),
                    max_sessions=self._config.max_sessions,
                )
                self._busy_logged = True
            self._reply(client, NOT_DEFINED, "server busy")
            return
        task = asyncio.get_running_loop().create_task(self._open(packet, client))
        self._pending[client] = task
        task.add_done_callback(lambda _t: self._pending.pop(client, None))

    async def _open(self, request: Request, client: Address) -> None:
        """Resolve the name and start its transfer on a new socket; contain every failure."""
        source: DataSource | None = None
        try:
            result = self._resolve(request.filename, client)
            if inspect.isawaitable(result):
                resolved = await asyncio.wait_for(result, self._config.resolve_timeout)
            else:
                resolved = result
            if resolved is None:
                event(log, "tftp_not_found", client=text(client), file=request.filename)
                self._reply(client, FILE_NOT_FOUND, "file not found")
                return
            if isinstance(resolved, bytes | bytearray | memoryview):
                source = BytesSource(resolved)
            else:
                source = resolved
            if self._closing or self._engine is None:
                return
            session = ReadSession(request, source, self._session_config)
            sock = _udp_socket(self._family, (self._bind_host, 0))
            try:
                self._engine.submit(Handoff(session, source, request.filename, client, sock))
            except BaseException:
                sock.close()
                raise
            source = None  # the engine owns it now
            self._transfers.add(client)
        except asyncio.CancelledError:
            raise
        except TftpRefusal as refusal:
            event(
                log,
                "tftp_declined",
                refusal.level,
                client=text(client),
                file=request.filename,
                code=refusal.code,
                reason=refusal.reason,
            )
            self._reply(client, refusal.code, refusal.message)
        except TimeoutError:
            event(
                log,
                "tftp_resolve_timeout",
                logging.WARNING,
                client=text(client),
                file=request.filename,
                seconds=self._config.resolve_timeout,
            )
            self._reply(client, NOT_DEFINED, "not ready, try again")
        except Exception as exc:
            event(
                log,
                "tftp_request_failed",
                logging.ERROR,
                client=text(client),
                file=request.filename,
                error=repr(exc),
            )
            self._reply(client, NOT_DEFINED, "internal error")
        finally:
            if source is not None:
                release(source)

    def _reply(self, client: Address, code: int, message: str) -> None:
        if self._listener is not None:
            send_quietly(self._listener, build_error(code, message), client)

    def _detach(self, client: Address) -> None:
        """The engine ended the transfer of `client` (called on the loop)."""
        self._transfers.discard(client)
        if self.active < self._config.max_sessions:
            self._busy_logged = False


def _udp_socket(family: int, address: tuple[Any, ...]) -> socket.socket:
    """A bound, non-blocking UDP socket (closed again if binding fails)."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock
