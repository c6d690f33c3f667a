"""The relay's side of the provisioning conversation with the cloud.

Phones talk to the relay (HTTPS, HTTP, FTP, FTPS, TFTP); every request they make
is relayed to the cloud's provisioning service as the registered relay
(architecture.md, data flow 1). The relay proves who it is with
`X-Relay-Authorization: Relay <id>:<secret>`; the cloud then believes what the
relay says about the phone: its LAN address (`X-Forwarded-For`), the transport
it used (`X-Phone-Transport`), and, for TFTP, which carries no credentials,
that the phone needs none. The phone's own `Authorization` and `User-Agent`
are passed through unchanged, so the cloud checks the provisioning account and
identifies the phone exactly as if it had come directly.

Nothing is cached: configurations are per-phone and change at any time.

When the cloud cannot be reached the caller gets `UpstreamUnavailable` and
answers the phone with an error it retries on (HTTP 503, FTP 421, TFTP ERROR 0).
The outage is logged once, when it starts, and once more when it ends.
"""

from __future__ import annotations

import base64
import io
import logging
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from relay.logs import event
from relay.sync.messages import PHONE_TRANSPORTS, RELAY_HEADER, TRANSPORT_HEADER

log = logging.getLogger("relay.upstream")
# Response headers worth passing back to a phone; hop-by-hop ones are not.
PASSED_BACK = ("Content-Type", "ETag", "Last-Modified", "Accept-Ranges", "Content-Range")
# Request headers of the phone that the cloud needs to see.
PASSED_ON = ("Range", "If-None-Match", "If-Modified-Since", "Content-Type")


class UpstreamUnavailable(Exception):
    """The cloud did not answer; the phone gets an error it retries on."""


class UpstreamTooLarge(Exception):
    """The cloud's answer exceeds what the caller buffers (`fetch(limit=...)`)."""


@dataclass(frozen=True, slots=True)
class Phone:
    """What the relay knows about the phone making a request, as it tells the cloud."""

    address: str
    transport: str
    user_agent: str = ""
    authorization: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.transport not in PHONE_TRANSPORTS:
            known = sorted(PHONE_TRANSPORTS)
            raise ValueError(f"transport {self.transport!r} is not one of {known}")

    @classmethod
    def with_login(
        cls, address: str, transport: str, user: str, password: str, user_agent: str = ""
    ) -> Phone:
        """A phone that logged in with a user and password (FTP): sent on as HTTP basic."""
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return cls(address, transport, user_agent, f"Basic {token}")

    def headers(self) -> dict[str, str]:
        out = {"X-Forwarded-For": self.address, TRANSPORT_HEADER: self.transport}
        if self.user_agent:
            out["User-Agent"] = self.user_agent
        if self.authorization:
            out["Authorization"] = self.authorization
        return out


@dataclass(frozen=True, slots=True)
class Fetched:
    """A whole answer of the cloud, for transports that cannot stream (FTP, TFTP)."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class Upstream:
    """One keep-alive session to the cloud's provisioning service, shared by all phones."""

    def __init__(
        self,
        base: str,
        relay_id: str,
        secret: str,
        *,
        tls: ssl.SSLContext | None = None,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        connections: int = 512,
    ) -> None:
        self.base = URL(base if base.endswith("/") else base + "/")
        self._credential = f"Relay {relay_id}:{secret}"
        self._tls = tls
        # A short TCP connect timeout (`sock_connect`): a cloud that drops packets must
        # be found out before the phone's own retry. Not `connect`: in aiohttp that also
        # counts the wait for a free pooled connection, and a boot storm's queue there
        # is no outage.
        self._timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=connect_timeout, sock_read=timeout
        )
        self._connections = connections
        self._session: aiohttp.ClientSession | None = None
        self._down_since: str | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._connections, ssl=self._tls if self._tls is not None else True
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self._timeout,
                headers={RELAY_HEADER: self._credential},
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                skip_auto_headers=("User-Agent",),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def available(self) -> bool:
        """False from the first failed request until one succeeds again."""
        return self._down_since is None

    @asynccontextmanager
    async def open(
        self,
        method: str,
        path: str,
        phone: Phone,
        *,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """The cloud's response to one phone request, its body still to be read.

        `path` is the phone's request path (e.g. `/0004f2a1b2c3.cfg`), already
        checked by the caller against the provisioning names.
        """
        url = self.base.join(URL(path.lstrip("/"), encoded=True))
        sent = {**phone.headers(), **(headers or {})}
        # A file object, not bytes: aiohttp writes large bytes bodies in one blocking call.
        body = None if data is None else io.BytesIO(data)
        try:
            response = await self._http().request(
                method, url, headers=sent, data=body, allow_redirects=False
            )
        except aiohttp.ServerDisconnectedError as exc:
            # A kept-alive connection the cloud had closed: not an outage.
            raise UpstreamUnavailable(f"the cloud closed the connection: {exc!s}") from exc
        except (aiohttp.ClientConnectionError, TimeoutError, OSError) as exc:
            self._down(exc)
            raise UpstreamUnavailable(f"cannot reach the cloud at {self.base}: {exc!s}") from exc
        self._up()
        try:
            yield response
        finally:
            response.release()

    async def fetch(
        self,
        method: str,
        path: str,
        phone: Phone,
        *,
        limit: int,
        headers: Mapping[str, str] | None = None,
        data: bytes | None = None,
    ) -> Fetched:
        """The whole answer, at most `limit` body bytes (else UpstreamTooLarge)."""
        async with self.open(method, path, phone, headers=headers, data=data) as response:
            declared = response.content_length if method != "HEAD" else None
            if declared is not None and declared > limit:
                raise UpstreamTooLarge(f"{path}: {declared} bytes > {limit}")
            try:
                body = await response.content.read(limit + 1)
                while len(body) <= limit and not response.content.at_eof():
                    more = await response.content.read(limit + 1 - len(body))
                    if not more:
                        break
                    body += more
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise UpstreamUnavailable(f"the cloud dropped the answer: {exc!s}") from exc
            if len(body) > limit:
                raise UpstreamTooLarge(f"{path}: more than {limit} bytes")
            kept = {k: response.headers[k] for k in PASSED_BACK if k in response.headers}
            return Fetched(response.status, kept, body)

    def _up(self) -> None:
        if self._down_since is not None:
            event(log, "cloud_reachable_again", down_since=self._down_since, cloud=str(self.base))
            self._down_since = None

    def _down(self, exc: BaseException) -> None:
        if self._down_since is None:
            self._down_since = f"{exc!s}"[:200] or type(exc).__name__
            event(
                log,
                "cloud_unreachable",
                logging.ERROR,
                cloud=str(self.base),
                error=self._down_since,
                effect="phones are answered with a retryable error until it is back",
            )
