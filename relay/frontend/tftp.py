"""The TFTP server for phones (RFC 1350 with RFC 2347-2349 options and RFC 7440 windows).

A thin asyncio adapter around the pure core in relay/proto/tftp: one listening
UDP socket takes requests; each transfer gets its own ephemeral UDP socket, its
transfer identifier (RFC 1350 section 4), and its timers through
`loop.call_at`. Sockets are plain non-blocking sockets watched with
`loop.add_reader`, not asyncio datagram transports: a transport reads every
datagram into a fresh 256 KiB buffer (an mmap, mremap and munmap per ACK; 50 MB
in lock-step took 4.2-5.5 s that way and 2.6 s without, bench/RESULTS.md). The
loop's selector is epoll on Linux, so there is no select() limit on concurrent
transfers; `max_sessions` bounds them and refuses the rest with ERROR 0
"server busy".

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
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from relay.logs import event
from relay.proto.tftp.gso import DATA_HEADER, MAX_BYTES, batches, split
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
from relay.proto.tftp.session import BytesSource, DataSource, Output, ReadSession, SessionConfig

log = logging.getLogger("relay.tftp")

Address = tuple[str, int]
Resolved = DataSource | bytes | bytearray | memoryview | None
# A source with a `close()` method is closed once its transfer is over, however
# it ends, or at once when the transfer never starts.
Resolver = Callable[[str, Address], Resolved | Awaitable[Resolved]]

# Every packet a client may send is far smaller (a request is at most 512 bytes,
# RFC 2347; an ACK is 4): a longer datagram is cut here and refused as malformed.
_RECEIVE_SIZE = 2048
# UDP generic segmentation offload (Linux 4.18, include/uapi/linux/udp.h): one send
# carries a window of equal-size datagrams, split by the kernel or the NIC, so a
# window of 32 blocks costs one system call instead of 32 (relay.proto.tftp.gso).
_UDP_SEGMENT = 103


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

    __slots__ = ("_fd", "_size")

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._size = os.fstat(fd).st_size

    @classmethod
    def open(cls, path: Path) -> FileSource:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return cls(fd)
        except BaseException:
            os.close(fd)
            raise

    @property
    def size(self) -> int:
        return self._size

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
        self._transfers: dict[Address, _Transfer] = {}
        self._busy_logged = False
        self._gso = self._config.gso
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
        self._loop, self._listener, self._family = loop, listener, family
        self._bind_host = str(address[0])
        if family == socket.AF_INET6:
            self._session_config = replace(self._session_config, ipv6=True)
        loop.add_reader(listener.fileno(), self._on_readable)
        event(log, "tftp_listening", address=_text(self.address))

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
        """Stop listening, end every transfer (ERROR 0 to its client) and close every socket."""
        self._closing = True
        if self._listener is not None and self._loop is not None:
            self._loop.remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None
        pending = list(self._pending.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for transfer in list(self._transfers.values()):
            transfer.stop("the server is shutting down")

    def _on_readable(self) -> None:
        if self._listener is None:
            return
        try:
            data, addr = self._listener.recvfrom(_RECEIVE_SIZE)
        except OSError as exc:  # nothing to read after all, or an ICMP error reported
            event(log, "tftp_listener_error", logging.DEBUG, error=repr(exc))
            return
        client = (str(addr[0]), int(addr[1]))
        try:
            self._on_request(data, client)
        except Exception as exc:
            event(log, "tftp_request_failed", logging.ERROR, client=_text(client), error=repr(exc))

    def _on_request(self, data: bytes, client: Address) -> None:
        if self._closing:
            return
        try:
            packet = parse_packet(data)
        except TftpError as exc:
            event(log, "tftp_bad_request", logging.WARNING, client=_text(client), reason=str(exc))
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
                client=_text(client),
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
                    client=_text(client),
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
                event(log, "tftp_not_found", client=_text(client), file=request.filename)
                self._reply(client, FILE_NOT_FOUND, "file not found")
                return
            if isinstance(resolved, bytes | bytearray | memoryview):
                source = BytesSource(resolved)
            else:
                source = resolved
            if self._closing:
                return
            session = ReadSession(request, source, self._session_config)
            sock = _udp_socket(self._family, (self._bind_host, 0))
            transfer = _Transfer(self, session, source, request.filename, client, sock)
            source = None  # the transfer owns it now
            transfer.begin()
        except asyncio.CancelledError:
            raise
        except TftpRefusal as refusal:
            event(
                log,
                "tftp_declined",
                refusal.level,
                client=_text(client),
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
                client=_text(client),
                file=request.filename,
                seconds=self._config.resolve_timeout,
            )
            self._reply(client, NOT_DEFINED, "not ready, try again")
        except Exception as exc:
            event(
                log,
                "tftp_request_failed",
                logging.ERROR,
                client=_text(client),
                file=request.filename,
                error=repr(exc),
            )
            self._reply(client, NOT_DEFINED, "internal error")
        finally:
            if source is not None:
                _release(source)

    def _reply(self, client: Address, code: int, message: str) -> None:
        if self._listener is not None:
            _send_quietly(self._listener, build_error(code, message), client)

    def _segmentation(self, sock: socket.socket, blksize: int) -> int:
        """The GSO segment size set on a windowed transfer's socket, or 0 to send one by one."""
        segment = blksize + DATA_HEADER
        if not self._gso or MAX_BYTES // segment < 2:
            return 0
        try:
            sock.setsockopt(socket.SOL_UDP, _UDP_SEGMENT, segment)
        except OSError as exc:
            return self._segmentation_failed(exc)
        return segment

    def _segmentation_failed(self, exc: OSError) -> int:
        if self._gso:
            self._gso = False
            event(log, "tftp_gso_off", logging.WARNING, error=repr(exc))
        return 0

    def _attach(self, transfer: _Transfer) -> None:
        self._transfers[transfer.client] = transfer

    def _detach(self, transfer: _Transfer) -> None:
        if self._transfers.get(transfer.client) is transfer:
            del self._transfers[transfer.client]
        if self.active < self._config.max_sessions:
            self._busy_logged = False


