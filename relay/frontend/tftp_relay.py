"""What the relay's TFTP server answers: published firmware from disk, the rest from the cloud.

The resolver of relay.frontend.tftp.TftpServer for `relay up` (issue 5). Names
arrive already screened (read-only, provisioning names only,
relay.proto.tftp.names). Then:

- firmware that the download agent published (`PublishedImages.open`) is served
  from its blob (`FileSource`, pread on an open descriptor);
- anything else is relayed to the cloud as the registered relay
  (`Phone(address, "tftp")`: TFTP carries no account, the relay's credential
  vouches for the read, relay.cloud.api.phones): configurations and other small
  files are fetched whole (at most `config_limit` bytes, 16 MiB by default),
  firmware that is not on disk is streamed into an anonymous temporary file
  (at most `firmware_limit`, 1 GiB by default) and served from it;
- the cloud's 404 is ERROR 1; an unreachable cloud, or a 5xx or 429 from it, is
  ERROR 0 "try again" (`TftpRefusal`): the phone retries by itself, Upstream
  logs the outage once and its end once (issue 5), never one error per request.

Why the relayed firmware file is not a cache: it has no name (O_TMPFILE via
`tempfile.TemporaryFile`), so nothing outlives the process, it is not checked
against the image's digest as the download agent's published images are, and
it is kept only while a download is in progress and for `linger` seconds after
(60 by default), so that the phones asking for the same image within that
time, and the retries of the phone that triggered it, share one download
instead of each pulling hundreds of megabytes from the cloud. Phones get
firmware from the local disk once the download agent has published it.
Each transfer reads its own duplicate of the descriptor, so the file's space
is freed when the last transfer ends.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import aiohttp

from relay.frontend.firmware import FIRMWARE_SUFFIXES, IMAGES_PREFIX, PublishedImages
from relay.frontend.tftp import Address, FileSource, Resolved, TftpRefusal
from relay.frontend.upstream import Phone, Upstream, UpstreamTooLarge, UpstreamUnavailable
from relay.logs import event
from relay.proto.tftp.packet import ACCESS_VIOLATION, NOT_DEFINED

log = logging.getLogger("relay.tftp")

CONFIG_LIMIT = 16 * 1024 * 1024
FIRMWARE_LIMIT = 1024 * 1024 * 1024
# The phone sees this as the ERROR 0 message of every retryable refusal.
TRY_AGAIN = "service unavailable, try again later"


@dataclass(frozen=True, slots=True)
class _Spool:
    """A relayed firmware file: the descriptor of the anonymous file holding it."""

    fd: int
    size: int


class TftpRelay:
    """The resolver: `TftpServer(TftpRelay(upstream, images).resolve, config)`; `aclose()` after."""

    def __init__(
        self,
        upstream: Upstream,
        images: PublishedImages,
        *,
        spool_dir: Path | None = None,
        config_limit: int = CONFIG_LIMIT,
        firmware_limit: int = FIRMWARE_LIMIT,
        wait: float = 8.0,
        linger: float = 60.0,
    ) -> None:
        """`wait`: how long a request waits for the cloud before its phone is told to try
        again; keep it under TftpConfig.resolve_timeout. A relayed firmware download goes
        on meanwhile, for the phone's retry."""
        self._upstream = upstream
        self._images = images
        self._spool_dir = spool_dir
        self._config_limit = config_limit
        self._firmware_limit = firmware_limit
        self._wait = wait
        self._linger = linger
        self._downloads: dict[str, asyncio.Task[_Spool | None]] = {}
        self._expiries: dict[str, asyncio.TimerHandle] = {}
        self._closed = False

    async def resolve(self, name: str, client: Address) -> Resolved:
        local = self._images.open(name)
        if local is not None:
            return FileSource(local[0])
        phone = Phone(client[0], "tftp")
        if name.startswith(IMAGES_PREFIX) or name.endswith(FIRMWARE_SUFFIXES):
            return await self._firmware(name, phone)
        try:
            async with asyncio.timeout(self._wait):
                fetched = await self._upstream.fetch(
                    "GET", "/" + name, phone, limit=self._config_limit
                )
        except UpstreamUnavailable as exc:
            raise TftpRefusal(NOT_DEFINED, TRY_AGAIN, f"the cloud is unreachable: {exc}") from exc
        except TimeoutError:
            raise TftpRefusal(
                NOT_DEFINED, TRY_AGAIN, f"the cloud did not answer within {self._wait} s"
            ) from None
        except UpstreamTooLarge as exc:
            raise _too_large(self._config_limit) from exc
        return fetched.body if _served(fetched.status) else None

    async def aclose(self) -> None:
        """Stop the downloads under way and close every relayed firmware file."""
        self._closed = True
        for handle in self._expiries.values():
            handle.cancel()
        self._expiries.clear()
        tasks = list(self._downloads.values())
        self._downloads.clear()
        for task in tasks:
            task.cancel()
        for outcome in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(outcome, _Spool):
                os.close(outcome.fd)

    async def _firmware(self, name: str, phone: Phone) -> Resolved:
        """Relayed firmware: share the download of `name` under way (or just done), or start it."""
        task = self._downloads.get(name)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._download(name, phone))
            self._downloads[name] = task
            task.add_done_callback(partial(self._downloaded, name))
        try:
            spool = await asyncio.wait_for(asyncio.shield(task), self._wait)
        except TimeoutError:
            raise TftpRefusal(
                NOT_DEFINED, "the file is being fetched, try again", "relayed firmware downloading"
            ) from None
        if spool is None:
            return None
        fd = os.dup(spool.fd)
        try:
            return FileSource(fd)
        except BaseException:
            os.close(fd)
            raise

    async def _download(self, name: str, phone: Phone) -> _Spool | None:
        """Stream `name` from the cloud into an anonymous file; None when the cloud has none."""
        limit = self._firmware_limit
        with tempfile.TemporaryFile(dir=self._spool_dir, buffering=0) as file:
            try:
                async with self._upstream.open("GET", "/" + name, phone) as response:
                    if not _served(response.status):
                        return None
                    if response.content_length is not None and response.content_length > limit:
                        raise _too_large(limit)
                    size = 0
                    # Writes go to the page cache: cheaper on the loop than a thread hop each.
                    async for chunk in response.content.iter_any():
                        size += len(chunk)
                        if size > limit:
                            raise _too_large(limit)
                        _write_all(file.fileno(), chunk)
            except (UpstreamUnavailable, aiohttp.ClientError, TimeoutError) as exc:
                raise TftpRefusal(
                    NOT_DEFINED, TRY_AGAIN, f"relaying firmware from the cloud failed: {exc}"
                ) from exc
            event(log, "tftp_firmware_relayed", file=name, bytes=size)
            return _Spool(os.dup(file.fileno()), size)

    def _downloaded(self, name: str, task: asyncio.Task[_Spool | None]) -> None:
        """A finished download stays shared for `linger` seconds; a failed one is forgotten."""
        if task.cancelled() or self._closed:
            return  # aclose() closes what it finished with
        if task.exception() is not None or task.result() is None:
            if self._downloads.get(name) is task:
                del self._downloads[name]
            return
        loop = asyncio.get_running_loop()
        self._expiries[name] = loop.call_later(self._linger, self._expire, name, task)

    def _expire(self, name: str, task: asyncio.Task[_Spool | None]) -> None:
        self._expiries.pop(name, None)
        if self._downloads.get(name) is task:
            del self._downloads[name]
        spool = task.result()
        if spool is not None:
            os.close(spool.fd)


def _served(status: int) -> bool:
    """200: the file; 404: none; a 5xx or 429: try again; any other refusal: access violation."""
    if status == 200:
        return True
    if status == 404:
        return False
    if status >= 500 or status == 429:
        raise TftpRefusal(NOT_DEFINED, TRY_AGAIN, f"the cloud answered {status}")
    raise TftpRefusal(
        ACCESS_VIOLATION, "access violation", f"the cloud answered {status}", logging.WARNING
    )


def _too_large(limit: int) -> TftpRefusal:
    return TftpRefusal(
        NOT_DEFINED, "file too large", f"the cloud's file is over {limit} bytes", logging.WARNING
    )


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
