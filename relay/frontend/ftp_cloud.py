"""The FTP server's calls to the cloud, made from its threads on the relay's event loop.

pyftpdlib runs in threads (architecture.md: blocking libraries run in their
own thread behind an adapter); the relay's one `Upstream` session lives on the
asyncio loop. Every call here hops to the loop with
`asyncio.run_coroutine_threadsafe` and blocks only the calling FTP thread.

A download is streamed, never held whole: a pump task on the loop reads the
cloud's answer in CHUNK pieces into a small bounded queue (at most
QUEUED_CHUNKS ahead of the phone), and the FTP thread takes them one by one as
its data connection drains, so a 300 MB firmware costs about a megabyte of
memory whatever the phone's speed.

`close()` (on the loop) cancels every call and pump in flight, so no FTP
thread stays blocked on the cloud while the server stops: each one sees
`UpstreamUnavailable`, which the FTP code answers with a retryable 4xx.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp

from relay.frontend.upstream import Phone, Upstream, UpstreamUnavailable

T = TypeVar("T")

CHUNK = 256 * 1024
QUEUED_CHUNKS = 4
# Longer than Upstream's own connect and read timeouts: those answer first.
CALL_TIMEOUT = 60.0

_Item = bytes | UpstreamUnavailable


@dataclass(frozen=True, slots=True)
class Head:
    """The cloud's answer to HEAD: status, body length and modification time if given."""

    status: int
    length: int | None
    modified: str | None


class CloudBridge:
    """Blocking calls to the cloud for FTP threads; construct and close on the loop."""

    def __init__(
        self,
        upstream: Upstream,
        loop: asyncio.AbstractEventLoop,
        timeout: float = CALL_TIMEOUT,
    ) -> None:
        self._upstream = upstream
        self._loop = loop
        self._timeout = timeout
        self._lock = threading.Lock()
        self._calls: set[concurrent.futures.Future[Any]] = set()
        self._pumps: set[asyncio.Task[None]] = set()
        self._closing = False

    def head(self, path: str, phone: Phone) -> Head:
        """HEAD `path` as `phone` (a login check, SIZE, MDTM)."""
        return self._call(self._head(path, phone))

    def put(self, path: str, phone: Phone, body: bytes) -> int:
        """PUT an upload as `phone`; the cloud's status."""
        return self._call(self._put(path, phone, body))

    def download(
        self, path: str, phone: Phone, headers: Mapping[str, str] | None = None
    ) -> CloudDownload:
        """GET `path` as `phone`: the status now, the body as the phone takes it."""
        status, queue, pump = self._call(self._open(path, phone, headers))
        return CloudDownload(self, path, status, queue, pump)

    async def close(self) -> None:
        """Cancel every call and download in flight; later calls fail at once."""
        with self._lock:
            self._closing = True
            calls = list(self._calls)
        for call in calls:
            call.cancel()
        pumps = list(self._pumps)
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            if self._closing:
                coroutine.close()
                raise UpstreamUnavailable("the relay is stopping")
            try:
                future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
            except RuntimeError as exc:
                coroutine.close()
                raise UpstreamUnavailable("the relay is stopping") from exc
            self._calls.add(future)
        try:
            return future.result(self._timeout)
        except concurrent.futures.TimeoutError as exc:
            future.cancel()
            raise UpstreamUnavailable(f"the cloud did not answer in {self._timeout} s") from exc
        except concurrent.futures.CancelledError as exc:
            raise UpstreamUnavailable("the relay is stopping") from exc
        finally:
            with self._lock:
                self._calls.discard(future)

    def take(self, queue: asyncio.Queue[_Item]) -> _Item:
        """The next item a pump queued for a download (blocks the FTP thread)."""
        return self._call(queue.get())

    def stop(self, pump: asyncio.Task[None]) -> None:
        """End a pump from an FTP thread: the phone's transfer is over."""
        try:
            self._loop.call_soon_threadsafe(pump.cancel)
        except RuntimeError:
            return

    async def _head(self, path: str, phone: Phone) -> Head:
        async with self._upstream.open("HEAD", path, phone) as response:
            return Head(
                response.status, response.content_length, response.headers.get("Last-Modified")
            )

    async def _put(self, path: str, phone: Phone, body: bytes) -> int:
        async with self._upstream.open("PUT", path, phone, data=body) as response:
            await response.read()
            return response.status

    async def _open(
        self, path: str, phone: Phone, headers: Mapping[str, str] | None
    ) -> tuple[int, asyncio.Queue[_Item], asyncio.Task[None]]:
        started: asyncio.Future[int] = self._loop.create_future()
        queue: asyncio.Queue[_Item] = asyncio.Queue(QUEUED_CHUNKS)
        pump = asyncio.create_task(self._pump(path, phone, headers, started, queue))
        self._pumps.add(pump)
        pump.add_done_callback(self._pumps.discard)
        try:
            status = await asyncio.shield(started)
        except BaseException:
            pump.cancel()
            raise
        return status, queue, pump

    async def _pump(
        self,
        path: str,
        phone: Phone,
        headers: Mapping[str, str] | None,
        started: asyncio.Future[int],
        queue: asyncio.Queue[_Item],
    ) -> None:
        try:
            async with self._upstream.open("GET", path, phone, headers=headers) as response:
                started.set_result(response.status)
                if response.status not in (200, 206):
                    return
                while True:
                    chunk = await _read_chunk(response.content)
                    await queue.put(chunk)
                    if not chunk:
                        return
        except (aiohttp.ClientError, TimeoutError) as exc:
            await _fail(started, queue, UpstreamUnavailable(f"the cloud dropped the answer: {exc}"))
        except UpstreamUnavailable as exc:
            await _fail(started, queue, exc)
        finally:
            if not started.done():
                started.cancel()


class CloudDownload:
    """One GET relayed to a phone: an asynchat producer (`more`) and the transfer's file."""

    def __init__(
        self,
        bridge: CloudBridge,
        name: str,
        status: int,
        queue: asyncio.Queue[_Item],
        pump: asyncio.Task[None],
    ) -> None:
        self.name = name
        self.status = status
        self.closed = False
        self._bridge = bridge
        self._queue = queue
        self._pump = pump

    def more(self) -> bytes:
        """The next piece of the body (b"" at its end); UpstreamUnavailable if it broke off."""
        if self.closed:
            return b""
        item = self._bridge.take(self._queue)
        if isinstance(item, UpstreamUnavailable):
            raise item
        return item

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._bridge.stop(self._pump)


async def _read_chunk(content: aiohttp.StreamReader) -> bytes:
    """Up to CHUNK bytes (fewer only at the end): one hop to the FTP thread per chunk."""
    parts: list[bytes] = []
    size = 0
    while size < CHUNK:
        part = await content.read(CHUNK - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


async def _fail(
    started: asyncio.Future[int], queue: asyncio.Queue[_Item], error: UpstreamUnavailable
) -> None:
    if not started.done():
        started.set_exception(error)
    else:
        await queue.put(error)