class _Transfer:
    """One ReadSession on its own socket; every callback is contained.

    The ACK path (`_on_readable`) calls the session and sends without
    indirection: in lock-step it runs once per block (bench/RESULTS.md).
    """

    __slots__ = (
        "_backlog",
        "_loop",
        "_name",
        "_over",
        "_segment",
        "_server",
        "_session",
        "_sock",
        "_source",
        "_started",
        "_timer",
        "_wake",
        "client",
    )

    def __init__(
        self,
        server: TftpServer,
        session: ReadSession,
        source: DataSource,
        name: str,
        client: Address,
        sock: socket.socket,
    ) -> None:
        self._server = server
        self._session = session
        self._source = source
        self._name = name
        self.client = client
        self._sock = sock
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._wake = 0.0
        self._backlog: deque[bytes] = deque()
        self._segment = 0
        self._started = self._loop.time()
        self._over = False

    def begin(self) -> None:
        self._server._attach(self)
        if self._session.windowsize > 1:
            self._segment = self._server._segmentation(self._sock, self._session.blksize)
        self._loop.add_reader(self._sock.fileno(), self._on_readable)
        try:
            self._apply(self._session.start(self._loop.time()))
            if not self._over:
                self._session.prepare()
        except Exception as exc:
            self._crashed(exc)

    def stop(self, reason: str) -> None:
        """End the transfer from the server's side, telling the client."""
        if self._over:
            return
        _send_quietly(self._sock, build_error(NOT_DEFINED, reason), self.client)
        self._finish(Output(status="failed", reason=reason))

    def _on_readable(self) -> None:
        try:
            data, addr = self._sock.recvfrom(_RECEIVE_SIZE)
        except OSError:  # nothing to read after all, or an ICMP error reported
            return
        if self._over:
            return
        client = self.client
        if addr[0] != client[0] or addr[1] != client[1]:
            stranger = (str(addr[0]), int(addr[1]))
            _send_quietly(self._sock, build_error(UNKNOWN_TID, "unknown transfer ID"), stranger)
            return
        try:
            self._apply(self._session.on_datagram(data, self._loop.time()))
            if not self._over:
                self._session.prepare()  # sent first, then the next window, off the ACK's path
        except Exception as exc:
            self._crashed(exc)

    def _on_timer(self) -> None:
        self._timer = None
        if self._over:
            return
        try:
            self._apply(self._session.on_timer(self._loop.time()))
        except Exception as exc:
            self._crashed(exc)

    def _crashed(self, exc: Exception) -> None:
        """A step of the session (or its source) raised: end this transfer only."""
        event(
            log,
            "tftp_transfer_crashed",
            logging.ERROR,
            client=_text(self.client),
            file=self._name,
            error=repr(exc),
        )
        self.stop("internal error")

    def _apply(self, output: Output) -> None:
        send = output.send
        if len(send) == 1 and not self._backlog:
            self._send(send[0])
        elif send:
            for datagram in batches(send, self._segment) if self._segment else send:
                self._send(datagram)
        deadline = output.deadline
        if deadline is None or output.status != "running":
            self._finish(output)
            return
        # An earlier timer is kept: the session answers an early wake with its deadline.
        if self._timer is None or self._wake > deadline:
            if self._timer is not None:
                self._timer.cancel()
            self._wake = deadline
            self._timer = self._loop.call_at(deadline, self._on_timer)

    def _send(self, datagram: bytes) -> None:
        if self._backlog:
            self._backlog.append(datagram)
            return
        try:
            self._sock.sendto(datagram, self.client)
        except (BlockingIOError, InterruptedError):
            self._backlog.append(datagram)
            self._loop.add_writer(self._sock.fileno(), self._on_writable)
        except OSError as exc:
            if len(datagram) > self._segment > 0:
                # The path cannot segment (no checksum offload): send one by one from now on.
                self._segment = self._server._segmentation_failed(exc)
                for single in split(datagram, self._session.blksize + DATA_HEADER):
                    self._send(single)
                return
            # Lost like a datagram on the wire: the session's timer sends it again.
            event(
                log, "tftp_send_failed", logging.DEBUG, client=_text(self.client), error=repr(exc)
            )

    def _on_writable(self) -> None:
        while self._backlog:
            try:
                self._sock.sendto(self._backlog[0], self.client)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                event(
                    log,
                    "tftp_send_failed",
                    logging.DEBUG,
                    client=_text(self.client),
                    error=repr(exc),
                )
            self._backlog.popleft()
        self._loop.remove_writer(self._sock.fileno())

    def _finish(self, output: Output) -> None:
        self._over = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        progress = self._session.progress
        fields: dict[str, Any] = {
            "client": _text(self.client),
            "file": self._name,
            "blocks": progress.blocks,
            "bytes": progress.bytes,
            "retransmissions": progress.retransmissions,
            "seconds": round(self._loop.time() - self._started, 3),
        }
        if output.status == "done":
            event(log, "tftp_sent", **fields)
        else:
            event(log, "tftp_failed", reason=output.reason, **fields)
        fd = self._sock.fileno()
        self._loop.remove_reader(fd)
        if self._backlog:
            self._backlog.clear()
            self._loop.remove_writer(fd)
        self._sock.close()
        self._server._detach(self)
        _release(self._source)


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


def _send_quietly(sock: socket.socket, datagram: bytes, address: Address) -> None:
    """A best-effort datagram (an ERROR): if the send buffer is full it is lost, as on a wire."""
    try:
        sock.sendto(datagram, address)
    except OSError as exc:
        event(log, "tftp_send_failed", logging.DEBUG, client=_text(address), error=repr(exc))


def _release(source: DataSource) -> None:
    """Close a source that can be closed; a failure to close is logged, never raised."""
    close = getattr(source, "close", None)
    if callable(close):
        try:
            close()
        except Exception as exc:
            event(log, "tftp_source_close_failed", logging.ERROR, error=repr(exc))


def _text(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
