"""A simulated phone's FTP, FTPS and TFTP requests: one request in, an HTTP-like reply out.

relay.sim.phone speaks HTTP(S) itself and calls these for the other protocols a
provisioning URL can name (phones.md section 2). Each call is one request of
one phone, from the phone's own address (`source_ip`), on connections of its
own: phones reconnect for every file.

What the caller gets:
- an answer of the server, refusals included, is a `TransportReply` with an
  HTTP-like status (200, 401, 403, 404, 500, 503; see relay.sim.ftpreplies and
  relay.sim.tftpclient for the mappings);
- a server that cannot be reached, resets or drops a connection, breaks the
  protocol or fails TLS verification raises ConnectionError (`TransportError`
  for the last two), and one that does not answer within `timeout` raises
  TimeoutError: relay.sim.phone fails over to the next server on both, as it
  does for HTTP(S);
- a CA file that cannot be loaded raises certs.lab.CertError: the phone's
  setup is wrong, not the server.

FTP is an asyncio client rather than ftplib in threads: 2,000 phones would
queue behind the default executor's few threads, and a thread cannot be
cancelled when its phone is. Decisions:
- credentials in the URL (`ftp://user:pass@host`, phones.md section 1) win
  over `user`/`password`, as they do for HTTP in relay.sim.phone; no user at
  all logs in as `anonymous` (RFC 1635);
- the URL's path is relative to the login directory (RFC 1738 section 3.2.2)
  and is sent whole in one command (`RETR logs/x.log`) rather than by CWD per
  segment; a path, user or password holding CR, LF or NUL is refused
  (ValueError): it would inject commands (RFC 959 section 4.1.3);
- binary type (TYPE I) before any transfer or SIZE, passive mode (PASV) for
  every transfer; the data connection is opened, then the command sent, then
  (FTPS) TLS started on it once the server said 1yz, in ftplib's order;
- FTPS is explicit (RFC 4217): AUTH TLS before the login, then PBSZ 0 and
  PROT P so that data connections are encrypted too; the server must prove
  the URL's host against `cafile` (certs.tls.client_context) on both
  connections, and a server refusing any of the three is a failed server;
- HEAD is SIZE (RFC 3659 section 4): the size comes back in
  `TransportReply.size`, the Content-Length an HTTP HEAD would give;
- PUT is STOR, or APPE for a name ending in `.log`: phones append to their
  logs; the end of the file is the data connection's close (stream mode,
  RFC 959 section 3.4.1);
- `limit`: once that many bytes are in, the data and control connections are
  dropped without more ado, as a phone that read a firmware header does; the
  reply is 200 with those bytes;
- the session ends with QUIT, whose answer is waited for briefly; after an
  error the connections are dropped at once, so `timeout` bounds the call;
  bodies are capped at MAX_BODY (over it is a failed server).

TFTP is the pure relay.sim.tftpclient on an asyncio datagram socket. HEAD has
no TFTP counterpart and phones do not ask it over TFTP; it answers 404 with
no traffic, so that a caller asking before uploading a log goes on as for a
log not yet there. PUT sends a real WRQ; the relay's server refuses it
(read-only, ERROR 2: 403), a server that accepts it gets the file.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ipaddress
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import yarl

from certs.tls import client_context
from relay.sim.ftpreplies import (
    MAX_LINE,
    FtpReply,
    FtpReplyError,
    ReplyReader,
    pasv_port,
    size_value,
    status_for,
)
from relay.sim.tftpclient import ClientConfig, ClientSession, Failure, Output, Reply

FTP_PORT = 21
TFTP_PORT = 69  # RFC 1350 section 4
MAX_BODY = 256 * 1024 * 1024
_CHUNK = 64 * 1024
# Closing a connection (TLS close_notify, QUIT's answer) waits at most this long.
_CLOSE_SECONDS = 2.0
_FORBIDDEN = ("\r", "\n", "\0")


class TransportError(ConnectionError):
    """The server broke its protocol or failed TLS: to the phone, a server that failed."""


@dataclass(frozen=True, slots=True)
class TransportReply:
    """HTTP-like: 200 ok, 401 login refused, 403 write refused, 404 no such file, 503 retry.

    500 is any other refusal. `size` is what HEAD learnt (FTP SIZE), else None.
    """

    status: int
    body: bytes
    size: int | None = None


async def ftp_request(
    method: str,
    url: yarl.URL,
    *,
    user: str,
    password: str,
    source_ip: str,
    timeout: float,  # noqa: ASYNC109 - the interface relay.sim.phone calls
    data: bytes | None = None,
    limit: int | None = None,
    cafile: str | None = None,
) -> TransportReply:
    """GET (RETR), HEAD (SIZE) or PUT (STOR/APPE) over `ftp://` or explicit `ftps://`."""
    if url.scheme not in ("ftp", "ftps") or not url.host:
        raise ValueError(f"{url.scheme}://{url.host or ''} is not an ftp:// or ftps:// URL")
    path = url.path.lstrip("/")
    command = {"GET": "RETR", "HEAD": "SIZE"}.get(method)
    if method == "PUT":
        command = "APPE" if path.endswith(".log") else "STOR"
    if command is None:
        raise ValueError(f"FTP has no {method}: GET, HEAD or PUT")
    if url.user is not None:
        user, password = url.user, url.password or ""
    user = user or "anonymous"
    if not path or any(c in f for f in (path, user, password) for c in _FORBIDDEN):
        raise ValueError("an FTP path must be given; path, user and password without CR/LF/NUL")
    request = _FtpRequest(
        host=url.host,
        port=url.explicit_port or FTP_PORT,
        tls=_tls_context(cafile) if url.scheme == "ftps" else None,
        source_ip=source_ip,
        command=command,
        path=path,
        data=data or b"",
        limit=limit,
    )
    with _failures_as_connection_errors(url.host):
        async with asyncio.timeout(timeout):
            return await request.run(user, password)


async def tftp_request(
    method: str,
    url: yarl.URL,
    *,
    source_ip: str,
    timeout: float,  # noqa: ASYNC109 - the interface relay.sim.phone calls
    limit: int | None = None,
    blksize: int = 1468,
    windowsize: int = 1,
    tsize: bool = True,
    data: bytes | None = None,
) -> TransportReply:
    """GET (RRQ) or PUT (WRQ of `data`) over `tftp://host[:port]/name` (RFC 3617)."""
    if url.scheme != "tftp" or not url.host:
        raise ValueError(f"{url.scheme}://{url.host or ''} is not a tftp:// URL")
    if method == "HEAD":
        return TransportReply(404, b"")
    if method not in ("GET", "PUT"):
        raise ValueError(f"TFTP has no {method}: GET or PUT")
    config = ClientConfig(
        blksize=blksize,
        windowsize=windowsize,
        tsize=tsize,
        limit=limit,
        total=timeout,
        max_size=MAX_BODY,
    )
    upload = (data or b"") if method == "PUT" else None
    loop = asyncio.get_running_loop()
    # The outer bound is a safety net only: the session gives up at `timeout` on its own.
    with _failures_as_connection_errors(url.host):
        async with asyncio.timeout(timeout + _CLOSE_SECONDS):
            server = await _udp_address(url.host, url.explicit_port or TFTP_PORT)
            session = ClientSession(server, url.path.removeprefix("/"), config, upload=upload)
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _TftpProtocol(session, loop), local_addr=(source_ip, 0)
            )
            try:
                outcome = await protocol.done
            finally:
                transport.close()
    if isinstance(outcome, Failure):
        if outcome.timed_out:
            raise TimeoutError(f"{url.host}: {outcome.reason}")
        raise TransportError(f"{url.host}: {outcome.reason}")
    return TransportReply(outcome.status, outcome.body)


@contextlib.contextmanager
def _failures_as_connection_errors(host: str) -> Iterator[None]:
    """Every way a server can fail a phone, as ConnectionError or TimeoutError.

    An OSError of the phone's own side (its address cannot be bound) counts too,
    as aiohttp counts it for HTTP.
    """
    try:
        yield
    except (ConnectionError, TimeoutError):
        raise
    except (ssl.SSLError, FtpReplyError) as exc:
        raise TransportError(f"{host}: {exc}") from exc
    except OSError as exc:
        raise TransportError(f"{host}: {exc.strerror or exc}") from exc


@functools.lru_cache(maxsize=16)
def _tls_context(cafile: str | None) -> ssl.SSLContext:
    """One verifying context per CA file, shared by every phone that trusts it."""
    return client_context(None if cafile is None else Path(cafile))


class _Control:
    """The control connection: commands out, replies (RFC 959 section 4.2) in."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._replies = ReplyReader()

    async def reply(self) -> FtpReply:
        """The next reply, preliminary (1yz) ones included."""
        while True:
            try:
                line = await self.reader.readuntil(b"\n")
            except asyncio.LimitOverrunError:
                raise FtpReplyError(f"a reply line is over {MAX_LINE} bytes") from None
            except asyncio.IncompleteReadError as exc:
                reply = self._replies.feed(exc.partial) if exc.partial else None
                if reply is None:
                    raise ConnectionResetError("the server closed the control connection") from None
                return reply
            reply = self._replies.feed(line)
            if reply is not None:
                return reply

    async def final(self) -> FtpReply:
        """The next reply that is not preliminary."""
        while (reply := await self.reply()).preliminary:
            pass
        return reply

    async def command(self, text: str) -> FtpReply:
        self.writer.write(text.encode() + b"\r\n")
        await self.writer.drain()
        return await self.reply()


