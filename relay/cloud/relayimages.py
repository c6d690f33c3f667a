"""The tenant's relay image set, each relay's report on it, and "sync images"
(cloud.md "Software"; docs/agent-link.md "Images").

An admin chooses which images every relay keeps (at most 40 images and 30 GB);
each relay's download agent fetches the set, reports one state per image, and
long-polls for changes. Every change that alters what a relay sees (the set,
an image deleted, a relay's sync counter) wakes the long-polls watching it
through `SetWatchers`, whatever route made the change.
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from relay.cloud.context import Context, not_found
from relay.cloud.files import Files
from relay.cloud.rules.relayimages import (
    cached_image,
    check_set,
    disk_view,
    parse_set_body,
    relay_view,
    set_etag,
    set_summary,
)
from relay.cloud.store.store import Row
from relay.logs import event
from relay.sync.images import ImageReport, ImageSet

log = logging.getLogger("cloud.relayimages")


class SetWatchers:
    """Long-polls waiting for a relay's image set to change. Added and removed on the
    event loop, notified from the control plane's worker thread: hence the lock."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tokens = itertools.count()
        self._watching: dict[int, tuple[str, Callable[[], None]]] = {}

    def add(self, relay_id: str, wake: Callable[[], None]) -> int:
        """`wake` must be cheap and thread-safe (it schedules work on the loop)."""
        with self._lock:
            token = next(self._tokens)
            self._watching[token] = (relay_id, wake)
            return token

    def remove(self, token: int) -> None:
        with self._lock:
            self._watching.pop(token, None)

    def notify(self, relay_id: str | None = None) -> None:
        """Wake the polls of one relay, or of every relay when the set itself changed."""
        with self._lock:
            wakes = [w for r, w in self._watching.values() if relay_id is None or r == relay_id]
        for wake in wakes:
            wake()


class RelayImages:
    def __init__(self, ctx: Context, files: Files) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.files = files
        self.watchers = SetWatchers()

    def _relay(self, relay_id: str) -> Row:
        row = self.store.relay(relay_id)
        if row is None:
            raise not_found("relay", relay_id)
        return row

    # -- the admin's side ------------------------------------------------------

    def current(self) -> dict[str, Any]:
        """`GET /api/v1/relay-images`."""
        rows = self.store.relay_set_images()
        return set_summary([r["id"] for r in rows], sum(r["size"] for r in rows))

    def set_images(self, body: object, actor: str) -> dict[str, Any]:
        """`PUT /api/v1/relay-images`: all or nothing; a refusal says why (the rules)."""
        ids = parse_set_body(body)
        sizes = self.store.image_sizes(ids) if ids else {}
        sourceless = self.store.images_without_source(ids) if ids else set()
        total = check_set(ids, sizes, sourceless)
        with self.store.transaction():
            self.store.replace_relay_set(ids)
        self.ctx.log(actor, "set", "relay-images", images=list(ids), bytes=total)
        event(log, "relay_set_changed", logging.INFO, images=len(ids), bytes=total)
        self.watchers.notify()
        return set_summary(ids, total)

    def relay_images(self, relay_id: str) -> list[dict[str, Any]]:
        """`GET /api/v1/relays/{id}/images`: the set as that relay last reported it."""
        self._relay(relay_id)
        return self._view(relay_id)

    def _view(self, relay_id: str) -> list[dict[str, Any]]:
        ids = [r["id"] for r in self.store.relay_set_images()]
        states = {r["image_id"]: r for r in self.store.relay_image_states(relay_id)}
        return relay_view(ids, states)

    def disk(self, relay_id: str) -> dict[str, Any]:
        """The relay's room for images and its counts per state (`GET /api/v1/relays/{id}`)."""
        self._relay(relay_id)
        return disk_view(self.store.relay_image_sync(relay_id), self._view(relay_id))

    def request_sync(self, relay_id: str, actor: str) -> int:
        """cloud.md "Sync images": the relay's agent re-checks at once and retries failed
        images without waiting out its backoff. Returns the relay's new sync counter."""
        self._relay(relay_id)
        with self.store.transaction():
            self.store.bump_relay_image_sync(relay_id)
            row = self.store.relay_image_sync(relay_id)
        assert row is not None
        self.ctx.log(actor, "sync", f"relay/{relay_id}/images", sync=row["sync"])
        self.watchers.notify(relay_id)
        return int(row["sync"])

    def image_deleted(self, image_id: str) -> None:
        """cloud.md "Software": deleting an image from the set stops local upgrades from
        it. Called by `Images.delete` inside its transaction."""
        if self.store.remove_from_relay_set(image_id):
            event(log, "relay_set_image_deleted", logging.INFO, image=image_id)
            self.watchers.notify()

    # -- the agent's side ------------------------------------------------------

    def image_set(self, relay_id: str) -> ImageSet:
        """`GET /api/v1/agent/images`: the set as this relay sees it, with its etag."""
        images = tuple(cached_image(row) for row in self.store.relay_set_images())
        row = self.store.relay_image_sync(relay_id)
        sync = 0 if row is None else int(row["sync"])
        return ImageSet(set_etag(images, sync), images, sync)

    def content_path(self, image_id: str) -> tuple[Path, str]:
        """The stored bytes of an image of the set and their sha256 (the ETag); 404 for
        an image outside the set or one the cloud holds no copy of."""
        for row in self.store.relay_set_images():
            if row["id"] == image_id:
                path = self.files.blob_path(row["sha256"])
                if path.is_file():
                    return path, str(row["sha256"])
                break
        raise not_found("image content", image_id)

    def receive_report(self, relay_id: str, report: ImageReport) -> str:
        """`PUT /api/v1/agent/images/status`: the relay's latest report replaces its last
        (states of images outside the set are ignored; of one image named twice, the last
        counts). Returns the current etag, so an
        agent learns of a change with every report."""
        now = self.ctx.now()
        in_set = {r["id"] for r in self.store.relay_set_images()}
        latest = {s.image: s for s in report.states if s.image in in_set}
        rows = [
            {
                "image_id": s.image,
                "status": s.status,
                "progress": s.progress,
                "reason": s.reason,
                "updated": now,
            }
            for s in latest.values()
        ]
        with self.store.transaction():
            self._relay(relay_id)
            self.store.replace_relay_image_states(relay_id, rows)
            self.store.put_relay_image_disk(relay_id, report.free_bytes, report.reserve_bytes, now)
        return self.image_set(relay_id).etag
