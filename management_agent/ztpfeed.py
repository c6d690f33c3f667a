"""The relay's ZTP directory feed: the agent's link to the cloud, as the relay's
front end (relay.frontend.ztp) consumes it.

The front end must not depend on the agent (architecture.md import rules), so
it takes a plain `fetch(etag)` callable; this is that callable, built in the
composition root. It re-reads the credential after a revocation, because the
embedded relay registers anew and saves its new credential in the same file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from management_agent.agent import cloud_tls
from management_agent.link import CloudClient, Identity, LinkDown, Revoked
from relay.frontend.ztp import ZtpSyncError


class ZtpFeed:
    """`await feed(etag)` -> None (unchanged) or (etag, directory); raises ZtpSyncError."""

    def __init__(self, credential: Path, cloud_ca: Path | None = None) -> None:
        self.credential = credential
        self.cloud_ca = cloud_ca
        self._client: CloudClient | None = None

    def _connect(self) -> CloudClient:
        try:
            identity = Identity.load(self.credential)
        except ValueError as exc:
            raise ZtpSyncError(str(exc)) from exc
        if identity is None:
            raise ZtpSyncError(
                f"no relay credential in {self.credential}; run relay agent register"
            )
        return CloudClient(identity, cloud_tls(identity, self.cloud_ca))

    async def __call__(self, etag: str | None) -> tuple[str | None, Any] | None:
        if self._client is None:
            self._client = self._connect()
        try:
            return await self._client.ztp(etag)
        except Revoked as exc:
            await self.aclose()
            raise ZtpSyncError(str(exc)) from exc
        except LinkDown as exc:
            raise ZtpSyncError(str(exc)) from exc

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