@dataclass(frozen=True, slots=True)
class _FtpRequest:
    host: str
    port: int
    tls: ssl.SSLContext | None
    source_ip: str
    command: str
    path: str
    data: bytes
    limit: int | None

    async def run(self, user: str, password: str) -> TransportReply:
        reader, writer = await asyncio.open_connection(
            self.host, self.port, local_addr=(self.source_ip, 0), limit=MAX_LINE
        )
        control = _Control(reader, writer)
        try:
            reply, polite = await self._converse(control, user, password)
        except BaseException:
            await _close(writer, abort=True)
            raise
        if polite:
            with contextlib.suppress(ConnectionError, FtpReplyError, TimeoutError):
                async with asyncio.timeout(_CLOSE_SECONDS):
                    await control.command("QUIT")
        await _close(writer, abort=not polite)
        return reply

    async def _converse(
        self, control: _Control, user: str, password: str
    ) -> tuple[TransportReply, bool]:
        """The request's reply, and whether to QUIT.

        Not after a dropped transfer, nor after a refused welcome (421 closes the
        connection, RFC 959 section 4.2).
        """
        welcome = await control.final()
        if welcome.code >= 400:
            return _refused("CONNECT", welcome), False
        reply = await self._login(control, user, password)
        if reply is not None:
            return reply, True
        if self.command == "SIZE":
            answer = await control.command(f"SIZE {self.path}")
            if answer.code >= 300:
                return _refused("SIZE", answer), True
            return TransportReply(200, b"", size_value(answer)), True
        reply, dropped = await self._transfer(control)
        return reply, not dropped

    async def _login(self, control: _Control, user: str, password: str) -> TransportReply | None:
        """AUTH TLS, USER/PASS, PBSZ/PROT, TYPE I; a refusal is returned as the reply."""
        if self.tls is not None:
            answer = await control.command("AUTH TLS")
            if answer.code != 234:
                raise TransportError(f"the server refused AUTH TLS: {answer.code}")
            await control.writer.start_tls(self.tls, server_hostname=self.host)
        answer = await control.command(f"USER {user}")
        if answer.code == 331:
            answer = await control.command(f"PASS {password}")
        if answer.code >= 300:
            return _refused("PASS", answer)
        if self.tls is not None:
            for command in ("PBSZ 0", "PROT P"):
                answer = await control.command(command)
                if answer.code >= 300:
                    raise TransportError(f"the server refused {command}: {answer.code}")
        answer = await control.command("TYPE I")
        return _refused("TYPE", answer) if answer.code >= 300 else None

    async def _transfer(self, control: _Control) -> tuple[TransportReply, bool]:
        """RETR, STOR or APPE on a passive data connection; True when the transfer was dropped."""
        answer = await control.command("PASV")
        if answer.code >= 300:
            return _refused("PASV", answer), False
        peer = str(control.writer.get_extra_info("peername")[0])
        reader, writer = await asyncio.open_connection(
            peer, pasv_port(answer), local_addr=(self.source_ip, 0)
        )
        try:
            answer = await control.command(f"{self.command} {self.path}")
            if answer.code >= 300:
                return _refused(self.command, answer), False
            if self.tls is not None:
                await writer.start_tls(self.tls, server_hostname=self.host)
            body = b""
            if self.command == "RETR":
                body = await _read_body(reader, self.limit)
                if self.limit is not None and len(body) >= self.limit and not reader.at_eof():
                    await _close(writer, abort=True)
                    return TransportReply(200, body[: self.limit]), True
            else:
                writer.write(self.data)
                await writer.drain()
            await _close(writer)
            body = body if self.limit is None else body[: self.limit]
            if answer.preliminary:
                answer = await control.final()
            if answer.code >= 300:
                return _refused(self.command, answer), False
            return TransportReply(200, body), False
        finally:
            await _close(writer, abort=True)


