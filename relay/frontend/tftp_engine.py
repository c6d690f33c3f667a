"""The TFTP data path: every transfer's socket and timers on one thread running a blocking loop.

relay.frontend.tftp takes requests on the asyncio loop (the listening socket,
screening, resolving a name, which may await the cloud) and hands each transfer
ready to run, its ReadSession, DataSource and socket, to this engine. The
engine's thread runs a tight loop: `select.epoll` over every transfer socket
and an eventfd that wakes it for hand-offs (epoll: no select() limit, 2,000
transfers at once and more), timers from a heap, and the pure ReadSession of
relay.proto.tftp.session, called exactly as the asyncio adapter called it.

Why a thread (architecture.md: blocking work runs in its own thread behind a
small adapter and hands results back with `call_soon_threadsafe`): in
lock-step (RFC 1350, no windowsize) each block waits for the answer to the
previous ACK, so the CPU spent per packet is on the critical path, and
asyncio's own dispatch per readiness event (`_run_once`, the selector,
`Handle._run`) cost as much as our handling of the ACK: a bare blocking
Python loop reaches x0.95-1.09 of tftpd-hpa, the same bare loop in asyncio
callbacks x0.57-0.75 (bench/bench_tftp.py floors, 50 MB at blksize 1468,
bench/RESULTS.md). Measured side by side with the asyncio adapter this engine
replaced (same machine, same minutes, interleaved): lock-step x0.62 against
x0.49 of tftpd-hpa, and 1.13 s against 1.62 s of server CPU per 50 MB; windows
of 32, now also read with one pread each, went from x0.95-1.03 to x1.20-1.61 of
atftpd. Lock-step stays below tftpd-hpa (x0.45-0.57 in full runs on the shared
2-core machine): the session's Python costs about 15 us of user CPU per block
where the bare loop spends 5. The GIL is no obstacle: the loop's thread sleeps
in its selector while transfers run.

Rules of the thread: it never touches an asyncio object; the end of a transfer
is reported to the loop with `loop.call_soon_threadsafe` only. Everything it
owns (transfer sockets, timers, the GSO switch) is touched by it alone; the
loop thread only appends to the hand-off queue (under a lock, against a
concurrent stop) and writes the eventfd. `close()` stops every transfer (ERROR
0 to its client), closes every socket, closes each source once, and joins the
thread. A step of a session that raises ends that transfer only, as on the
loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import heapq
import itertools
import logging
import math
import os
import select
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from relay.logs import event
from relay.proto.tftp.gso import DATA_HEADER, MAX_BYTES, batches, split
from relay.proto.tftp.packet import NOT_DEFINED, UNKNOWN_TID, build_error
from relay.proto.tftp.session import DataSource, Output, ReadSession

log = logging.getLogger("relay.tftp")

Address = tuple[str, int]

# Every packet a client may send is far smaller (a request is at most 512 bytes,
# RFC 2347; an ACK is 4): a longer datagram is cut here and refused as malformed.
RECEIVE_SIZE = 2048
# UDP generic segmentation offload (Linux 4.18, include/uapi/linux/udp.h): one send
# carries a window of equal-size datagrams, split by the kernel or the NIC, so a
# window of 32 blocks costs one system call instead of 32 (relay.proto.tftp.gso).
_UDP_SEGMENT = 103
# Readiness events taken per epoll_wait; more wait for the next turn of the loop.
_MAX_EVENTS = 512
_READ = select.EPOLLIN
_READ_WRITE = select.EPOLLIN | select.EPOLLOUT
_monotonic = time.monotonic


@dataclass(frozen=True, slots=True)
class Handoff:
    """A transfer ready to run: its session and source, its bound non-blocking socket, its client.

    The engine owns all of it once `Engine.submit` accepted it.
    """

    session: ReadSession
    source: DataSource
    name: str
    client: Address
    sock: socket.socket


class Engine:
    """The thread that runs every transfer; started when built, `await close()` to stop it.

    `finished(client)` is called on `loop` (through call_soon_threadsafe) when
    the transfer of `client` is over and its source closed, before its last
    datagram is sent (see `_Transfer._finish`).
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, finished: Callable[[Address], None], *, gso: bool
    ) -> None:
        self._loop = loop
        self._finished = finished
        self.gso = gso
        self._inbox: deque[Handoff] = deque()
        self._lock = threading.Lock()
        self._stopping = False
        self._closed = False
        self._transfers: dict[int, _Transfer] = {}
        self._timers: list[tuple[float, int, _Transfer]] = []
        self._order = itertools.count()
        self._stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._epoll = select.epoll()
        try:
            self._wake = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            try:
                self._epoll.register(self._wake, _READ)
                self._thread = threading.Thread(target=self._run, name="tftp-engine", daemon=True)
                self._thread.start()
            except BaseException:
                os.close(self._wake)
                raise
        except BaseException:
            self._epoll.close()
            raise

    def submit(self, handoff: Handoff) -> None:
        """Run a transfer (from the loop's thread); RuntimeError once the engine is stopping."""
        with self._lock:
            if self._stopping:
                raise RuntimeError("the TFTP engine is stopped")
            self._inbox.append(handoff)
        os.eventfd_write(self._wake, 1)

    async def close(self) -> None:
        """End every transfer (ERROR 0 to its client), close every socket, join the thread."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            self._stopping = True
        os.eventfd_write(self._wake, 1)
        await asyncio.wrap_future(self._stopped)
        self._thread.join()
        self._epoll.close()
        os.close(self._wake)

    # -- the engine's thread -------------------------------------------------------------------

    def _run(self) -> None:
        reason = "the server is shutting down"
        try:
            self._serve()
        except Exception as exc:  # a fault of the engine itself: end what it holds, say so
            event(log, "tftp_engine_crashed", logging.CRITICAL, error=repr(exc))
            reason = "internal error"
        finally:
            try:
                self._shutdown(reason)
            finally:
                self._stopped.set_result(None)

    def _serve(self) -> None:
        """The loop: wait for datagrams or the next deadline, handle them, fire due timers.

        The clock is read once per turn: every datagram of a turn is handled as
        arriving when epoll returned, and the next wait is computed from that
        time (a few milliseconds late at worst, under load; TFTP timers are
        seconds).
        """
        poll = self._epoll.poll
        transfers = self._transfers
        timers = self._timers
        wake = self._wake
        now = _monotonic()
        while not self._stopping:
            events = poll(max(0.0, timers[0][0] - now) if timers else -1.0, _MAX_EVENTS)
            now = _monotonic()
            for fd, mask in events:
                transfer = transfers.get(fd)
                if transfer is None:
                    if fd == wake:
                        self._take(now)
                elif mask == _READ:
                    transfer.on_readable(now)
                else:
                    if mask & select.EPOLLOUT:
                        transfer.on_writable()
                    if mask & ~select.EPOLLOUT:
                        transfer.on_readable(now)
            if timers and timers[0][0] <= now:
                self._expire(now)

    def _take(self, now: float) -> None:
        """Start the transfers handed over since the last wake-up."""
        with contextlib.suppress(BlockingIOError):
            os.eventfd_read(self._wake)
        while self._inbox:
            _Transfer(self, self._inbox.popleft(), now).begin(now)

    def _expire(self, now: float) -> None:
        """Wake the transfers whose deadline passed; entries superseded by another are skipped."""
        timers = self._timers
        while timers and timers[0][0] <= now:
            deadline, _, transfer = heapq.heappop(timers)
            if transfer.wake == deadline:
                transfer.wake = math.inf
                transfer.on_timer(now)

    def _shutdown(self, reason: str) -> None:
        with self._lock:
            self._stopping = True
            waiting = list(self._inbox)
            self._inbox.clear()
        for handoff in waiting:
            _Transfer(self, handoff, _monotonic()).stop(reason)
        for transfer in list(self._transfers.values()):
            transfer.stop(reason)
        self._timers.clear()

    def schedule(self, deadline: float, transfer: _Transfer) -> None:
        heapq.heappush(self._timers, (deadline, next(self._order), transfer))

    def attach(self, transfer: _Transfer, fd: int) -> None:
        self._epoll.register(fd, _READ)
        self._transfers[fd] = transfer

    def want_writable(self, fd: int, wanted: bool) -> None:
        self._epoll.modify(fd, _READ_WRITE if wanted else _READ)

    def detach(self, fd: int) -> None:
        if self._transfers.pop(fd, None) is not None:
            self._epoll.unregister(fd)

    def report(self, client: Address) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self._loop.call_soon_threadsafe(self._finished, client)

    def segmentation(self, sock: socket.socket, blksize: int) -> int:
        """The GSO segment size set on a windowed transfer's socket, or 0 to send one by one."""
        segment = blksize + DATA_HEADER
        if not self.gso or MAX_BYTES // segment < 2:
            return 0
        try:
            sock.setsockopt(socket.SOL_UDP, _UDP_SEGMENT, segment)
        except OSError as exc:
            return self.segmentation_failed(exc)
        return segment

    def segmentation_failed(self, exc: OSError) -> int:
        if self.gso:
            self.gso = False
            event(log, "tftp_gso_off", logging.WARNING, error=repr(exc))
        return 0


