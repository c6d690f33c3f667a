"""The relay's own TLS certificate, delivered by the cloud (issue 7; docs/agent-link.md,
"Certificates").

`CertFeed` polls `GET /api/v1/agent/certificate` with the last ETag (If-None-Match,
RFC 9110 13.1.2: 304 while unchanged) at start and then on the heartbeat interval.
200 delivers a `RelayCertificate` to install; 404 means none is assigned, so the
relay serves its own lab certificate again, if what it serves is what the cloud
delivered (a certificate the admin installed with `relay certs install` stays).
The last delivery (ETag and fingerprint) is kept in `<agent dir>/certificate.json`
so that a restart neither downloads it again nor forgets whose it is. After
every change, and whenever an install was refused, it PUTs `CertificateState`
to `.../certificate/status` so the admin sees what the relay serves and why a
certificate was not taken.

What to do with an answer is decided by `plan`, pure and tested without sockets;
the installing is the target's (certs.rotation.ServingCertificate in `relay up`),
run in a thread because it writes and fsyncs files. Like ZtpFeed, the credential
is re-read after a revocation (the embedded relay registers anew into that file).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import aiohttp
from yarl import URL

from certs.lab import CertError
from certs.rotation import Served
from management_agent.agent import cloud_tls
from management_agent.bodies import read_capped
from management_agent.link import MAX_ETAG, REQUEST_TIMEOUT, Identity, LinkDown, Revoked, api_base
from relay.logs import event
from relay.secretfile import read_secret, write_secret
from relay.sync.certificates import MAX_ERROR, CertificateState, RelayCertificate
from relay.sync.messages import SyncError

log = logging.getLogger("management_agent.certfeed")

# JSON of a chain and a key at their caps (relay.sync.certificates), escapes included.
MAX_ANSWER = 256 * 1024
DEFAULT_INTERVAL = 120.0
MEMORY_FILE = "certificate.json"
MAX_MEMORY = 4096


class CertificateTarget(Protocol):
    """What serves the certificate (certs.rotation.ServingCertificate)."""

    def install(self, chain_pem: bytes, key_pem: bytes) -> Served: ...

    def use_lab(self) -> Served: ...

    def serving(self) -> Served: ...


@dataclass(frozen=True, slots=True)
class Install:
    """Serve this certificate, delivered under `etag`."""

    certificate: RelayCertificate


@dataclass(frozen=True, slots=True)
class UseLab:
    """No certificate is assigned: serve the relay's own lab certificate."""


Step = Install | UseLab | None


def plan(status: int, body: bytes, serving: Served, delivered: str = "") -> Step:
    """What an answer of `GET /agent/certificate` asks for; None: nothing to do.

    `delivered` is the fingerprint of the certificate the cloud last delivered here.

    Raises SyncError for an answer that is not a certificate (or a status the route
    does not give), so the caller reports it instead of acting on it.
    """
    if status == 304:
        return None
    if status == 404:
        ours = serving.source == "installed" and serving.fingerprint == delivered
        return UseLab() if ours else None
    if status != 200:
        raise SyncError(f"certificate: HTTP {status}")
    if len(body) > MAX_ANSWER:
        raise SyncError(f"certificate: the answer is over {MAX_ANSWER} bytes")
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        raise SyncError("certificate: the answer is not JSON") from None
    certificate = RelayCertificate.from_wire(value)
    if serving.source == "installed" and certificate.fingerprint == serving.fingerprint:
        return None
    return Install(certificate)


def state(served: Served, error: str = "") -> CertificateState:
    """The status report for what is served (and why the last delivery was refused)."""
    return CertificateState(
        serving=served.fingerprint,
        not_after=served.not_after.isoformat(),
        previous=served.previous,
        error=error[:MAX_ERROR],
    )


def _recall(path: Path) -> tuple[str | None, str]:
    """The last delivery's (ETag, fingerprint); nothing when unknown or unreadable."""
    try:
        raw = read_secret(path)
        value = json.loads(raw[:MAX_MEMORY]) if raw else None
    except (OSError, ValueError):
        return None, ""
    if not isinstance(value, dict):
        return None, ""
    etag, fingerprint = value.get("etag"), value.get("fingerprint")
    return (
        etag if isinstance(etag, str) and len(etag) <= MAX_ETAG else None,
        fingerprint if isinstance(fingerprint, str) else "",
    )


