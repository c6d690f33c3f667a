"""The relay's phone-facing listeners, started and stopped together.

`relay up` builds one `FrontEnd` once its relay is registered: HTTPS (and
HTTP when enabled) through relay.frontend.provhttp, FTP/FTPS and TFTP, all
relaying to the cloud through one `Upstream`. `start()` returns the ready-line
facts (`relay_https`, `relay_http`, `relay_ftp`, `relay_tftp`) as URLs.

Each TFTP transfer holds file descriptors: at start the soft RLIMIT_NOFILE is
raised (within the hard limit) to two per transfer plus headroom, so a boot storm
is not refused for lack of them.
"""

from __future__ import annotations

import errno
import resource
import ssl
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from relay.frontend.firmware import PublishedImages
from relay.frontend.ftp import FtpFrontend
from relay.frontend.provhttp import HttpFrontend
from relay.frontend.tftp import TftpConfig, TftpServer
from relay.frontend.tftp_relay import TftpRelay
from relay.frontend.upstream import Upstream

# Phones boot together after a power cut: a deep accept queue (bench/RESULTS.md).
LISTEN_BACKLOG = 4096


class FrontEndError(RuntimeError):
    """A listener could not start; the message says what to do."""


@dataclass(frozen=True, slots=True)
class FrontEndPorts:
    """Where the listeners bind; 0 lets the kernel pick. `http` None: no plain HTTP."""

    bind: str
    https: int
    http: int | None
    ftp: int | None = None
    tftp: int | None = None


class FrontEnd:
    """The listeners; `start()` then `close()`."""

    def __init__(
        self,
        upstream: Upstream,
        images: PublishedImages,
        tls: ssl.SSLContext,
        ports: FrontEndPorts,
        routes: tuple[web.RouteDef, ...] = (),
        spool_dir: Path | None = None,
    ) -> None:
        self.upstream = upstream
        self.http = HttpFrontend(upstream, images)
        self.tftp_relay = TftpRelay(upstream, images, spool_dir=spool_dir)
        self._spool_dir = spool_dir
        self._tls = tls
        self._ports = ports
        self._routes = routes
        self._runners: list[web.AppRunner] = []
        self._tftp: TftpServer | None = None
        self._ftp: FtpFrontend | None = None
        self._images = images

    async def start(self) -> dict[str, str]:
        facts: dict[str, str] = {}
        host = self._ports.bind
        port = await self._listen(self._ports.https, self._tls, "relay HTTPS")
        facts["relay_https"] = f"https://{_url_host(host)}:{port}/"
        if self._ports.http is not None:
            port = await self._listen(self._ports.http, None, "relay HTTP")
            facts["relay_http"] = f"http://{_url_host(host)}:{port}/"
        if self._ports.ftp is not None:
            port = await self._start_ftp(self._ports.ftp)
            facts["relay_ftp"] = f"ftp://{_url_host(host)}:{port}/"
        if self._ports.tftp is not None:
            port = await self._start_tftp(self._ports.tftp)
            facts["relay_tftp"] = f"tftp://{_url_host(host)}:{port}/"
        return facts

    async def _start_ftp(self, port: int) -> int:
        """FTP, and explicit FTPS (AUTH TLS) on the same port with the HTTPS certificate."""
        ftp = FtpFrontend(self._ports.bind, port, self.upstream, self._images, tls=self._tls)
        try:
            await ftp.start()
        except OSError as exc:
            raise FrontEndError(
                f"relay FTP: cannot listen on {self._ports.bind}:{port}: {exc.strerror}; "
                "pass another --relay-ftp-port (port 21 needs CAP_NET_BIND_SERVICE)"
            ) from exc
        self._ftp = ftp
        return ftp.address[1]

    async def _start_tftp(self, port: int) -> int:
        if self._spool_dir is not None:
            # Relayed firmware passes through unnamed files here (relay.frontend.tftp_relay).
            self._spool_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        config = TftpConfig(host=self._ports.bind, port=port)
        _raise_file_limit(2 * config.max_sessions + 1024)
        self._tftp = TftpServer(self.tftp_relay.resolve, config)
        try:
            await self._tftp.start()
        except OSError as exc:
            self._tftp = None
            raise FrontEndError(
                f"relay TFTP: cannot listen on {self._ports.bind}:{port}: {exc.strerror}; "
                "pass another --relay-tftp-port (port 69 needs CAP_NET_BIND_SERVICE)"
            ) from exc
        return self._tftp.address[1]

    async def _listen(self, port: int, tls: ssl.SSLContext | None, what: str) -> int:
        # A phone cut off mid-upload is not waited for long at shutdown.
        runner = web.AppRunner(
            self.http.app(*self._routes),
            access_log=None,
            handle_signals=False,
            lingering_time=1.0,
        )
        await runner.setup()
        self._runners.append(runner)
        site = web.TCPSite(runner, self._ports.bind, port, ssl_context=tls, backlog=LISTEN_BACKLOG)
        try:
            await site.start()
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise FrontEndError(
                    f"{what}: port {port} on {self._ports.bind} is in use; "
                    "pass another port or --free-ports"
                ) from exc
            raise FrontEndError(
                f"{what}: cannot listen on {self._ports.bind}:{port}: {exc.strerror}; "
                "ports below 1024 need CAP_NET_BIND_SERVICE"
            ) from exc
        return int(runner.addresses[-1][1])

    async def close(self) -> None:
        if self._ftp is not None:
            await self._ftp.close()
            self._ftp = None
        if self._tftp is not None:
            await self._tftp.close()
            self._tftp = None
        await self.tftp_relay.aclose()
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await self.upstream.aclose()


def _raise_file_limit(wanted: int) -> None:
    """Raise the soft descriptor limit towards `wanted`, as far as the hard limit allows."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _url_host(host: str) -> str:
    """The host part of a URL for a bind address (the wildcard is not reachable)."""
    if host in ("0.0.0.0", ""):  # noqa: S104
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
