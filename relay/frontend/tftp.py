"""The TFTP server for phones (RFC 1350 with RFC 2347-2349 options and RFC 7440 windows).

A thin asyncio adapter around the pure core in relay/proto/tftp: one listening
UDP socket takes requests; each transfer gets its own ephemeral UDP socket, its
transfer identifier (RFC 1350 section 4), through `loop.create_datagram_endpoint`,
and its timers through `loop.call_at`. The loop's selector is epoll on Linux, so
there is no select() limit on concurrent transfers; `max_sessions` bounds them
and refuses the rest with ERROR 0 "server busy".

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
that transfer (with ERROR 0 to its client).

Decisions: refusals (bad request, refused name, unknown file, busy) are sent
from the listening socket, so a flood of bad requests costs no sockets; a
repeated RRQ from a client address whose transfer is under way is ignored (the
transfer's own retransmission answers it, and a second transfer would double
the traffic); a datagram from another address on a transfer's socket is
answered with ERROR 5 and does not disturb the transfer (RFC 1350 section 4),
which is why transfer sockets are not connected to the client; a client that
vanishes is given up after the session's retransmissions.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any, cast

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
from relay.proto.tftp.session import BytesSource, DataSource, Output, ReadSession, SessionConfig

log = logging.getLogger("relay.tftp")

Address = tuple[str, int]
Resolved = DataSource | bytes | bytearray | memoryview | None
Resolver = Callable[[str, Address], Resolved | Awaitable[Resolved]]


@dataclass(frozen=True, slots=True)
class TftpConfig:
    """Where to listen and how many transfers at once; `session` holds the per-transfer limits.

    `session.mtu` is the path MTU to the phones: blksize is clamped to it so
    that blocks are never fragmented. Each transfer holds one file descriptor:
    the process's RLIMIT_NOFILE must exceed `max_sessions`.
    """

    host: str = "0.0.0.0"  # noqa: S104 - phones on any interface of the appliance
    port: int = 69
    max_sessions: int = 2000
    resolve_timeout: float = 10.0
    session: SessionConfig = field(default_factory=SessionConfig)


class TftpServer:
    """Serve read requests for the names `resolve` knows; `async with` or start()/close()."""

    def __init__(self, resolve: Resolver, config: TftpConfig | None = None) -> None:
        self._resolve = resolve
        self._config = config or TftpConfig()
        self._session_config = self._config.session
        self._listener: asyncio.DatagramTransport | None = None
        self._listener_closed: asyncio.Future[None] | None = None
        self._pending: dict[Address, asyncio.Task[None]] = {}
        self._transfers: dict[Address, _Transfer] = {}
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
        self._listener_closed = loop.create_future()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Listener(self), local_addr=(self._config.host, self._config.port)
        )
        self._listener = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family == socket.AF_INET6:
            self._session_config = replace(self._session_config, ipv6=True)
        event(log, "tftp_listening", address=_text(self.address))

    @property
    def address(self) -> Address:
        """The bound (host, port) of the listening socket."""
        if self._listener is None:
            raise RuntimeError("the TFTP server is not started")
        host, port = self._listener.get_extra_info("sockname")[:2]
        return str(host), int(port)

    @property
    def active(self) -> int:
        """Transfers under way, counting those still being resolved."""
        return len(self._transfers) + len(self._pending)

    async def close(self) -> None:
        """Stop listening, end every transfer (ERROR 0 to its client) and close every socket."""
        self._closing = True
        if self._listener is not None:
            self._listener.close()
        pending = list(self._pending.values())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        # A transport closed by a cancelled create_datagram_endpoint closes its socket soon.
        await asyncio.sleep(0)
        transfers = list(self._transfers.values())
        for transfer in transfers:
            transfer.stop("the server is shutting down")
        waits = [t.closed for t in transfers]
        if self._listener_closed is not None and self._listener is not None:
            waits.append(self._listener_closed)
        await asyncio.gather(*waits)
        self._listener = None

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
                resolved = BytesSource(resolved)
            session = ReadSession(request, resolved, self._session_config)
            loop = asyncio.get_running_loop()
            transfer = _Transfer(self, session, request.filename, client, loop.create_future())
            await loop.create_datagram_endpoint(lambda: transfer, local_addr=(self._config.host, 0))
        except asyncio.CancelledError:
            raise
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

    def _reply(self, client: Address, code: int, message: str) -> None:
        if self._listener is not None and not self._listener.is_closing():
            self._listener.sendto(build_error(code, message), client)

    def _attach(self, transfer: _Transfer) -> None:
        self._transfers[transfer.client] = transfer

    def _detach(self, transfer: _Transfer) -> None:
        if self._transfers.get(transfer.client) is transfer:
            del self._transfers[transfer.client]
        if self.active < self._config.max_sessions:
            self._busy_logged = False


class _Listener(asyncio.DatagramProtocol):
    def __init__(self, server: TftpServer) -> None:
        self._server = server

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        client = (str(addr[0]), int(addr[1]))
        try:
            self._server._on_request(data, client)
        except Exception as exc:
            event(log, "tftp_request_failed", logging.ERROR, client=_text(client), error=repr(exc))

    def error_received(self, exc: Exception) -> None:
        # A reply that could not be sent; the listening socket carries on.
        event(log, "tftp_listener_icmp", logging.DEBUG, error=repr(exc))

    def connection_lost(self, exc: Exception | None) -> None:
        closed = self._server._listener_closed
        if closed is not None and not closed.done():
            closed.set_result(None)


class _Transfer(asyncio.DatagramProtocol):
    """One ReadSession on its own socket; every callback is contained."""

    def __init__(
        self,
        server: TftpServer,
        session: ReadSession,
        name: str,
        client: Address,
        closed: asyncio.Future[None],
    ) -> None:
        self._server = server
        self._session = session
        self._name = name
        self.client = client
        self.closed = closed
        self._loop = closed.get_loop()
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._started = self._loop.time()
        self._over = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)
        if self._server._closing:
            self._over = True
            self._transport.close()
            return
        self._server._attach(self)
        self._guarded(lambda: self._session.start(self._loop.time()))

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if self._over or self._transport is None:
            return
        sender = (str(addr[0]), int(addr[1]))
        if sender != self.client:
            self._transport.sendto(build_error(UNKNOWN_TID, "unknown transfer ID"), sender)
            return
        self._guarded(lambda: self._session.on_datagram(data, self._loop.time()))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._server._detach(self)
        if not self.closed.done():
            self.closed.set_result(None)

    def stop(self, reason: str) -> None:
        """End the transfer from the server's side, telling the client."""
        if self._over:
            return
        if self._transport is not None:
            self._transport.sendto(build_error(NOT_DEFINED, reason), self.client)
        self._finish(Output(status="failed", reason=reason))

    def _on_timer(self) -> None:
        self._timer = None
        self._guarded(lambda: self._session.on_timer(self._loop.time()))

    def _guarded(self, step: Callable[[], Output]) -> None:
        """Run one step of the session and apply it; an exception ends this transfer only."""
        if self._over:
            return
        try:
            self._apply(step())
        except Exception as exc:
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
        assert self._transport is not None
        for datagram in output.send:
            self._transport.sendto(datagram, self.client)
        if output.status != "running" or output.deadline is None:
            self._finish(output)
            return
        if self._timer is None or self._timer.when() > output.deadline:
            if self._timer is not None:
                self._timer.cancel()
            # An earlier timer is kept: the session answers an early wake with its deadline.
            self._timer = self._loop.call_at(output.deadline, self._on_timer)

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
        if self._transport is not None:
            self._transport.close()


def _text(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
