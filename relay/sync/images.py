"""The relay image set (cloud.md "Software"; docs/agent-link.md, "Images").

The cloud tells each relay's download agent which images to keep (`ImageSet`);
the agent answers with one state per image (`ImageReport`) and publishes the
verified ones in a local index (`PublishedImage`, `parse_index`) that the relay's
front end serves from. All three have one definition here. Every parser takes
decoded JSON or raw bytes from the network or disk, enforces hard caps and
raises only `SyncError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from relay.sync.messages import SyncError, _list, _obj

# cloud.md "Software": at most 40 images and 30 GB in total per tenant's relay set.
MAX_SET_IMAGES = 40
MAX_SET_BYTES = 30 * 10**9
MAX_IMAGE_BYTES = 4 * 2**30
MAX_INDEX_BYTES = 256 * 1024
IMAGE_STATES = ("synced", "syncing", "failed")
INDEX_FORMAT = 1

_ID = re.compile(r"[0-9a-f]{8,64}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_WORD = re.compile(r"[0-9A-Za-z][0-9A-Za-z.\-_]{0,63}")
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9.\-_]{0,127}")
_URL = re.compile(r"https?://[^\s\\]{1,1000}")
_REASON = 512


def _match(raw: Mapping[str, Any], key: str, where: str, pattern: re.Pattern[str]) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or pattern.fullmatch(value) is None:
        raise SyncError(f"{where}.{key} is missing or malformed")
    return value


def _int(raw: Mapping[str, Any], key: str, where: str, low: int, high: int) -> int:
    value = raw.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SyncError(f"{where}.{key} must be a whole number from {low} to {high}")
    return value


@dataclass(frozen=True, slots=True)
class CachedImage:
    """One image a relay must keep. `url` empty means the cloud's own content route."""

    id: str
    model: str
    version: str
    filename: str
    size: int
    sha256: str
    url: str = ""

    @classmethod
    def from_wire(cls, raw: object, where: str = "image") -> CachedImage:
        r = _obj(raw, where)
        url = r.get("url", "")
        if url != "" and (not isinstance(url, str) or _URL.fullmatch(url) is None):
            raise SyncError(f"{where}.url must be an http(s) URL or empty")
        return cls(
            id=_match(r, "id", where, _ID),
            model=_match(r, "model", where, _WORD),
            version=_match(r, "version", where, _WORD),
            filename=_match(r, "filename", where, _FILENAME),
            size=_int(r, "size", where, 1, MAX_IMAGE_BYTES),
            sha256=_match(r, "sha256", where, _SHA256),
            url=str(url),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "filename": self.filename,
            "size": self.size,
            "sha256": self.sha256,
            "url": self.url,
        }


@dataclass(frozen=True, slots=True)
class ImageSet:
    """`GET /api/v1/agent/images`: the tenant's relay image set as one relay sees it.

    `sync` grows each time an admin asks this relay to "sync images": the agent then
    retries failed images at once instead of waiting out its backoff.
    """

    etag: str
    images: tuple[CachedImage, ...]
    sync: int = 0

    @classmethod
    def from_wire(cls, raw: object) -> ImageSet:
        r = _obj(raw, "image_set")
        etag = r.get("etag")
        if not isinstance(etag, str) or not 0 < len(etag) <= 128:
            raise SyncError("image_set.etag must be 1 to 128 characters")
        items = _list(r.get("images"), "image_set.images", MAX_SET_IMAGES)
        images = tuple(
            CachedImage.from_wire(item, f"image_set.images[{i}]") for i, item in enumerate(items)
        )
        if len({image.id for image in images}) != len(images):
            raise SyncError("image_set.images names one image twice")
        return cls(etag, images, _int(r, "sync", "image_set", 0, 2**62))

    def to_wire(self) -> dict[str, Any]:
        return {"etag": self.etag, "images": [i.to_wire() for i in self.images], "sync": self.sync}


@dataclass(frozen=True, slots=True)
class ImageState:
    """One image on one relay: `GET /api/v1/relays/{id}/images` shows these."""

    image: str
    status: str
    progress: float
    reason: str = ""

    @classmethod
    def from_wire(cls, raw: object, where: str = "state") -> ImageState:
        r = _obj(raw, where)
        status = r.get("status")
        if status not in IMAGE_STATES:
            raise SyncError(f"{where}.status must be one of {', '.join(IMAGE_STATES)}")
        progress = r.get("progress")
        if isinstance(progress, bool) or not isinstance(progress, (int, float)):
            raise SyncError(f"{where}.progress must be a number from 0 to 1")
        if not 0 <= progress <= 1:
            raise SyncError(f"{where}.progress must be a number from 0 to 1")
        reason = r.get("reason", "")
        if not isinstance(reason, str) or len(reason) > _REASON:
            raise SyncError(f"{where}.reason must be text of at most {_REASON} characters")
        return cls(_match(r, "image", where, _ID), str(status), float(progress), reason)

    def to_wire(self) -> dict[str, Any]:
        return {
            "image": self.image,
            "status": self.status,
            "progress": round(self.progress, 4),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class ImageReport:
    """`PUT /api/v1/agent/images/status`: every image of the set, and the disk's room."""

    states: tuple[ImageState, ...]
    free_bytes: int
    reserve_bytes: int

    @classmethod
    def from_wire(cls, raw: object) -> ImageReport:
        r = _obj(raw, "report")
        items = _list(r.get("states"), "report.states", MAX_SET_IMAGES)
        return cls(
            tuple(ImageState.from_wire(s, f"report.states[{i}]") for i, s in enumerate(items)),
            _int(r, "free_bytes", "report", 0, 2**62),
            _int(r, "reserve_bytes", "report", 0, 2**62),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "states": [s.to_wire() for s in self.states],
            "free_bytes": self.free_bytes,
            "reserve_bytes": self.reserve_bytes,
        }


# -- the published index ---------------------------------------------------------
#
# `<data-dir>/images/index.json` lists the images whose bytes were verified and
# published as `<data-dir>/images/blobs/<sha256>`. The download agent replaces it
# atomically; the front end serves only what it names.

INDEX_FILE = "index.json"
BLOBS = "blobs"


def index_bytes(images: Sequence[CachedImage]) -> bytes:
    """The index file for `images`, ready to be written and renamed into place."""
    body = {"format": INDEX_FORMAT, "images": [i.to_wire() for i in images]}
    return json.dumps(body, indent=1, sort_keys=True).encode() + b"\n"


def parse_index(data: bytes) -> tuple[CachedImage, ...]:
    """The published images an index file names."""
    if len(data) > MAX_INDEX_BYTES:
        raise SyncError(f"the image index is {len(data)} bytes; at most {MAX_INDEX_BYTES}")
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SyncError(f"the image index is not JSON: {exc}") from None
    r = _obj(raw, "index")
    if r.get("format") != INDEX_FORMAT:
        raise SyncError(f"the image index format must be {INDEX_FORMAT}")
    items = _list(r.get("images"), "index.images", MAX_SET_IMAGES)
    return tuple(CachedImage.from_wire(item, f"index.images[{i}]") for i, item in enumerate(items))