class _Transfer:
    """One ReadSession on its own socket, run by the engine's thread; every step is contained.

    The ACK path (`on_readable`) calls the session and sends without
    indirection: in lock-step it runs once per block (bench/RESULTS.md). `wake`
    is the deadline of its timer in the engine's heap (inf: none).

    A window of several blocks is prepared ahead (ReadSession.prepare) right
    after the previous one is sent: the client's handling of a whole window
    leaves the time. A lock-step block is built on its ACK instead: prepared
    after the send, it measured slower on the loaded 2-core machine (median of
    tftpd-hpa's throughput in three interleaved rounds: x0.51, 0.56, 0.46
    with, x0.66, 0.50, 0.62 without): the work after a send competes with the
    client the send just woke, and the next ACK waits for it.
    """

    __slots__ = (
        "_ahead",
        "_backlog",
        "_engine",
        "_fd",
        "_name",
        "_segment",
        "_session",
        "_sock",
        "_source",
        "_started",
        "client",
        "over",
        "wake",
    )

    def __init__(self, engine: Engine, handoff: Handoff, now: float) -> None:
        self._engine = engine
        self._session = handoff.session
        self._source = handoff.source
        self._name = handoff.name
        self.client = handoff.client
        self._sock = handoff.sock
        self._fd = -1
        self._ahead = handoff.session.windowsize > 1
        self._backlog: deque[bytes] = deque()
        self._segment = 0
        self._started = now
        self.over = False
        self.wake = math.inf

    def begin(self, now: float) -> None:
        try:
            self._fd = self._sock.fileno()
            self._engine.attach(self, self._fd)
            if self._session.windowsize > 1:
                self._segment = self._engine.segmentation(self._sock, self._session.blksize)
            self._apply(self._session.start(now))
            if self._ahead and not self.over:
                self._session.prepare()
        except Exception as exc:
            self._crashed(exc)

    def stop(self, reason: str) -> None:
        """End the transfer from the server's side, telling the client."""
        if not self.over:
            self._finish(Output((build_error(NOT_DEFINED, reason),), None, "failed", reason))

    def on_readable(self, now: float) -> None:
        try:
            data, addr = self._sock.recvfrom(RECEIVE_SIZE)
        except OSError:  # nothing to read after all, or an ICMP error reported
            return
        if self.over:
            return
        client = self.client
        # An IPv4 address compares whole; an IPv6 one has flow info and scope id besides.
        if addr != client and (addr[0] != client[0] or addr[1] != client[1]):
            # RFC 1350 section 4: another TID gets ERROR 5; the transfer goes on.
            stranger = (str(addr[0]), int(addr[1]))
            send_quietly(self._sock, build_error(UNKNOWN_TID, "unknown transfer ID"), stranger)
            return
        session = self._session
        try:
            self._apply(session.on_datagram(data, now))
            if self._ahead and not self.over:
                session.prepare()  # sent first, then the next window, off the ACK's path
        except Exception as exc:
            self._crashed(exc)

    def on_timer(self, now: float) -> None:
        try:
            self._apply(self._session.on_timer(now))
        except Exception as exc:
            self._crashed(exc)

    def _crashed(self, exc: Exception) -> None:
        """A step of the session (or its source) raised: end this transfer only."""
        event(
            log,
            "tftp_transfer_crashed",
            logging.ERROR,
            client=text(self.client),
            file=self._name,
            error=repr(exc),
        )
        self.stop("internal error")

    def _apply(self, output: Output) -> None:
        deadline = output.deadline
        if deadline is None or output.status != "running":
            self._finish(output)
            return
        send = output.send
        if len(send) == 1 and not self._backlog:
            try:
                self._sock.sendto(send[0], self.client)
            except OSError as exc:
                self._send_failed(send[0], exc)
        elif send:
            for datagram in batches(send, self._segment) if self._segment else send:
                self._send(datagram)
        # An earlier timer is kept: the session answers an early wake with its deadline.
        if deadline < self.wake:
            self.wake = deadline
            self._engine.schedule(deadline, self)

    def _send(self, datagram: bytes) -> None:
        if self._backlog:
            self._backlog.append(datagram)
            return
        try:
            self._sock.sendto(datagram, self.client)
        except OSError as exc:
            self._send_failed(datagram, exc)

    def _send_failed(self, datagram: bytes, exc: OSError) -> None:
        """A send was refused: wait for room, send one by one, or count it lost."""
        if isinstance(exc, BlockingIOError | InterruptedError):
            self._backlog.append(datagram)
            self._engine.want_writable(self._fd, True)
        elif len(datagram) > self._segment > 0:
            # The path cannot segment (no checksum offload): send one by one from now on.
            self._segment = self._engine.segmentation_failed(exc)
            for single in split(datagram, self._session.blksize + DATA_HEADER):
                self._send(single)
        else:
            # Lost like a datagram on the wire: the session's timer sends it again.
            event(log, "tftp_send_failed", logging.DEBUG, client=text(self.client), error=repr(exc))

    def on_writable(self) -> None:
        """The socket takes datagrams again: send what waited, in order."""
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
                    client=text(self.client),
                    error=repr(exc),
                )
            self._backlog.popleft()
        if not self.over:
            self._engine.want_writable(self._fd, False)

    def _finish(self, output: Output) -> None:
        """Log the end, close the source, tell the loop, send the last word (an ERROR), close.

        The loop hears of the end before the client can: a client that
        answers an ERROR with a new request from the same address is served,
        not taken for a repeat of the request just ended.
        """
        self.over = True
        self.wake = math.inf
        progress = self._session.progress
        fields: dict[str, Any] = {
            "client": text(self.client),
            "file": self._name,
            "blocks": progress.blocks,
            "bytes": progress.bytes,
            "retransmissions": progress.retransmissions,
            "seconds": round(_monotonic() - self._started, 3),
        }
        if output.status == "done":
            event(log, "tftp_sent", **fields)
        else:
            event(log, "tftp_failed", reason=output.reason, **fields)
        self._engine.detach(self._fd)
        release(self._source)
        self._engine.report(self.client)
        for datagram in output.send:
            send_quietly(self._sock, datagram, self.client)
        self._backlog.clear()
        self._sock.close()


def send_quietly(sock: socket.socket, datagram: bytes, address: Address) -> None:
    """A best-effort datagram (an ERROR): if the send buffer is full it is lost, as on a wire."""
    try:
        sock.sendto(datagram, address)
    except OSError as exc:
        event(log, "tftp_send_failed", logging.DEBUG, client=text(address), error=repr(exc))


def release(source: DataSource) -> None:
    """Close a source that can be closed; a failure to close is logged, never raised."""
    close = getattr(source, "close", None)
    if callable(close):
        try:
            close()
        except Exception as exc:
            event(log, "tftp_source_close_failed", logging.ERROR, error=repr(exc))


def text(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