async def _read_body(reader: asyncio.StreamReader, limit: int | None) -> bytes:
    """The data connection's bytes up to its end, or up to `limit`; over MAX_BODY fails."""
    chunks: list[bytes] = []
    received = 0
    while limit is None or received < limit:
        chunk = await reader.read(_CHUNK)
        if not chunk:
            break
        chunks.append(chunk)
        received += len(chunk)
        if received > MAX_BODY:
            raise TransportError(f"the file is over {MAX_BODY} bytes")
    return b"".join(chunks)


async def _close(writer: asyncio.StreamWriter, *, abort: bool = False) -> None:
    """Close a connection (TLS: with close_notify); an abort, or a slow peer, drops it at once."""
    transport = writer.transport
    if abort:
        transport.abort()
    elif not transport.is_closing():
        writer.close()
    try:
        async with asyncio.timeout(_CLOSE_SECONDS):
            await writer.wait_closed()
    except (OSError, TimeoutError):
        transport.abort()
    except BaseException:
        transport.abort()
        raise


def _refused(command: str, reply: FtpReply) -> TransportReply:
    """A refusal, its text as the body (as an HTTP error page would be)."""
    return TransportReply(status_for(command, reply.code), f"{reply.code} {reply.text}".encode())


async def _udp_address(host: str, port: int) -> tuple[str, int]:
    """The server's IPv4 address; an address literal needs no resolver (and no thread)."""
    with contextlib.suppress(ValueError):
        return str(ipaddress.IPv4Address(host)), port
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM
    )
    if not infos:
        raise TransportError(f"{host} has no IPv4 address")
    address = infos[0][4]
    return str(address[0]), int(address[1])


