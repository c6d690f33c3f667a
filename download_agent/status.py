"""Each image's sync state as `relay images` shows it (status.json) and as the cloud
receives it (`ImageReport`): pure formatting of what the syncer tracks."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from relay.sync.images import CachedImage, ImageReport, ImageState

MAX_REASON = 512
RATE_WINDOW = 2.0


@dataclass(frozen=True, slots=True)
class Progress:
    """One sha256's state: synced, syncing (with bytes so far) or failed (with why)."""

    status: str = "syncing"
    bytes_done: int = 0
    rate_bps: float = 0.0
    reason: str = ""


@dataclass(slots=True)
class RateMeter:
    """Bytes/s averaged over about `RATE_WINDOW` seconds; pure, `now` is passed in."""

    rate: float = 0.0
    stamp: float | None = None
    count: int = 0

    def update(self, count: int, now: float) -> float:
        if self.stamp is None or count < self.count:
            self.stamp, self.count, self.rate = now, count, 0.0
            return self.rate
        elapsed = now - self.stamp
        if elapsed >= RATE_WINDOW / 8:
            sample = (count - self.count) / elapsed
            weight = min(1.0, elapsed / RATE_WINDOW)
            self.rate += (sample - self.rate) * weight
            self.stamp, self.count = now, count
        return self.rate


def _progress(image: CachedImage, state: Progress) -> float:
    if state.status == "synced":
        return 1.0
    return min(1.0, state.bytes_done / image.size)


def _state(image: CachedImage, progress: Mapping[str, Progress]) -> Progress:
    return progress.get(image.sha256, Progress())


def document(
    images: Sequence[CachedImage],
    progress: Mapping[str, Progress],
    free_bytes: int,
    reserve_bytes: int,
    now: float,
) -> dict[str, Any]:
    """status.json: what `relay images` lists, one entry per image of the set."""
    entries = []
    for image in images:
        state = _state(image, progress)
        entries.append(
            {
                "id": image.id,
                "model": image.model,
                "version": image.version,
                "filename": image.filename,
                "size": image.size,
                "status": state.status,
                "progress": round(_progress(image, state), 4),
                "bytes_done": image.size if state.status == "synced" else state.bytes_done,
                "rate_bps": round(state.rate_bps) if state.status == "syncing" else 0,
                "reason": state.reason[:MAX_REASON],
            }
        )
    return {
        "images": entries,
        "free_bytes": free_bytes,
        "reserve_bytes": reserve_bytes,
        "updated": round(now, 3),
    }


def report(
    images: Sequence[CachedImage],
    progress: Mapping[str, Progress],
    free_bytes: int,
    reserve_bytes: int,
) -> ImageReport:
    """`PUT /agent/images/status`: the same states, as the cloud's wire model."""
    states = tuple(
        ImageState(
            image.id,
            _state(image, progress).status,
            _progress(image, _state(image, progress)),
            _state(image, progress).reason[:MAX_REASON],
        )
        for image in images
    )
    return ImageReport(states, free_bytes, reserve_bytes)
