"""A file body over an asyncio TLS connection, encrypted and sent by worker threads.

Why: asyncio's TLS layer (asyncio.sslproto, CPython 3.11) encrypts every write on the
event-loop thread and copies the records twice more on their way to the socket, so a
one-process server sends images at well under nginx's speed (issue 6, "Measure": the
goal is >= 1.0x nginx with as many processes). `ssl.SSLObject.write` releases the GIL
while OpenSSL encrypts, so worker threads can do it on every core, each writing its
records straight to the socket in 256 KiB pieces rather than through the loop.

How, for one response body:
1. The connection's SSLProtocol lends its SSLObject and outgoing BIO: it holds stand-ins
   meanwhile (`_Lent` answers "would block" to everything, a fresh BIO is empty), so no
   callback on the loop (a close, a read) can touch the real ones while a worker does.
2. Its socket transport gets a stand-in protocol with reading paused (the way asyncio's
   own sendfile fallback, base_events._SendfileFallbackProtocol, borrows a transport)
   and a write buffer limit of 0, so the loop learns when the transport's buffer is empty.
3. Worker jobs, one at a time per connection and only while that buffer is empty, read
   the file, encrypt it and write the records straight to the socket (a duplicate of its
   descriptor, so a close on the loop cannot hand the number to another connection),
   until the socket is full or a job's share is done. The records that did not fit go
   through the socket transport, which sends them when the socket drains.
4. Afterwards the SSLProtocol gets everything back as it was, and the connection goes on
   (keep-alive) with the TLS state the records advanced; if anything went wrong, or the
   connection was closed meanwhile, it is aborted: a body cut short must not be followed
   by anything else.

The private attributes of asyncio.sslproto this needs (`_ssl_protocol`, `_sslobj`,
`_outgoing`, `_transport`, `_state`, `_write_backlog`, `_ssl_writing_paused`) are used
here and nowhere else. When one is missing or the connection is not idle (uvloop, another
layout, a shutdown in progress, ciphertext still queued), `send_sealed` sends nothing and
returns False, and the caller uses the plain path.
"""

from __future__ import annotations

import asyncio
import collections
import os
import ssl
import threading
from asyncio import sslproto
from dataclasses import dataclass
from typing import Any, NoReturn

# Bytes of the file read, encrypted and sent at a time (16 TLS records): the least CPU per
# byte in bench/bench_images.py runs (64 KiB costs ~15% more: more, smaller sends).
PIECE = 256 * 1024
# Most bytes of the file one worker job handles before handing the thread back.
SHARE = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Parts:
    """The pieces of one asyncio TLS connection that are lent to the workers."""

    protocol: Any  # asyncio.sslproto.SSLProtocol
    sslobj: ssl.SSLObject
    outgoing: ssl.MemoryBIO
    raw: asyncio.Transport
    fd: int


def _parts(transport: asyncio.BaseTransport) -> _Parts | None:
    """The connection's parts if it is a CPython 3.11 asyncio TLS transport that is idle:
    handshake done, not shutting down, every earlier byte already handed to the socket."""
    protocol = getattr(transport, "_ssl_protocol", None)
    if not isinstance(protocol, sslproto.SSLProtocol):
        return None
    sslobj = getattr(protocol, "_sslobj", None)
    outgoing = getattr(protocol, "_outgoing", None)
    raw = getattr(protocol, "_transport", None)
    backlog = getattr(protocol, "_write_backlog", None)
    if not (
        isinstance(sslobj, ssl.SSLObject)
        and isinstance(outgoing, ssl.MemoryBIO)
        and isinstance(raw, asyncio.Transport)
        and isinstance(backlog, collections.deque)
    ):
        return None
    sock = raw.get_extra_info("socket")
    idle = (
        getattr(protocol, "_state", None) is sslproto.SSLProtocolState.WRAPPED
        and not backlog
        and getattr(protocol, "_ssl_writing_paused", True) is False
        and outgoing.pending == 0
        and raw.get_protocol() is protocol
        and not raw.is_closing()
        and sock is not None
    )
    return _Parts(protocol, sslobj, outgoing, raw, sock.fileno()) if idle else None


class _Lent:
    """The SSLProtocol's SSLObject while the real one is lent: every call would block,
    which sslproto handles by waiting (asyncio.sslproto.SSLAgainErrors)."""

    def _would_block(self, *args: object) -> NoReturn:
        raise ssl.SSLWantReadError("the TLS connection is sending a file")

    read = write = unwrap = do_handshake = _would_block


