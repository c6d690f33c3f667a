"""The tenant's relay image set and what a relay says about it (cloud.md "Software";
docs/agent-link.md "Images").

Pure: the limits check, the etag an agent's long-poll compares, and the per-relay
view an admin reads. The service (relay.cloud.relayimages) feeds them rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from relay.cloud.rules.errors import RuleError
from relay.sync.images import MAX_SET_BYTES, MAX_SET_IMAGES, CachedImage

MAX_ID_CHARS = 64
WAITING = "waiting for the relay's download agent"


def parse_set_body(raw: object) -> tuple[str, ...]:
    """`PUT /api/v1/relay-images`: a list of image ids in the order kept. A body of another
    shape is 400; naming one image twice is 422 (the admin meant something else)."""
    if not isinstance(raw, list):
        raise RuleError("invalid_body", "the body must be a list of image ids", "body", 400)
    for i, item in enumerate(raw):
        if not isinstance(item, str) or not 0 < len(item) <= MAX_ID_CHARS:
            raise RuleError(
                "invalid_body",
                f"item {i} must be an image id (text of 1 to {MAX_ID_CHARS} characters)",
                "body",
                400,
            )
    seen: set[str] = set()
    for image_id in raw:
        if image_id in seen:
            raise RuleError("duplicate_image", f"image {image_id!r} is named twice", "body")
        seen.add(image_id)
    return tuple(raw)


def _gigabytes(size: int) -> str:
    """Rounded up, so a set just over the limit never reads as exactly the limit."""
    return f"{math.ceil(size / 10**7) / 100:.2f} GB"


def check_set(
    ids: Sequence[str], sizes: Mapping[str, int], sourceless: Collection[str] = ()
) -> int:
    """cloud.md "Software": at most 40 images and 30 GB in total. `sizes` holds every
    known image among `ids`; an unknown one is 404 naming it. An image in `sourceless`
    (registered with neither a file nor a URL) no relay could fetch: refused too.
    Returns the total bytes."""
    if len(ids) > MAX_SET_IMAGES:
        raise RuleError(
            "too_many_images",
            f"the relay set may hold at most {MAX_SET_IMAGES} images; this one has {len(ids)}",
            "body",
        )
    for image_id in ids:
        if image_id not in sizes:
            raise RuleError("not_found", f"image {image_id!r} does not exist", "body", 404)
    for image_id in ids:
        if image_id in sourceless:
            raise RuleError(
                "no_source",
                f"image {image_id!r} has neither an uploaded file nor a URL, so no relay "
                "could fetch it: upload the file, or register the image again with its url",
                "body",
            )
    total = sum(sizes[image_id] for image_id in ids)
    if total > MAX_SET_BYTES:
        raise RuleError(
            "too_large",
            f"the relay set may hold at most {MAX_SET_BYTES // 10**9} GB; "
            f"these images total {_gigabytes(total)}",
            "body",
        )
    return total


def set_summary(ids: Sequence[str], total: int) -> dict[str, Any]:
    """What `GET` and `PUT /api/v1/relay-images` answer."""
    return {
        "images": list(ids),
        "count": len(ids),
        "bytes": total,
        "max_images": MAX_SET_IMAGES,
        "max_bytes": MAX_SET_BYTES,
    }


def cached_image(row: Mapping[str, Any]) -> CachedImage:
    """An image as the agent fetches it: an empty `url` sends it to the cloud's content
    route (uploaded images); a registered URL is used only when the cloud has no copy."""
    return CachedImage(
        id=row["id"],
        model=row["model"],
        version=row["version"],
        filename=row["filename"],
        size=row["size"],
        sha256=row["sha256"],
        url="" if row["stored"] else row["url"],
    )


def set_etag(images: Sequence[CachedImage], sync: int) -> str:
    """Changes with any fact of any image, their order, or the relay's sync counter, so
    one comparison tells the agent whether anything it acts on changed."""
    facts = {"images": [image.to_wire() for image in images], "sync": sync}
    text = json.dumps(facts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _iso(when: float | None) -> str | None:
    if when is None:
        return None
    return dt.datetime.fromtimestamp(when, dt.UTC).isoformat(timespec="seconds")


def relay_view(ids: Sequence[str], states: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """`GET /api/v1/relays/{id}/images`: one entry per image of the set, in set order,
    from the relay's latest report; an image it has not reported yet is syncing."""
    out: list[dict[str, Any]] = []
    for image_id in ids:
        state = states.get(image_id)
        if state is None:
            out.append(
                {
                    "image": image_id,
                    "status": "syncing",
                    "progress": 0.0,
                    "reason": WAITING,
                    "updated": None,
                }
            )
            continue
        out.append(
            {
                "image": image_id,
                "status": state["status"],
                "progress": state["progress"],
                "reason": state["reason"],
                "updated": _iso(state["updated"]),
            }
        )
    return out


def disk_view(row: Mapping[str, Any] | None, view: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The `images` key of `GET /api/v1/relays/{id}`: the relay's room for images (from
    its latest report) and how many images of the set are in each state."""
    counts = {status: 0 for status in ("synced", "syncing", "failed")}
    for entry in view:
        counts[entry["status"]] += 1
    return {
        "free_bytes": None if row is None else row["free_bytes"],
        "reserve_bytes": None if row is None else row["reserve_bytes"],
        "reported": None if row is None else _iso(row["reported"]),
        "sync": 0 if row is None else row["sync"],
        **counts,
    }
