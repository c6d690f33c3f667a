"""The relay's phone-facing HTTPS and HTTP listener (phones.md section 2).

Every request is relayed to the cloud's provisioning service as the
registered relay (relay.frontend.upstream), streamed both ways and never
stored: the cloud builds each phone's files, checks its account and logs what
it did. Two things are answered here instead:

- firmware that the download agent has published on this relay
  (relay.frontend.firmware) is served from disk, with Range and ETag, once the
  phone's account is known good: the cloud confirms it with a HEAD of the
  default master file, and the answer is remembered for `AUTH_TTL` seconds,
  so a boot storm costs the cloud one small request per phone, not an image;
- a path outside the provisioning names (relay.proto.polycom.paths) is refused
  at once and audited, so it never reaches the cloud.

When the cloud cannot be reached the phone gets 503 with `Retry-After`, which
phones retry on; Upstream logs the outage once.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable

import aiohttp
from aiohttp import web

from relay.frontend.firmware import PublishedImages
from relay.frontend.upstream import PASSED_BACK, PASSED_ON, Phone, Upstream, UpstreamUnavailable
from relay.logs import event
from relay.proto.polycom.paths import PathRejected, classify
from relay.webfiles import stream_file

log = logging.getLogger("relay.provisioning")

# What a phone may upload in one request: the cloud applies its exact per-file limits.
MAX_UPLOAD = 16 * 1024 * 1024
AUTH_TTL = 300.0
RETRY_AFTER = "30"
STREAM_CHUNK = 256 * 1024
# Headers of the cloud's answer that the phone needs besides PASSED_BACK.
ANSWER_HEADERS = (*PASSED_BACK, "WWW-Authenticate", "Retry-After", "Allow")
_MAX_REMEMBERED = 10_000


class HttpFrontend:
    """One instance per appliance, shared by its HTTPS and HTTP listeners."""

    def __init__(
        self,
        upstream: Upstream,
        images: PublishedImages,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.upstream = upstream
        self.images = images
        self._clock = clock
        self._accounts: dict[str, float] = {}

    def app(self, *routes: web.RouteDef) -> web.Application:
        """The listener's application: `routes` (e.g. the ZTP lookup) first, then phones."""
        app = web.Application(client_max_size=MAX_UPLOAD)
        app.add_routes(routes)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        if request.method not in ("GET", "HEAD", "PUT"):
            return web.Response(status=405, headers={"Allow": "GET, HEAD, PUT"})
        try:
            classify(request.raw_path)
        except PathRejected as exc:
            event(
                log,
                "path_rejected",
                logging.WARNING,
                source=request.remote,
                path=request.raw_path[:200],
                reason=exc.message,
            )
            return web.Response(status=400, text="bad path\n")
        phone = Phone(
            request.remote or "0.0.0.0",  # noqa: S104 - only a unix socket has no peer
            "https" if request.secure else "http",
            request.headers.get("User-Agent", "")[:512],
            request.headers.get("Authorization"),
        )
        try:
            published = request.method != "PUT" and self.images.find(request.path) is not None
            if published and await self._account_ok(phone):
                local = await self._local(request)
                if local is not None:
                    return local
            return await self._relay(request, phone)
        except UpstreamUnavailable:
            return web.Response(
                status=503,
                text="the provisioning service is unreachable; retry later\n",
                headers={"Retry-After": RETRY_AFTER},
            )

    async def _local(self, request: web.Request) -> web.StreamResponse | None:
        """Serve the published image under a shared lock (None: it went away meanwhile)."""
        opened = self.images.open(request.path)
        if opened is None:
            return None
        fd, image = opened
        with os.fdopen(fd, "rb") as fh:
            return await stream_file(request, fh, image.sha256)

    async def _account_ok(self, phone: Phone) -> bool:
        """Has the cloud accepted this phone's Authorization recently? (asks it if not)."""
        if phone.authorization is None:
            return False
        key = hashlib.sha256(phone.authorization.encode()).hexdigest()
        now = self._clock()
        if self._accounts.get(key, 0.0) > now:
            return True
        answer = await self.upstream.fetch("HEAD", "/000000000000.cfg", phone, limit=0)
        if answer.status != 200:
            return False
        if len(self._accounts) >= _MAX_REMEMBERED:
            self._accounts = {k: v for k, v in self._accounts.items() if v > now}
            if len(self._accounts) >= _MAX_REMEMBERED:
                self._accounts.clear()
        self._accounts[key] = now + AUTH_TTL
        return True

    async def _relay(self, request: web.Request, phone: Phone) -> web.StreamResponse:
        """Forward the request and stream the cloud's answer back as it arrives."""
        body: bytes | None = None
        if request.method == "PUT":
            if request.content_length is not None and request.content_length > MAX_UPLOAD:
                return web.Response(status=413, text=f"limit is {MAX_UPLOAD} bytes\n")
            try:
                body = await request.content.read(MAX_UPLOAD + 1)
                while not request.content.at_eof() and len(body) <= MAX_UPLOAD:
                    body += await request.content.read(MAX_UPLOAD + 1 - len(body))
            except ConnectionResetError:
                event(log, "upload_dropped", source=phone.address, path=request.path[:200])
                return web.Response(status=400)
            if len(body) > MAX_UPLOAD:
                return web.Response(status=413, text=f"limit is {MAX_UPLOAD} bytes\n")
        sent = {name: request.headers[name] for name in PASSED_ON if name in request.headers}
        async with self.upstream.open(
            request.method, request.raw_path, phone, headers=sent, data=body
        ) as answer:
            headers = {k: answer.headers[k] for k in ANSWER_HEADERS if k in answer.headers}
            response = web.StreamResponse(status=answer.status, headers=headers)
            if answer.content_length is not None:
                response.content_length = answer.content_length
            try:
                await response.prepare(request)
                if request.method == "HEAD" or await _copy(answer, response, request):
                    await response.write_eof()
            except ConnectionResetError:
                # The phone gave up waiting and closed its connection: nobody to answer.
                event(log, "phone_left", logging.DEBUG, source=phone.address, path=request.path)
            return response


async def _copy(
    answer: aiohttp.ClientResponse, response: web.StreamResponse, request: web.Request
) -> bool:
    """The cloud's body to the phone as it arrives; False if the cloud broke it off."""
    try:
        async for chunk in answer.content.iter_chunked(STREAM_CHUNK):
            await response.write(chunk)
    except (aiohttp.ClientPayloadError, aiohttp.ServerDisconnectedError, TimeoutError) as exc:
        # The status line is gone already: cut the connection, so the phone sees a
        # short body (never a complete-looking wrong one) and retries.
        event(log, "relay_dropped", logging.WARNING, path=request.path, error=str(exc))
        if request.transport is not None:
            request.transport.close()
        return False
    return True
