"""One image download: resume, verify, publish (issue 6, "Faults and bad input").

The partial file is the only state: a retry (or a restart after kill -9) re-hashes
what is there and asks for the rest with a Range request. The blob becomes
visible only by rename after its size and sha256 matched and it was fsynced, so
whatever goes wrong no half or wrong image is ever published.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import aiohttp

from download_agent.bandwidth import TokenBucket
from download_agent.faults import FetchFailed, no_room, shortfall
from download_agent.ranges import check_answer
from download_agent.settings import DownloadSettings
from download_agent.source import ImageSource
from download_agent.store import ImageStore
from relay.logs import event
from relay.sync.images import CachedImage

if TYPE_CHECKING:
    from hashlib import _Hash

log = logging.getLogger("download_agent.fetch")

T = TypeVar("T")

READ_BLOCK = 1024 * 1024
SPACE_CHECK = 4 * 1024 * 1024
_FULL = (errno.ENOSPC, errno.EDQUOT)


def _resume(part: Path, size: int) -> tuple[int, _Hash]:
    """The partial's length and the hash of its bytes; one longer than the image is junk."""
    hasher = hashlib.sha256()
    try:
        length = part.stat().st_size
    except FileNotFoundError:
        return 0, hasher
    if length > size:
        part.unlink()
        return 0, hasher
    with part.open("rb") as prefix:
        while block := prefix.read(READ_BLOCK):
            hasher.update(block)
    return length, hasher


def _kept(part: Path) -> int:
    try:
        return part.stat().st_size
    except FileNotFoundError:
        return 0


def _seal(part: Path) -> None:
    fd = os.open(part, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write(fd: int, data: bytes) -> None:
    """All of `data` (a full disk shows as a short write, then ENOSPC)."""
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError as exc:
        if exc.errno in _FULL:
            raise FetchFailed(
                "disk full while writing; the partial download was deleted, retrying later",
                discard=True,
            ) from None
        raise


class Fetcher:
    """Downloads into the store; `progress(sha256, bytes_done)` follows every chunk.
    Re-hashing a partial and fsync run on `pool`, off the event loop."""

    def __init__(
        self,
        pool: Executor,
        store: ImageStore,
        source: ImageSource,
        settings: DownloadSettings,
        limiter: TokenBucket,
        progress: Callable[[str, int], None],
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._pool = pool
        self._store = store
        self._source = source
        self._settings = settings
        self._limiter = limiter
        self._progress = progress
        self._monotonic = monotonic

    async def _blocking(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn)

    async def fetch(self, image: CachedImage) -> None:
        """Publish `image` as blobs/<sha256>, or raise `FetchFailed` saying why not."""
        part = self._store.partial_path(image.sha256)
        try:
            done, hasher = await self._blocking(lambda: _resume(part, image.size))
            self._progress(image.sha256, done)
            if done < image.size:
                needed = image.size - done
                refusal = shortfall(needed, self._store.free_bytes(), self._settings.reserve_bytes)
                if refusal is not None:
                    raise FetchFailed(refusal)
                done, hasher = await self._download(image, part, done, hasher)
            await self._blocking(lambda: _seal(part))
            if hasher.hexdigest() != image.sha256:
                raise FetchFailed(
                    "corrupted download: the bytes received do not match the image's sha256; "
                    "the partial download was deleted, downloading again from the start",
                    discard=True,
                )
            self._store.publish(image.sha256)
        except FetchFailed as failed:
            if failed.discard:
                self._store.remove_partial(image.sha256)
            raise
        except OSError as exc:
            raise FetchFailed(f"the image store failed ({exc!s}); retrying later") from None

    async def _download(
        self, image: CachedImage, part: Path, done: int, hasher: _Hash
    ) -> tuple[int, _Hash]:
        stall = self._settings.stall_seconds
        try:
            async with self._source.content(image, done, stall) as response:
                answer = check_answer(
                    response.status,
                    response.headers.get("Content-Range"),
                    response.content_length,
                    done,
                    image.size,
                )
                if answer.restart:
                    event(log, "range_ignored", logging.WARNING, image=image.id, asked=done)
                    done, hasher = 0, hashlib.sha256()
                fd = os.open(part, os.O_WRONLY | os.O_CREAT, 0o644)
                try:
                    os.ftruncate(fd, done)
                    os.lseek(fd, done, os.SEEK_SET)
                    done = await self._receive(image, response, fd, done, hasher)
                finally:
                    os.close(fd)
        except TimeoutError:
            raise FetchFailed(
                f"no data for {stall:g} s; retrying, the download resumes from byte {_kept(part)}"
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise FetchFailed(
                f"the connection was cut after {_kept(part)} of {image.size} bytes ({exc!s}); "
                "retrying, the download resumes from there"
            ) from None
        if done < image.size:
            raise FetchFailed(
                f"the server's answer ended after {done} of {image.size} bytes; "
                "retrying, the download resumes from there"
            )
        return done, hasher

    async def _receive(
        self,
        image: CachedImage,
        response: aiohttp.ClientResponse,
        fd: int,
        done: int,
        hasher: _Hash,
    ) -> int:
        checked = done
        reserve = self._settings.reserve_bytes
        async for chunk in response.content.iter_any():
            if done + len(chunk) > image.size:
                raise FetchFailed(
                    f"the server sent more bytes than the image's {image.size}; the partial "
                    "download was deleted, downloading again from the start",
                    discard=True,
                )
            _write(fd, chunk)
            hasher.update(chunk)
            done += len(chunk)
            self._progress(image.sha256, done)
            if done - checked >= SPACE_CHECK:
                checked = done
                free = self._store.free_bytes()
                if free < reserve:
                    raise FetchFailed(no_room(image.size - done, free, reserve))
            delay = self._limiter.take(len(chunk), self._monotonic())
            if delay > 0:
                await asyncio.sleep(delay)
        return done