class CertFeed:
    """`await feed.run()` until cancelled; `await feed.poll()` is one round."""

    def __init__(
        self,
        credential: Path,
        target: CertificateTarget,
        *,
        cloud_ca: Path | None = None,
        interval: float = DEFAULT_INTERVAL,
    ) -> None:
        self.credential = credential
        self.target = target
        self.cloud_ca = cloud_ca
        self.interval = interval
        self.memory = credential.parent / MEMORY_FILE
        self.etag, self.delivered = _recall(self.memory)
        self.error = ""
        self._unsent: CertificateState | None = None
        self._session: aiohttp.ClientSession | None = None
        self._base = URL()
        self._tls: ssl.SSLContext | bool = True

    async def run(self) -> None:
        """Poll now and then every `interval`; a failed round is logged and retried."""
        while True:
            try:
                await self.poll()
            except (LinkDown, SyncError) as exc:
                event(log, "certificate_poll_failed", logging.WARNING, error=str(exc))
            except Revoked as exc:
                await self.aclose()
                event(log, "certificate_poll_failed", logging.WARNING, error=str(exc))
            await asyncio.sleep(self.interval)

    async def poll(self) -> None:
        """One GET; act on it; report the state when it changed (or is still unsent)."""
        if self._session is None:
            self._connect()
            # A (re)started feed says what it serves even when nothing changes.
            self._unsent = state(self.target.serving(), self.error)
        status, etag = 0, None
        try:
            status, etag, body = await self._get()
            step = plan(status, body, self.target.serving(), self.delivered)
        except SyncError as exc:
            self._refused(etag, str(exc))
        else:
            if isinstance(step, Install):
                await self._install(step.certificate, etag or step.certificate.etag)
            elif isinstance(step, UseLab):
                served = await asyncio.to_thread(self.target.use_lab)
                self._remember(None, "")
                self._unsent = state(served)
            elif status == 200:
                self.etag, self.error = etag, ""
        if self._unsent is not None:
            await self._put(self._unsent)
            self._unsent = None

    async def _install(self, certificate: RelayCertificate, etag: str | None) -> None:
        try:
            served = await asyncio.to_thread(
                self.target.install, certificate.chain_pem.encode(), certificate.key_pem.encode()
            )
        except CertError as exc:
            self._refused(etag, exc.message)
            return
        self._remember(etag, served.fingerprint)
        self._unsent = state(served)

    def _remember(self, etag: str | None, delivered: str) -> None:
        self.etag, self.delivered, self.error = etag, delivered, ""
        try:
            write_secret(self.memory, json.dumps({"etag": etag, "fingerprint": delivered}))
        except OSError as exc:
            # Only costs a download after a restart, and a 404 then leaves it served.
            event(log, "certificate_memory_unwritable", logging.WARNING, error=exc.strerror)

    def _refused(self, etag: str | None, error: str) -> None:
        """Keep serving what is served; the same delivery is not retried until it changes."""
        event(log, "certificate_refused", logging.WARNING, error=error)
        self.etag, self.error = etag, error
        self._unsent = state(self.target.serving(), error)

    def _connect(self) -> None:
        try:
            identity = Identity.load(self.credential)
        except ValueError as exc:
            raise LinkDown(str(exc)) from exc
        if identity is None:
            raise LinkDown(f"no relay credential in {self.credential}; run relay agent register")
        self._base = api_base(identity.cloud) / "agent" / "certificate"
        self._tls = cloud_tls(identity, self.cloud_ca) or True
        auth = f"Relay {identity.relay_id}:{identity.secret}"
        self._session = aiohttp.ClientSession(headers={"Authorization": auth})

    async def _get(self) -> tuple[int, str | None, bytes]:
        assert self._session is not None
        headers = {"If-None-Match": self.etag} if self.etag else {}
        try:
            async with self._session.get(
                self._base,
                headers=headers,
                ssl=self._tls,
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
            ) as response:
                if response.status == 401:
                    raise Revoked("the cloud refused this relay's credential")
                if response.status >= 500:
                    raise LinkDown(f"certificate: HTTP {response.status}")
                body = await read_capped(response, MAX_ANSWER)
                if body is None:
                    raise SyncError(f"certificate: the answer is over {MAX_ANSWER} bytes")
                tag = response.headers.get("ETag")
                return response.status, tag if tag and len(tag) <= MAX_ETAG else None, body
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise LinkDown(f"certificate: cannot reach the cloud: {exc!s}") from exc

    async def _put(self, report: CertificateState) -> None:
        assert self._session is not None
        try:
            async with self._session.put(
                self._base / "status",
                json=report.to_wire(),
                ssl=self._tls,
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
            ) as response:
                await read_capped(response, MAX_ANSWER)
                if response.status == 401:
                    raise Revoked("the cloud refused this relay's credential")
                if response.status >= 300:
                    raise LinkDown(f"certificate status: HTTP {response.status}")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise LinkDown(f"certificate status: cannot reach the cloud: {exc!s}") from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
