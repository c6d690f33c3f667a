"""The content store under `<data-dir>/images/`, in the layout the relay's front end
reads (issue 6):

    blobs/<sha256>          verified bytes, mode 0444, renamed in only after
                            size and sha256 were checked and the file fsynced
    partial/<sha256>.part   the bytes of a download so far
    index.json              relay.sync.images.index_bytes(published images),
                            replaced atomically (tmp, fsync, rename, fsync dir)
    status.json             what `relay images` shows

A phone therefore sees the whole verified file or nothing, whatever moment the
agent is killed at. Readers hold `flock(LOCK_SH)` on a blob while serving it; the
store deletes a blob only after taking `LOCK_EX | LOCK_NB` on it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from relay.sync.images import BLOBS, INDEX_FILE, CachedImage, index_bytes, parse_index
from relay.sync.messages import SyncError

PARTIAL = "partial"
STATUS = "status.json"
PART_SUFFIX = ".part"
TMP_SUFFIX = ".tmp"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (POSIX: the directory entry lives in the dir)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _replace(path: Path, data: bytes, *, durable: bool) -> None:
    tmp = path.with_name(path.name + TMP_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)
    if durable:
        fsync_dir(path.parent)


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs_dir = root / BLOBS
        self.partial_dir = root / PARTIAL
        self.index_path = root / INDEX_FILE
        self.status_path = root / STATUS
        self._index: bytes | None = None

    def open(self) -> None:
        """Create the layout; drop temporary files a killed run left behind."""
        for path in (self.root, self.blobs_dir, self.partial_dir):
            path.mkdir(parents=True, exist_ok=True, mode=0o755)
        for leftover in self.root.glob("*" + TMP_SUFFIX):
            leftover.unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self._index = self.index_path.read_bytes()

    def blob_path(self, sha256: str) -> Path:
        return self.blobs_dir / sha256

    def partial_path(self, sha256: str) -> Path:
        return self.partial_dir / (sha256 + PART_SUFFIX)

    def blobs(self) -> dict[str, int]:
        """sha256 -> size of every blob on disk."""
        found = {}
        for entry in os.scandir(self.blobs_dir):
            if _SHA256.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                found[entry.name] = entry.stat(follow_symlinks=False).st_size
        return found

    def partials(self) -> set[str]:
        names = (e.name for e in os.scandir(self.partial_dir))
        return {n[: -len(PART_SUFFIX)] for n in names if n.endswith(PART_SUFFIX)}

    def free_bytes(self) -> int:
        """Space an unprivileged writer may still use (statvfs f_bavail * f_frsize)."""
        stats = os.statvfs(self.root)
        return stats.f_bavail * stats.f_frsize

    def published(self) -> tuple[CachedImage, ...]:
        """What index.json names now; nothing when it is absent or unreadable."""
        try:
            return parse_index(self.index_path.read_bytes())
        except (OSError, SyncError):
            return ()

    def write_index(self, images: Sequence[CachedImage]) -> bool:
        """Publish exactly `images`; False when the index already said so."""
        data = index_bytes(images)
        if data == self._index:
            return False
        _replace(self.index_path, data, durable=True)
        self._index = data
        return True

    def write_status(self, document: dict[str, Any]) -> None:
        """status.json for `relay images`; atomic, not fsynced: it is rewritten often and
        a lost update after a crash is replaced at the next start."""
        _replace(self.status_path, json.dumps(document, sort_keys=True).encode(), durable=False)

    def publish(self, sha256: str) -> None:
        """Move a verified, fsynced partial into blobs/ (read-only) and make it durable."""
        part = self.partial_path(sha256)
        part.chmod(0o444)
        part.replace(self.blob_path(sha256))
        fsync_dir(self.blobs_dir)
        fsync_dir(self.partial_dir)

    def remove_blob(self, sha256: str) -> bool:
        """Delete a blob no reader holds; False (try again later) while one does."""
        try:
            fd = os.open(self.blob_path(sha256), os.O_RDONLY)
        except FileNotFoundError:
            return True
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            self.blob_path(sha256).unlink(missing_ok=True)
            return True
        finally:
            os.close(fd)

    def remove_partial(self, sha256: str) -> None:
        self.partial_path(sha256).unlink(missing_ok=True)
