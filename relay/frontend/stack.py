"""The relay's phone-facing listeners, started and stopped together.

`relay up` builds one `FrontEnd` once its relay is registered: HTTPS (and
HTTP when enabled) through relay.frontend.provhttp, FTP/FTPS and TFTP, all
relaying to the cloud through one `Upstream`. `start()` returns the ready-line
facts (`relay_https`, `relay_http`, `relay_ftp`, `relay_tftp`) as URLs.
"""

from __future__ import annotations

import errno
import ssl
from dataclasses import dataclass

from aiohttp import web

from relay.frontend.firmware import ImageDirectory
from relay.frontend.provhttp import HttpFrontend
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


class FrontEnd:
    """The listeners; `start()` then `close()`."""

    def __init__(
        self,
        upstream: Upstream,
        images: ImageDirectory,
        tls: ssl.SSLContext,
        ports: FrontEndPorts,
        routes: tuple[web.RouteDef, ...] = (),
    ) -> None:
        self.upstream = upstream
        self.http = HttpFrontend(upstream, images)
        self._tls = tls
        self._ports = ports
        self._routes = routes
        self._runners: list[web.AppRunner] = []

    async def start(self) -> dict[str, str]:
        facts: dict[str, str] = {}
        host = self._ports.bind
        port = await self._listen(self._ports.https, self._tls, "relay HTTPS")
        facts["relay_https"] = f"https://{_url_host(host)}:{port}/"
        if self._ports.http is not None:
            port = await self._listen(self._ports.http, None, "relay HTTP")
            facts["relay_http"] = f"http://{_url_host(host)}:{port}/"
        return facts

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
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        await self.upstream.aclose()


def _url_host(host: str) -> str:
    """The host part of a URL for a bind address (the wildcard is not reachable)."""
    if host in ("0.0.0.0", ""):  # noqa: S104
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