class _Standin(asyncio.Protocol):
    """The socket transport's protocol while the body is sent: flow control and loss."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._ready: asyncio.Future[None] | None = None
        self.lost = False
        self.exc: BaseException | None = None

    def pause_writing(self) -> None:
        if self._ready is None:
            self._ready = self._loop.create_future()

    def resume_writing(self) -> None:
        self._wake()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = True
        self.exc = exc
        self._wake()

    def _wake(self) -> None:
        ready, self._ready = self._ready, None
        if ready is not None and not ready.done():
            ready.set_result(None)

    async def drained(self) -> None:
        """Return once the transport's buffer is empty; ConnectionError if it is lost."""
        while not self.lost and self._ready is not None:
            await self._ready
        if self.lost:
            raise ConnectionResetError("the client closed the connection during the body")


_threads = threading.local()


def _buffer() -> memoryview:
    """This thread's read buffer: memory grows with the worker threads, not with the
    connections (500 phones upgrading at once are 500 bodies in flight)."""
    buffer: memoryview | None = getattr(_threads, "buffer", None)
    if buffer is None:
        buffer = _threads.buffer = memoryview(bytearray(PIECE))
    return buffer


class _Worker:
    """Reads, encrypts and sends on worker threads, one job at a time, while it owns the
    lent SSLObject: from its creation until `close` returns."""

    def __init__(self, parts: _Parts, file: int) -> None:
        self._parts = parts
        self._file = file
        self._socket = os.dup(parts.fd)
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        """Wait for a running job (one share at most, never blocked on the socket) and
        make any later one a no-op: then nothing but the loop touches the SSLObject."""
        with self._lock:
            self._closed = True
            os.close(self._socket)

    def job(self, offset: int, count: int) -> tuple[int, bytes]:
        """From `offset`, up to `count` bytes until the socket is full: how many bytes of
        the file were encrypted, and the records the socket did not take."""
        with self._lock:
            done = 0
            while done < count and not self._closed:  # closed: the body was given up
                size = min(PIECE, count - done)
                rest = self._send(memoryview(self._seal(offset + done, size)))
                done += size
                if rest:
                    return done, rest
            return done, b""

    def _seal(self, offset: int, size: int) -> bytes:
        """Read `size` bytes at `offset` and encrypt them: the TLS records."""
        view = _buffer()[:size]
        got = os.preadv(self._file, [view], offset)
        if got != size:
            raise EOFError(f"the file ended at byte {offset + got} during the body")
        while view:
            view = view[self._parts.sslobj.write(view) :]
        return self._parts.outgoing.read()

    def _send(self, records: memoryview) -> bytes:
        """Write to the socket until it is full; what did not fit."""
        while records:
            try:
                records = records[os.write(self._socket, records) :]
            except BlockingIOError:
                return bytes(records)
        return b""


async def send_sealed(transport: asyncio.BaseTransport, fd: int, offset: int, count: int) -> bool:
    """Send `count` bytes of file `fd` from `offset` as TLS records on `transport`.

    False, with nothing sent, when `transport` is not an idle asyncio TLS transport.
    ConnectionError when the client goes away during the body. On any error the
    connection is aborted.
    """
    parts = _parts(transport)
    if parts is None:
        return False
    worker = _Worker(parts, fd)
    loop = asyncio.get_running_loop()
    standin = _Standin(loop)
    reading = parts.raw.is_reading()
    limits = parts.raw.get_write_buffer_limits()
    parts.raw.pause_reading()
    parts.raw.set_protocol(standin)
    parts.protocol._sslobj, parts.protocol._outgoing = _Lent(), ssl.MemoryBIO()
    completed = False
    try:
        parts.raw.set_write_buffer_limits(high=0, low=0)
        position, end = offset, offset + count
        while position < end:
            await standin.drained()
            share = min(SHARE, end - position)
            sent, rest = await loop.run_in_executor(None, worker.job, position, share)
            position += sent
            if rest and not standin.lost:
                parts.raw.write(rest)
        await standin.drained()
        completed = True
    finally:
        worker.close()
        _restore(parts, standin, reading, limits, completed)
    return True


def _restore(
    parts: _Parts, standin: _Standin, reading: bool, limits: tuple[int, int], completed: bool
) -> None:
    """Give the SSLProtocol back what it lent, and its transport or the loss it missed;
    abort the connection unless the body went out whole and nothing happened meanwhile."""
    protocol = parts.protocol
    protocol._sslobj, protocol._outgoing = parts.sslobj, parts.outgoing
    if standin.lost:
        protocol.connection_lost(standin.exc)
        return
    parts.raw.set_protocol(protocol)
    low, high = limits
    parts.raw.set_write_buffer_limits(high=high, low=low)
    intact = protocol._state is sslproto.SSLProtocolState.WRAPPED and not protocol._write_backlog
    if not (completed and intact):
        parts.raw.abort()
    elif reading:
        parts.raw.resume_reading()
