"""Publish a file into a download-agent store, as the agent does (download_agent.store).

The relay serves firmware only from `<root>/blobs/<sha256>` listed in `<root>/index.json`
(relay.frontend.firmware.PublishedImages). The benchmarks put their test files there the
same way; the blob is a hard link of the file (no copy of 200 MB), so a peer server can
serve the very same inode under a plain name.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from relay.sync.images import BLOBS, INDEX_FILE, CachedImage, index_bytes, parse_index


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def publish_file(
    root: Path,
    path: Path,
    *,
    filename: str,
    model: str = "VVX",
    version: str = "6.4.3",
) -> CachedImage:
    """List PATH in ROOT's index under FILENAME (id: its sha256's first 16 hex digits)."""
    sha256 = sha256_of(path)
    image = CachedImage(sha256[:16], model, version, filename, path.stat().st_size, sha256)
    (root / BLOBS).mkdir(parents=True, exist_ok=True, mode=0o755)
    blob = root / BLOBS / sha256
    if not blob.exists():
        os.link(path, blob)
    index = root / INDEX_FILE
    known = parse_index(index.read_bytes()) if index.exists() else ()
    kept = tuple(i for i in known if i.id != image.id)
    tmp = index.with_suffix(".tmp")
    tmp.write_bytes(index_bytes((*kept, image)))
    tmp.replace(index)
    return image
