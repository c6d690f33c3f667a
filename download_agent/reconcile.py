"""What the store must do to match an image set: pure decisions, no file system.

Content-addressed (issue 6): images are keyed by sha256, so two images with the
same bytes share one blob and one download. A blob counts only if its size is
the image's size: blobs are verified before they are renamed into place, so a
size mismatch means damage, never a download in progress.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from relay.sync.images import CachedImage


@dataclass(frozen=True, slots=True)
class Plan:
    """`published`: set images servable now, in set order; `missing`: one image per
    sha256 still to download, in set order; `drop_blobs` / `drop_partials`: sha256s
    whose files must go (blobs only once no reader holds them)."""

    published: tuple[CachedImage, ...]
    missing: tuple[CachedImage, ...]
    drop_blobs: tuple[str, ...]
    drop_partials: tuple[str, ...]


def plan(
    images: Sequence[CachedImage], blobs: Mapping[str, int], partials: Collection[str]
) -> Plan:
    """Match `images` (the set) against `blobs` (sha256 -> size on disk) and `partials`."""
    present = {i.sha256 for i in images if blobs.get(i.sha256) == i.size}
    published = tuple(i for i in images if i.sha256 in present)
    missing: dict[str, CachedImage] = {}
    for image in images:
        if image.sha256 not in present:
            missing.setdefault(image.sha256, image)
    drop_blobs = tuple(sorted(sha for sha in blobs if sha not in present))
    drop_partials = tuple(sorted(sha for sha in partials if sha not in missing))
    return Plan(published, tuple(missing.values()), drop_blobs, drop_partials)
