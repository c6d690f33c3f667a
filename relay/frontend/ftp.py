"""The relay's phone-facing FTP and FTPS server (pyftpdlib), relaying to the cloud.

FTP is the phones' factory default (phones.md section 2: `PlcmSpIp`/`PlcmSpIp`
unless the tenant chose another account). What a session may do is in
relay.frontend.ftp_session; names are screened by relay.frontend.ftp_rules;
the cloud is reached through relay.frontend.ftp_cloud; FTPS (AUTH TLS on the
same port, RFC 4217) is relay.frontend.ftp_tls over the relay's TLS policy.

Threads: pyftpdlib's ThreadedFTPServer. One acceptor thread polls the listening
socket; each control connection gets its own thread and IOLoop, which may block
on the cloud (the calls hop to the asyncio loop) without stalling other phones.
`max_connections` bounds the sessions and so the threads: one more is answered
`421` (logged once per burst) and phones retry. 2,000 phones at once are 2,000
threads, mostly asleep in epoll; each wakes once a second (pyftpdlib's poll
timeout) to notice a stop, and `close()` shuts their connections down to wake
them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from typing import Any

import pyftpdlib.ioloop
from pyftpdlib.servers import ThreadedFTPServer

from relay.frontend.firmware import PublishedImages
from relay.frontend.ftp_cloud import CloudBridge
from relay.frontend.ftp_session import Session, Settings
from relay.frontend.upstream import Upstream
from relay.logs import event

log = logging.getLogger("relay.ftp")

LISTEN_BACKLOG = 4096
DEFAULT_MAX_CONNECTIONS = 2000
# How often the acceptor thread looks up from epoll to notice close().
ACCEPT_POLL_SECONDS = 0.2


class _Server(ThreadedFTPServer):  # type: ignore[misc]
    """ThreadedFTPServer with its own stop event and lock (pyftpdlib shares them between
    every server of a process) and a register of live sessions, to wake them at stop."""

    def __init__(
        self,
        address: tuple[str, int],
        ioloop: Any,
        settings: Settings,
        max_connections: int,
    ) -> None:
        self._lock = threading.Lock()
        self._exit = threading.Event()
        self.settings = settings
        self.max_cons = max_connections
        self.busy = False
        self._sessions: set[Session] = set()
        self._sessions_lock = threading.Lock()
        super().__init__(address, Session, ioloop=ioloop, backlog=LISTEN_BACKLOG)

    def _accept_new_cons(self) -> bool:
        # pyftpdlib admits one session more than max_cons (it counts with <=).
        return bool(self._map_len() < self.max_cons)

    def track(self, session: Session) -> None:
        with self._sessions_lock:
            self._sessions.add(session)

    def untrack(self, session: Session) -> None:
        # Under the lock: hang_up never shuts down a descriptor already reused.
        with self._sessions_lock:
            self._sessions.discard(session)

    def close_all(self) -> None:
        super().close_all()
        # A session waiting to send a failed login's 530 is in no IOLoop (pyftpdlib takes
        # it out for auth_failed_timeout), so no loop closed it: close it here.
        with self._sessions_lock:
            left = list(self._sessions)
        for session in left:
            session.close()

    def hang_up(self) -> None:
        with self._sessions_lock:
            for session in self._sessions:
                session.hang_up()


class FtpFrontend:
    """The phone-facing FTP (and, with `tls`, explicit FTPS) listener.

    `start()` and `close()` run on the relay's event loop, the loop `upstream`
    belongs to. `tls`: None serves plain FTP only; a context adds AUTH TLS on
    the same port (RFC 4217), optional for the client. `passive_ports`: the
    PASV/EPSV ports (a range to open in a firewall), None for any free port.
    """

    def __init__(
        self,
        host: str,
        port: int,
        upstream: Upstream,
        images: PublishedImages,
        tls: ssl.SSLContext | None = None,
        passive_ports: range | None = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
    ) -> None:
        self._host = host
        self._port = port
        self._upstream = upstream
        self._images = images
        self._tls = tls
        self._passive_ports = passive_ports
        self._max_connections = max_connections
        self._bridge: CloudBridge | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._stopped: asyncio.Future[None] | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound (host, port) of the control listener."""
        if self._server is None:
            raise RuntimeError("the FTP server is not started")
        host, port = self._server.address
        return str(host), int(port)

    async def start(self) -> None:
        """Bind (port 0 picks a free one) and start accepting; OSError if the port is taken."""
        loop = asyncio.get_running_loop()
        self._bridge = CloudBridge(self._upstream, loop)
        settings = Settings(self._bridge, self._images, self._tls, self._passive_ports)
        ioloop = pyftpdlib.ioloop.IOLoop()
        try:
            self._server = _Server(
                (self._host, self._port), ioloop, settings, self._max_connections
            )
        except OSError:
            ioloop.close()
            raise
        self._stopping.clear()
        self._stopped = loop.create_future()
        self._thread = threading.Thread(
            target=self._serve,
            args=(self._server, loop, self._stopped),
            name=f"ftp-accept-{self.address[1]}",
            daemon=True,
        )
        self._thread.start()
        event(
            log,
            "ftp_listening",
            address=f"{self.address[0]}:{self.address[1]}",
            ftps=self._tls is not None,
            passive_ports=(
                f"{self._passive_ports.start}-{self._passive_ports.stop - 1}"
                if self._passive_ports
                else "any"
            ),
            max_connections=self._max_connections,
        )

    async def close(self) -> None:
        """Stop accepting, end every session (blocked cloud calls answer 4xx) and join."""
        if self._server is None or self._stopped is None or self._thread is None:
            return
        self._stopping.set()
        if self._bridge is not None:
            await self._bridge.close()
        await self._stopped
        self._thread.join()
        self._server = None
        self._thread = None
        self._stopped = None

    def _serve(
        self, server: _Server, loop: asyncio.AbstractEventLoop, stopped: asyncio.Future[None]
    ) -> None:
        """The acceptor thread: pyftpdlib's loop, polled so that close() is noticed."""
        try:
            while not self._stopping.is_set():
                server.ioloop.poll(ACCEPT_POLL_SECONDS)
                server.ioloop.sched.poll()
        finally:
            server.hang_up()
            server.close_all()
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_resolve, stopped)


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
