"""The firmware the relay serves from its own disk: the download agent's published images.

The download agent (download_agent.store) verifies each image's size and sha256,
stores it once per content as `<root>/blobs/<sha256>` and lists it in
`<root>/index.json` (relay.sync.images). Only what the index names is served,
under the names phones ask for (issue 6, "Serving"):

- `images/<id>/<file>`: the path the cloud writes into APP_FILE_PATH when a
  site's download path points at this relay (relay.cloud.rules.provisioning.
  image_path), where `<file>` is the image's file name, or that name with the
  phone's part number in front (phones.md section 3: `3111-44500-001.sip.ld`);
- `<file>` or `<part>.<file>` at the root: an APP_FILE_PATH of just `sip.ld`.
  Served when exactly one published image fits (same file name, and the model
  family of the part number when it is known); otherwise the cloud decides.

Anything else is relayed to the cloud, which also answers for an image that is
not published here yet (architecture.md, data flow 1). A reader holds a shared
`flock` on the blob while serving it, so the agent never deletes an image that
is being sent (download_agent.store takes the exclusive lock before unlinking).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from relay.logs import event
from relay.proto.polycom.models import PART_NUMBERS
from relay.sync.images import BLOBS, INDEX_FILE, CachedImage, parse_index
from relay.sync.messages import SyncError

log = logging.getLogger("relay.images")

FIRMWARE_SUFFIXES = (".ld", ".bin", ".tar", ".img")
IMAGES_PREFIX = "images/"

_PART = re.compile(r"([0-9]{4}-[0-9]{5}-[0-9]{3})\.(.+)")
_FAMILY = re.compile(r"[A-Za-z]+")


def _family(model: str) -> str:
    """ "VVX500" -> "VVX": a part number's model against an image's model family."""
    found = _FAMILY.match(model)
    return found.group().upper() if found else ""


_PART_FAMILY = {part: _family(model) for model, part in PART_NUMBERS.items()}


def resolve(images: tuple[CachedImage, ...], name: str) -> CachedImage | None:
    """The published image that request path `name` names, or None to relay it."""
    relative = name.lstrip("/")
    if "\\" in relative or "\0" in relative or ".." in relative.split("/"):
        return None
    if relative.startswith(IMAGES_PREFIX):
        image_id, _, file = relative[len(IMAGES_PREFIX) :].partition("/")
        for image in images:
            if image.id == image_id and _names(file, image) is not None:
                return image
        return None
    if "/" in relative:
        return None
    fitting = [image for image in images if _fits(relative, image)]
    return fitting[0] if len(fitting) == 1 else None


def _names(file: str, image: CachedImage) -> str | None:
    """The part number `file` carries for `image` ("" for none); None if it is not the image."""
    if file == image.filename:
        return ""
    prefixed = _PART.fullmatch(file)
    if prefixed is not None and prefixed.group(2) == image.filename:
        return prefixed.group(1)
    return None


def _fits(file: str, image: CachedImage) -> bool:
    part = _names(file, image)
    if part is None:
        return False
    family = _PART_FAMILY.get(part)
    return family is None or family == _family(image.model)


@dataclass(frozen=True, slots=True)
class Published:
    """A published image and where its verified bytes are."""

    image: CachedImage
    path: Path


class PublishedImages:
    """The download agent's index, re-read whenever the agent replaces it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._stamp: tuple[int, int, int] | None = None
        self._images: tuple[CachedImage, ...] = ()

    def images(self) -> tuple[CachedImage, ...]:
        """What the index lists now (empty when there is none or it is unreadable)."""
        index = self.root / INDEX_FILE
        try:
            info = index.stat()
        except OSError:
            self._stamp, self._images = None, ()
            return ()
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._images = parse_index(index.read_bytes())
            except (OSError, SyncError) as exc:
                event(log, "image_index_unreadable", logging.ERROR, error=str(exc))
                self._images = ()
        return self._images

    def find(self, name: str) -> Published | None:
        """The published image for request path `name`, or None to relay the request."""
        image = resolve(self.images(), name)
        if image is None:
            return None
        return Published(image, self.root / BLOBS / image.sha256)

    def open(self, name: str) -> tuple[int, CachedImage] | None:
        """A read-only descriptor of the image's blob, holding a shared lock until closed."""
        found = self.find(name)
        if found is None:
            return None
        try:
            fd = os.open(found.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            if os.fstat(fd).st_size != found.image.size:
                os.close(fd)
                return None
        except BaseException:
            os.close(fd)
            raise
        return fd, found.image
