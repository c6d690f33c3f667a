"""Where the image set and the image bytes come from, as the syncer sees it: an
injected protocol, so tests drive the agent with an in-process source and
`download_agent.link` implements it over HTTP against the cloud."""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import aiohttp

from relay.sync.images import CachedImage, ImageReport, ImageSet

CONNECT_TIMEOUT = 30.0


class ImageSource(Protocol):
    """`image_set` and `report` raise `management_agent.link.LinkDown` when the cloud
    cannot be reached; `content` raises what aiohttp raises."""

    async def image_set(self, etag: str | None, wait: float) -> ImageSet | None:
        """The set once it differs from `etag`, or None after waiting `wait` s unchanged."""

    async def report(self, report: ImageReport) -> None:
        """Tell the cloud every image's state and the disk's room."""

    def content(
        self, image: CachedImage, offset: int, stall_seconds: float
    ) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
        """The answer to a GET of the image's bytes from `offset` on."""


def ranged_get(
    session: aiohttp.ClientSession,
    url: str,
    offset: int,
    stall_seconds: float,
    tls: ssl.SSLContext | bool = True,
    auth: Mapping[str, str] | None = None,
) -> AbstractAsyncContextManager[aiohttp.ClientResponse]:
    """GET `url` from byte `offset` (RFC 9110 14.2 `Range: bytes=N-`, only when N > 0).
    No total timeout: a 300 MB image may take long; `sock_read` catches a stall."""
    headers = {**(auth or {}), **({"Range": f"bytes={offset}-"} if offset else {})}
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=CONNECT_TIMEOUT, sock_read=stall_seconds
    )
    return session.get(url, headers=headers, timeout=timeout, ssl=tls, auto_decompress=False)