class _TftpProtocol(asyncio.DatagramProtocol):
    """Feeds one ClientSession from its socket and its timer; `done` holds the outcome."""

    def __init__(self, session: ClientSession, loop: asyncio.AbstractEventLoop) -> None:
        self._session = session
        self._loop = loop
        self._transport: asyncio.DatagramTransport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.done: asyncio.Future[Reply | Failure] = loop.create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)
        self._step(lambda now: self._session.start(now))

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        sender = (str(addr[0]), int(addr[1]))
        self._step(lambda now: self._session.on_datagram(data, sender, now))

    def error_received(self, exc: Exception) -> None:
        """An ICMP error for a datagram sent: the session's timer retransmits or gives up."""

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        if not self.done.done():
            self.done.set_result(Failure(timed_out=False, reason="the socket was closed"))

    def _on_timer(self) -> None:
        self._timer = None
        self._step(lambda now: self._session.on_timer(now))

    def _step(self, step: Callable[[float], Output]) -> None:
        if self.done.done() or self._transport is None:
            return
        try:
            output: Output = step(self._loop.time())
        except Exception as exc:  # a name that cannot be requested, or a bug: end this request
            self._cancel_timer()
            self.done.set_exception(exc)
            return
        for datagram, address in output.send:
            self._transport.sendto(datagram, address)
        if output.outcome is not None:
            self._cancel_timer()
            self.done.set_result(output.outcome)
        elif output.deadline is not None and (
            self._timer is None or self._timer.when() > output.deadline
        ):
            # An earlier timer is kept: the session answers an early wake with its deadline.
            self._cancel_timer()
            self._timer = self._loop.call_at(output.deadline, self._on_timer)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
