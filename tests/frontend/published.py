"""Publish an image the way the download agent does (download_agent.store), for tests of
the front end: the verified blob under `blobs/<sha256>` and an entry in `index.json`."""

from __future__ import annotations

import hashlib
from pathlib import Path

from relay.frontend.firmware import BLOBS, INDEX_FILE
from relay.sync.images import CachedImage, index_bytes, parse_index


def publish(
    root: Path,
    data: bytes,
    *,
    filename: str = "sip.ld",
    model: str = "VVX",
    version: str = "6.4.3",
    image_id: str | None = None,
) -> CachedImage:
    """Add `data` to the published images under `root`; returns its index entry."""
    sha256 = hashlib.sha256(data).hexdigest()
    image = CachedImage(image_id or sha256[:16], model, version, filename, len(data), sha256)
    (root / BLOBS).mkdir(parents=True, exist_ok=True)
    (root / BLOBS / sha256).write_bytes(data)
    index = root / INDEX_FILE
    known = parse_index(index.read_bytes()) if index.exists() else ()
    kept = tuple(i for i in known if i.id != image.id)
    tmp = index.with_suffix(".tmp")
    tmp.write_bytes(index_bytes((*kept, image)))
    tmp.replace(index)
    return image
