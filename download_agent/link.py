"""The download agent's cloud side over HTTP (the `ImageSource` of the running agent):

    GET  <api>/agent/images?wait=S   If-None-Match: "<etag>"  -> 200 ImageSet | 304
    GET  <api>/agent/images/{id}/content   (Range)            -> the bytes
    PUT  <api>/agent/images/status   ImageReport              -> {"etag": ...}

authenticated exactly as the management agent's `CloudClient` (the same Identity
file). Images with their own `url` are fetched from there without the relay's
credential: it must never leak to a foreign host. A refused credential (401) is
re-read from the file: a revoked relay registers anew through the management
agent, which saves the new one there.
"""

from __future__ import annotations

import json
import ssl
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import aiohttp

from download_agent.source import ranged_get
from management_agent.bodies import read_capped
from management_agent.link import REQUEST_TIMEOUT, Identity, LinkDown, api_base
from relay.sync.images import CachedImage, ImageReport, ImageSet
from relay.sync.messages import SyncError

MAX_ANSWER = 1024 * 1024


class CloudImages:
    """One authenticated keep-alive session to the cloud, one plain one for foreign URLs."""

    def __init__(
        self,
        identity: Identity,
        tls: ssl.SSLContext | None = None,
        credential: Path | None = None,
    ) -> None:
        self.identity = identity
        self._credential = credential
        self._base = api_base(identity.cloud) / "agent" / "images"
        self._tls = tls
        self._cloud: aiohttp.ClientSession | None = None
        self._foreign: aiohttp.ClientSession | None = None

    def _session(self) -> aiohttp.ClientSession:
        if self._cloud is None:
            self._cloud = aiohttp.ClientSession(auto_decompress=False)
        return self._cloud

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Relay {self.identity.relay_id}:{self.identity.secret}"}

    def _refused(self, response: aiohttp.ClientResponse) -> None:
        """After a 401, use the credential saved since (if any) from the next request on."""
        if response.status != 401 or self._credential is None:
            return
        try:
            saved = Identity.load(self._credential)
        except ValueError:
            return
        if saved is not None and saved.cloud == self.identity.cloud:
            self.identity = saved

    def _plain(self) -> aiohttp.ClientSession:
        if self._foreign is None:
            self._foreign = aiohttp.ClientSession(auto_decompress=False)
        return self._foreign

    async def image_set(self, etag: str | None, wait: float) -> ImageSet | None:
        """Long-poll: the cloud answers at once when the set differs from `etag`."""
        headers = {**self._auth(), **({"If-None-Match": f'"{etag}"'} if etag else {})}
        try:
            async with self._session().get(
                self._base,
                params={"wait": str(int(wait))},
                headers=headers,
                ssl=self._tls or True,
                timeout=aiohttp.ClientTimeout(total=wait + REQUEST_TIMEOUT),
            ) as response:
                if response.status == 304:
                    return None
                self._refused(response)
                value = await _json(response, "images")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise LinkDown(f"images: cannot reach the cloud: {exc!s}") from exc
        try:
            return ImageSet.from_wire(value)
        except SyncError as exc:
            raise LinkDown(f"images: the cloud's answer is malformed: {exc}") from exc

    async def report(self, report: ImageReport) -> None:
        try:
            async with self._session().put(
                self._base / "status",
                json=report.to_wire(),
                headers=self._auth(),
                ssl=self._tls or True,
                timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
            ) as response:
                self._refused(response)
                await _json(response, "images/status")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise LinkDown(f"images/status: cannot reach the cloud: {exc!s}") from exc

    def content(
        self, image: CachedImage, offset: int, stall_seconds: float
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        if image.url:
            return ranged_get(self._plain(), image.url, offset, stall_seconds)
        url = str(self._base / image.id / "content")
        return ranged_get(
            self._session(), url, offset, stall_seconds, self._tls or True, self._auth()
        )

    async def aclose(self) -> None:
        for session in (self._cloud, self._foreign):
            if session is not None:
                await session.close()
        self._cloud = self._foreign = None


async def _json(response: aiohttp.ClientResponse, name: str) -> Any:
    """The decoded answer of a 2xx; LinkDown for anything else (a 401 too: the
    management agent owns the credential and registers again; this agent waits)."""
    body = await read_capped(response, MAX_ANSWER)
    if body is None:
        raise LinkDown(f"{name}: the cloud's answer is too large")
    if response.status >= 300:
        raise LinkDown(f"{name}: HTTP {response.status}")
    try:
        return json.loads(body or b"null")
    except (ValueError, RecursionError) as exc:
        raise LinkDown(f"{name}: the cloud's answer is not JSON") from exc
