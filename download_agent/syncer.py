"""The download agent at run time: keep `<data-dir>/images/` equal to the cloud's image
set (issue 6; architecture.md flow 3).

Three loops share the agent's state: `_poll` long-polls the set, `_work` reconciles
the store with it and downloads what is missing one image at a time in set order,
`_send_reports` tells the cloud. While the cloud is unreachable the published
index stays as it is, so phones keep upgrading from what is already verified.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from download_agent import reconcile, status
from download_agent.bandwidth import bucket
from download_agent.faults import FetchFailed
from download_agent.fetch import Fetcher
from download_agent.settings import DownloadSettings
from download_agent.source import ImageSource
from download_agent.status import Progress, RateMeter
from download_agent.store import ImageStore
from management_agent.backoff import Backoff
from management_agent.link import LinkDown
from relay.logs import event
from relay.sync.images import CachedImage, ImageSet

log = logging.getLogger("download_agent")


class DownloadAgent:
    def __init__(
        self,
        source: ImageSource,
        settings: DownloadSettings,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.store = ImageStore(settings.images_dir)
        self._source = source
        self._clock = clock
        self._monotonic = monotonic
        self._rng = rng or random.Random()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="download-store")
        self._fetcher = Fetcher(
            self._pool,
            self.store,
            source,
            settings,
            bucket(settings.rate_limit),
            self._on_bytes,
            monotonic,
        )
        self._images: tuple[CachedImage, ...] | None = None
        self._sync = 0
        self._progress: dict[str, Progress] = {}
        self._meters: dict[str, RateMeter] = {}
        self._backoffs: dict[str, Backoff] = {}
        self._due: dict[str, float] = {}
        self._current: tuple[str, asyncio.Task[None]] | None = None
        self._link = "connecting"
        self._status_at = -math.inf
        self._wake = asyncio.Event()
        self._report_dirty = asyncio.Event()
        self._report_urgent = asyncio.Event()

    async def run(self) -> None:
        """Run until cancelled."""
        self.store.open()
        kept = self._trust_published()
        event(log, "download_agent_started", published=kept, root=str(self.store.root))
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._poll())
                group.create_task(self._work())
                group.create_task(self._send_reports())
        finally:
            self._write_status()
            self._pool.shutdown(wait=True)
            event(log, "download_agent_stopped")

    def _trust_published(self) -> int:
        """Blobs were verified before their rename: one whose size still matches is
        trusted without re-hashing; any other leaves the index at once."""
        blobs = self.store.blobs()
        kept = [i for i in self.store.published() if blobs.get(i.sha256) == i.size]
        self.store.write_index(kept)
        return len(kept)

    # -- the image set -----------------------------------------------------------

    async def _poll(self) -> None:
        backoff = self._backoff()
        etag: str | None = None
        while True:
            try:
                found = await self._source.image_set(etag, self.settings.poll_wait)
            except LinkDown as exc:
                self._link_down("images", exc)
                await asyncio.sleep(backoff.next_delay())
                continue
            backoff.reset()
            self._link_up()
            if found is not None:
                etag = found.etag
                self._adopt(found)

    def _adopt(self, found: ImageSet) -> None:
        """A new set: "sync images" (a larger `sync`) retries failed images at once; a
        download of an image no longer wanted stops."""
        if found.sync > self._sync:
            self._due.clear()
            self._backoffs.clear()
        self._sync = found.sync
        self._images = found.images
        wanted = {i.sha256 for i in found.images}
        for sha in set(self._progress) - wanted:
            del self._progress[sha]
            self._meters.pop(sha, None)
        if self._current is not None and self._current[0] not in wanted:
            self._current[1].cancel()
        event(log, "image_set", etag=found.etag, images=len(found.images), sync=found.sync)
        self._wake.set()
        self._changed(urgent=True)

    # -- the store ---------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            self._wake.clear()
            delay = self.settings.sweep_seconds
            if self._images is not None:
                plan = self._reconcile(self._images)
                now = self._monotonic()
                due = [i for i in plan.missing if self._due.get(i.sha256, 0.0) <= now]
                if due:
                    await self._download(due[0])
                    continue
                waits = [self._due[i.sha256] - now for i in plan.missing]
                delay = min([delay, *waits])
            await _wait(self._wake, delay)

    def _reconcile(self, images: tuple[CachedImage, ...]) -> reconcile.Plan:
        """Publish what is present, then delete what is no longer wanted: the index
        drops an image before its blob goes, and a blob a reader holds waits."""
        plan = reconcile.plan(images, self.store.blobs(), self.store.partials())
        try:
            if self.store.write_index(plan.published):
                event(log, "index_published", images=",".join(i.id for i in plan.published))
            for sha in plan.drop_blobs:
                if self.store.remove_blob(sha):
                    event(log, "blob_removed", sha256=sha)
                else:
                    event(log, "blob_in_use", logging.DEBUG, sha256=sha)
            for sha in plan.drop_partials:
                self.store.remove_partial(sha)
        except OSError as exc:
            event(log, "store_error", logging.WARNING, error=str(exc))
        changed = False
        for image in plan.published:
            if self._progress.get(image.sha256, Progress()).status != "synced":
                self._progress[image.sha256] = Progress("synced", image.size)
                changed = True
        if changed:
            self._changed(urgent=True)
        return plan

    async def _download(self, image: CachedImage) -> None:
        sha = image.sha256
        before = self._progress.get(sha, Progress()).bytes_done
        self._progress[sha] = Progress("syncing", before)
        self._changed(urgent=True)
        event(log, "image_download", image=image.id, sha256=sha, size=image.size)
        task = asyncio.create_task(self._fetcher.fetch(image))
        self._current = (sha, task)
        try:
            await task
        except FetchFailed as failed:
            self._failed(image, failed, before)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is not None and current.cancelling():
                raise
            event(log, "image_download_stopped", image=image.id, why="dropped from the set")
        else:
            self._backoffs.pop(sha, None)
            self._due.pop(sha, None)
            self._meters.pop(sha, None)
            self._progress[sha] = Progress("synced", image.size)
            event(log, "image_published", image=image.id, sha256=sha, size=image.size)
            self._changed(urgent=True)
        finally:
            self._current = None

    def _failed(self, image: CachedImage, failed: FetchFailed, before: int) -> None:
        """Retry with backoff; a kept partial that grew earns a fresh, short backoff."""
        sha = image.sha256
        kept = 0 if failed.discard else self._progress.get(sha, Progress()).bytes_done
        backoff = self._backoffs.setdefault(sha, self._backoff())
        if kept > before:
            backoff.reset()
        delay = backoff.next_delay()
        self._due[sha] = self._monotonic() + delay
        self._progress[sha] = Progress("failed", kept, 0.0, failed.reason)
        event(
            log,
            "image_failed",
            logging.WARNING,
            image=image.id,
            reason=failed.reason,
            retry_in=round(delay, 2),
        )
        self._changed(urgent=True)

    def _on_bytes(self, sha: str, done: int) -> None:
        rate = self._meters.setdefault(sha, RateMeter()).update(done, self._monotonic())
        self._progress[sha] = Progress("syncing", done, rate)
        self._changed(urgent=False)

    # -- telling people and the cloud ------------------------------------------------

    def _changed(self, *, urgent: bool) -> None:
        """Status file at most every `status_seconds`, and at once on a state change;
        reports likewise, at most every `report_seconds`."""
        now = self._monotonic()
        if urgent or now - self._status_at >= self.settings.status_seconds:
            self._status_at = now
            self._write_status()
        self._report_dirty.set()
        if urgent:
            self._report_urgent.set()

    def _free(self) -> int:
        try:
            return self.store.free_bytes()
        except OSError:
            return 0

    def _write_status(self) -> None:
        images = self._images if self._images is not None else self.store.published()
        document = status.document(
            images, self._progress, self._free(), self.settings.reserve_bytes, self._clock()
        )
        try:
            self.store.write_status(document)
        except OSError as exc:
            event(log, "status_not_written", logging.WARNING, error=str(exc))

    async def _send_reports(self) -> None:
        backoff = self._backoff()
        while True:
            await self._report_dirty.wait()
            self._report_dirty.clear()
            self._report_urgent.clear()
            if self._images is None:
                continue
            report = status.report(
                self._images, self._progress, self._free(), self.settings.reserve_bytes
            )
            try:
                await self._source.report(report)
            except LinkDown as exc:
                self._link_down("report", exc)
                self._report_dirty.set()
                await asyncio.sleep(backoff.next_delay())
                continue
            backoff.reset()
            self._link_up()
            await _wait(self._report_urgent, self.settings.report_seconds)

    def _link_down(self, during: str, exc: Exception) -> None:
        if self._link != "down":
            event(log, "link_down", logging.WARNING, during=during, error=str(exc))
        self._link = "down"

    def _link_up(self) -> None:
        if self._link != "up":
            event(log, "link_up")
        self._link = "up"

    def _backoff(self) -> Backoff:
        return Backoff(base=self.settings.retry_base, cap=self.settings.retry_cap, rng=self._rng)


async def _wait(wake: asyncio.Event, seconds: float) -> None:
    """Until `wake` is set or `seconds` pass. Not `wait_for`: on Python 3.11 it can
    swallow a cancellation that arrives as the event is set (CPython gh-86296)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, seconds)):
            await wake.wait()
