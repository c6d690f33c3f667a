"""The phone-facing provisioning service: what phones GET, HEAD and PUT
(phones.md section 2), over HTTPS (and HTTP when enabled).

Every request needs the tenant's provisioning account (HTTP basic). There is
no default account: until one is set, every request is refused with 403 and a
log line saying how to set it. Failed logins are audited and throttled per
source address. Paths are classified by relay.proto.polycom.paths, which
refuses anything outside the served names.

A registered relay in front of the phones (relay.frontend.upstream) proves
itself with `X-Relay-Authorization: Relay <id>:<secret>`; then, and only then
(or from a configured `trusted_proxies` address), `X-Forwarded-For` names the
phone, and the phone's address, not the relay's, is what is throttled and
audited. A relayed TFTP read carries no account (TFTP has none): the relay's
credential stands for it, and TFTP is read-only.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Callable, Collection
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from aiohttp import web

from relay.cloud.controlplane import CloudWorker
from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.files import MAX_LOG_PUT_BYTES, MAX_OVERRIDE_BYTES
from relay.cloud.rules.throttle import LoginThrottle
from relay.logs import event
from relay.proto.polycom.paths import LOG_SUFFIXES, PathRejected, ProvPath, classify
from relay.proto.polycom.useragent import UserAgent, UserAgentError, parse_user_agent
from relay.sync.messages import RELAY_HEADER, TRANSPORT_HEADER
from relay.webfiles import send_file

log = logging.getLogger("cloud.provisioning")

XML = "application/xml"
UPLOAD_CHUNK = 1024 * 1024
SET_ACCOUNT_HINT = (
    "no provisioning account is set: set one with PATCH /api/v1/tenant "
    '{"provisioning_account": {"user": ..., "password": ...}}'
)


RELAYED = web.RequestKey("relayed", bool)


class PhoneService:
    """State shared by the requests of one listener: the throttle and trusted peers."""

    def __init__(
        self,
        worker: CloudWorker,
        trusted_proxies: Collection[str] = (),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.worker = worker
        self.prov = worker.plane.provisioning
        self.files = worker.plane.files
        self.throttle = LoginThrottle()
        self.trusted_proxies = frozenset(trusted_proxies)
        self.clock = clock

    async def _audit(self, request: web.Request, op: str, reason: str, **detail: Any) -> None:
        source = self._phone_address(request)
        if request.get(RELAYED):
            detail["relay_address"] = request.remote
        event(
            log,
            op,
            logging.WARNING,
            source=source,
            path=request.path[:200],
            reason=reason,
            **detail,
        )
        await self.worker.call(
            self.worker.plane.ctx.log,
            "phone",
            op,
            request.path[:200],
            source=source,
            reason=reason,
            **detail,
        )

    def _credentials(self, request: web.Request) -> tuple[str, str] | None:
        scheme, _, value = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic" or len(value) > 1024:
            return None
        try:
            user, sep, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return (user, password) if sep else None

    def _addresses(self, request: web.Request) -> tuple[str | None, str | None]:
        """(public, private) address of the phone. A trusted relay in front of us says
        in X-Forwarded-For which LAN address the phone had; nobody else is believed."""
        source = request.remote
        forwarded = request.headers.get("X-Forwarded-For", "")
        trusted = request.get(RELAYED, False) or source in self.trusted_proxies
        if trusted and forwarded:
            candidate = forwarded.split(",")[0].strip()
            try:
                return source, str(IPv4Address(candidate))
            except ValueError:
                return source, None
        return source, None

    def _phone_address(self, request: web.Request) -> str:
        """Whom to throttle and audit: the phone behind a trusted relay, else the peer."""
        _public, private = self._addresses(request)
        return private or request.remote or "-"

    async def _relay(self, request: web.Request) -> web.Response | None:
        """Check a relay's credential, if it sent one; a wrong one is refused and audited."""
        header = request.headers.get(RELAY_HEADER)
        if header is None:
            return None
        scheme, _, credential = header.partition(" ")
        relay_id, _, secret = credential.strip().partition(":")
        plane = self.worker.plane
        if (
            scheme.lower() == "relay"
            and relay_id
            and secret
            and await self.worker.call(plane.relays.authenticate, relay_id, secret)
        ):
            request[RELAYED] = True
            return None
        await self._audit(request, "auth_failed", "unknown relay or wrong relay secret")
        return web.Response(status=401, text="unknown relay; register it again\n")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        refused = await self._relay(request)
        if refused is not None:
            return refused
        source = self._phone_address(request)
        wait = self.throttle.retry_after(source, self.clock())
        if wait > 0:
            return web.Response(
                status=429,
                text="too many failed logins; retry later\n",
                headers={"Retry-After": str(int(wait) + 1)},
            )
        if request.method not in ("GET", "HEAD", "PUT"):
            return web.Response(status=405, headers={"Allow": "GET, HEAD, PUT"})
        if not await self.worker.call(self.prov.account_configured):
            event(
                log, "provisioning_refused", logging.WARNING, source=source, reason=SET_ACCOUNT_HINT
            )
            return web.Response(status=403, text=SET_ACCOUNT_HINT + "\n")
        try:
            path = classify(request.raw_path)
        except PathRejected as exc:
            await self._audit(request, "path_rejected", exc.message)
            return web.Response(status=400, text="bad path\n")
        if self._relayed_tftp(request):
            if request.method == "PUT":
                await self._audit(request, "write_refused", "TFTP is read-only")
                return web.Response(status=403, text="not writable\n")
            return await self._get(request, path)
        credentials = self._credentials(request)
        if credentials is None or not await self.worker.call(self.prov.check_account, *credentials):
            delay = self.throttle.failure(source, self.clock())
            await self._audit(
                request, "auth_failed", "wrong or missing provisioning account", throttled_for=delay
            )
            if path.mac is not None:
                await self.worker.call(
                    self.prov.record, path.mac, False, "wrong provisioning credentials"
                )
            return web.Response(
                status=401,
                text="provisioning account required\n",
                headers={"WWW-Authenticate": 'Basic realm="provisioning"'},
            )
        self.throttle.success(source)
        if request.method == "PUT":
            return await self._put(request, path)
        return await self._get(request, path)

    def _relayed_tftp(self, request: web.Request) -> bool:
        """TFTP phones send no account; a registered relay vouches for their reads."""
        return bool(request.get(RELAYED)) and request.headers.get(TRANSPORT_HEADER) == "tftp"

    def _agent(self, request: web.Request) -> tuple[UserAgent | None, str]:
        text = request.headers.get("User-Agent", "")
        try:
            return parse_user_agent(text), text
        except UserAgentError:
            return None, text[:512]

    async def _get(self, request: web.Request, path: ProvPath) -> web.StreamResponse:
        kind = path.kind
        if kind == "default_master":
            return _bytes(request, await self.worker.call(self.prov.master_file, None))
        if kind in ("master", "generated"):
            assert path.mac is not None
            return await self._generated(request, path.mac, kind)
        if kind == "upload" and path.name.endswith(LOG_SUFFIXES):
            return await self._log_head(request, path)
        if kind == "image":
            assert path.image_id is not None
            found = await self.worker.call(self.prov.image, path.image_id)
            if found is None:
                return _missing(path)
            blob, image = found
            return await send_file(request, blob, etag=image["sha256"])
        file = await self.worker.call(self._lookup, path)
        if file is None:
            return _missing(path)
        return await send_file(request, file)

    async def _generated(self, request: web.Request, mac: str, kind: str) -> web.StreamResponse:
        agent, text = self._agent(request)
        public_ip, private_ip = self._addresses(request)
        try:
            data = await self.worker.call(
                self.prov.generated, kind, mac, agent, text, public_ip, private_ip
            )
        except Exception as exc:
            event(log, "provisioning_failed", logging.ERROR, mac=mac, file=kind, error=str(exc))
            return web.Response(status=500, text="the service could not build this file\n")
        if data is None:
            event(
                log,
                "unknown_device",
                logging.WARNING,
                mac=mac,
                source=self._phone_address(request),
                reason="auto-add is off; add the device first",
            )
            return web.Response(status=404)
        if kind == "generated":
            event(
                log,
                "provisioned",
                mac=mac,
                source=self._phone_address(request),
                model=agent.model if agent else None,
                firmware=agent.firmware if agent else None,
                stage=agent.stage if agent else None,
            )
        return _bytes(request, data)

    def _lookup(self, path: ProvPath) -> Path | None:
        """A device file, a stored phone upload, or a resource file (worker thread)."""
        if path.kind in ("device_file", "global_file", "upload"):
            found = self.files.device_file(path.name)
            if found is not None:
                # Served where the master file says it is: in its directory, or the root.
                return found[1] if found[0]["directory"] == path.directory else None
            if path.kind == "upload" and path.mac is not None:
                if path.name.endswith(LOG_SUFFIXES):
                    return None
                return self.files.upload_path(path.mac, path.name)
            return None
        if path.kind == "resource":
            try:
                return self.files.resource_path(path.name)
            except RuleError:
                return None
        return None

    async def _put(self, request: web.Request, path: ProvPath) -> web.StreamResponse:
        """Phones write only their logs and override files (phones.md section 2)."""
        if path.kind != "upload" or path.mac is None:
            await self._audit(request, "write_refused", "not a file phones may write")
            return web.Response(status=403, text="not writable\n")
        is_log = path.name.endswith(LOG_SUFFIXES)
        limit = MAX_LOG_PUT_BYTES if is_log else MAX_OVERRIDE_BYTES
        if request.content_length is not None and request.content_length > limit:
            return web.Response(status=413, text=f"limit is {limit} bytes\n")
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in request.content.iter_chunked(UPLOAD_CHUNK):
                size += len(chunk)
                if size > limit:
                    return web.Response(status=413, text=f"limit is {limit} bytes\n")
                chunks.append(chunk)
        except ConnectionResetError:
            # A phone that reboots mid-upload: nothing is stored, it uploads again later.
            event(log, "upload_dropped", mac=path.mac, file=path.name, received=size)
            return web.Response(status=400)
        data = b"".join(chunks)
        agent, text = self._agent(request)
        public_ip, private_ip = self._addresses(request)
        if not await self.worker.call(
            self.prov.identify, path.mac, agent, text, public_ip, private_ip
        ):
            return web.Response(status=404)
        try:
            if is_log:
                await self.worker.call(self.files.append_log, path.mac, path.name, data)
            else:
                await self.worker.call(self.files.put_upload, path.mac, path.name, data)
        except RuleError as exc:
            return web.Response(status=exc.status, text=exc.message + "\n")
        return web.Response(status=204)

    async def _log_head(self, request: web.Request, path: ProvPath) -> web.StreamResponse:
        """Phones HEAD their log before appending to it: answer with today's size.
        Logs are read back through the REST API, not by phones."""
        assert path.mac is not None
        if request.method != "HEAD":
            return web.Response(status=404)
        size = await self.worker.call(self.files.log_size, path.mac, path.name)
        if size is None:
            return web.Response(status=404)
        return web.Response(status=200, headers={"Content-Length": str(size)})


def _missing(path: ProvPath) -> web.Response:
    """404 for optional files is normal (phones.md): logged at debug level only."""
    log.debug("not found", extra={"fields": {"path": path.name}})
    return web.Response(status=404)


def _bytes(request: web.Request, data: bytes) -> web.Response:
    return web.Response(
        body=b"" if request.method == "HEAD" else data,
        content_type=XML,
        headers={"Content-Length": str(len(data))} if request.method == "HEAD" else None,
    )


def build_phone_app(service: PhoneService) -> web.Application:
    app = web.Application(client_max_size=MAX_LOG_PUT_BYTES + 1)

    app.router.add_route("*", "/{tail:.*}", service.handle)
    return app
