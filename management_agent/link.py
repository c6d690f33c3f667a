"""The agent's HTTP client to the cloud (docs/agent-link.md), outbound only.

Errors come in three kinds so the caller knows what to do: `LinkDown`
(network, timeouts, 5xx: retry with backoff), `Revoked` (the cloud no longer
knows this relay: stop and tell the admin to register again) and `Refused`
(registration refused: wrong tenant or PIN, or locked out for a while).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from yarl import URL

from management_agent.bodies import read_capped
from relay.secretfile import read_secret, write_secret
from relay.sync.messages import (
    Credential,
    Heartbeat,
    JobBatch,
    LinkSettings,
    Registration,
    ReportBatch,
    SyncError,
    Watchlist,
)

M = TypeVar("M")

MAX_ANSWER = 16 * 1024 * 1024
REQUEST_TIMEOUT = 30.0
MAX_ETAG = 256


class LinkDown(Exception):
    """The cloud could not be reached or failed; try again later."""


class Revoked(Exception):
    """The cloud refused this relay's credential."""


class Refused(Exception):
    """Registration refused; `retry_after` is set when the source is locked out."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def api_base(cloud: str) -> URL:
    """`https://host:port`, with or without `/api/v1`, as the API's base URL."""
    url = URL(cloud)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"cloud address {cloud!r} is not an http:// or https:// URL")
    path = url.path.rstrip("/")
    if not path.endswith("/api/v1"):
        path += "/api/v1"
    return url.with_path(path).with_query(None).with_fragment(None)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who this relay is to its cloud; kept 0600 in `<agent dir>/credential.json`."""

    cloud: str
    tenant: str
    relay_id: str
    secret: str = field(repr=False)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_secret(
            path,
            json.dumps(
                {
                    "cloud": self.cloud,
                    "tenant": self.tenant,
                    "relay_id": self.relay_id,
                    "secret": self.secret,
                }
            ),
        )

    @classmethod
    def load(cls, path: Path) -> Identity | None:
        raw = read_secret(path)
        if raw is None:
            return None
        try:
            value = json.loads(raw)
            return cls(value["cloud"], value["tenant"], value["relay_id"], value["secret"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"{path} is damaged; delete it and run `relay agent register` again"
            ) from exc


async def _answer(response: aiohttp.ClientResponse) -> Any:
    body = await read_capped(response, MAX_ANSWER)
    if body is None:
        raise LinkDown(f"the cloud's answer to {response.url.path} is too large")
    try:
        return json.loads(body or b"null")
    except (ValueError, RecursionError) as exc:
        raise LinkDown(f"the cloud's answer to {response.url.path} is not JSON") from exc


def _message(value: Any, fallback: str) -> str:
    if isinstance(value, dict) and isinstance(value.get("error"), dict):
        return str(value["error"].get("message", fallback))
    return fallback


async def register(
    cloud: str,
    registration: Registration,
    tls: ssl.SSLContext | None = None,
) -> Identity:
    """Exchange the tenant ID and PIN for this relay's own credential."""
    url = api_base(cloud) / "agent" / "register"
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, json=registration.to_wire(), ssl=tls or True) as response,
        ):
            value = await _answer(response)
            if response.status == 429:
                retry = float(response.headers.get("Retry-After", "60") or 60)
                raise Refused(_message(value, "too many wrong PINs"), retry)
            if response.status in (400, 401, 403, 404, 409, 422):
                raise Refused(_message(value, f"registration refused ({response.status})"))
            if response.status != 201:
                raise LinkDown(f"registration failed: HTTP {response.status}")
            credential = Credential.from_wire(value)
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        raise LinkDown(f"cannot reach the cloud at {url.origin()}: {exc!s}") from exc
    except SyncError as exc:
        raise LinkDown(f"the cloud's registration answer is malformed: {exc}") from exc
    return Identity(cloud, registration.tenant, credential.relay_id, credential.secret)


class CloudClient:
    """One keep-alive session to the cloud for all of the agent's requests."""

    def __init__(self, identity: Identity, tls: ssl.SSLContext | None = None) -> None:
        self.identity = identity
        self._base = api_base(identity.cloud) / "agent"
        self._tls = tls
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            auth = f"Relay {self.identity.relay_id}:{self.identity.secret}"
            self._session = aiohttp.ClientSession(headers={"Authorization": auth})
        return self._session

    async def _call(
        self,
        method: str,
        name: str,
        *,
        body: object = None,
        query: dict[str, str] | None = None,
        seconds: float = REQUEST_TIMEOUT,
    ) -> Any:
        url = self._base / name
        try:
            async with self._http().request(
                method,
                url,
                json=body,
                params=query,
                ssl=self._tls or True,
                timeout=aiohttp.ClientTimeout(total=seconds),
            ) as response:
                value = await _answer(response)
                if response.status == 401:
                    raise Revoked(_message(value, "the cloud refused this relay's credential"))
                if response.status >= 300:
                    raise LinkDown(f"{name}: HTTP {response.status}: {_message(value, '')}")
                return value
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise LinkDown(f"{name}: cannot reach the cloud: {exc!s}") from exc

    async def heartbeat(self, beat: Heartbeat) -> LinkSettings:
        value = await self._call("POST", "heartbeat", body=beat.to_wire())
        return self._parse(LinkSettings.from_wire, value)

    async def jobs(self, after: int, wait: float) -> JobBatch:
        query = {"after": str(after), "wait": str(int(wait))}
        value = await self._call("GET", "jobs", query=query, seconds=wait + REQUEST_TIMEOUT)
        return self._parse(JobBatch.from_wire, value)

    async def send_reports(self, batch: ReportBatch) -> int:
        value = await self._call("POST", "reports", body=batch.to_wire())
        acked = value.get("acked") if isinstance(value, dict) else None
        if isinstance(acked, bool) or not isinstance(acked, int):
            raise LinkDown("reports: the cloud's answer has no acked number")
        return acked

    async def watchlist(self) -> Watchlist:
        return self._parse(Watchlist.from_wire, await self._call("GET", "devices"))

    async def ztp(self, etag: str | None) -> tuple[str | None, Any] | None:
        """The tenant's ZTP directory (docs/agent-link.md "ZTP directory"): None while
        If-None-Match `etag` still holds (304), else the new ETag and the decoded body."""
        headers = {"If-None-Match": etag} if etag else {}
        try:
            async with self._http().get(
                self._base / "ztp",
                headers=headers,
                ssl=self._tls or True,
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
            ) as response:
                if response.status == 304:
                    return None
                value = await _answer(response)
                if response.status == 401:
                    raise Revoked(_message(value, "the cloud refused this relay's credential"))
                if response.status != 200:
                    raise LinkDown(f"ztp: HTTP {response.status}: {_message(value, '')}")
                tag = response.headers.get("ETag")
                return (tag if tag and len(tag) <= MAX_ETAG else None), value
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise LinkDown(f"ztp: cannot reach the cloud: {exc!s}") from exc

    @staticmethod
    def _parse(kind: Callable[[object], M], value: object) -> M:
        try:
            return kind(value)
        except SyncError as exc:
            raise LinkDown(f"the cloud's answer is malformed: {exc}") from exc

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
