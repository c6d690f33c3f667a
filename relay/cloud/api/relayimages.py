"""Administrators' routes for the tenant's relay image set and each relay's copy of it
(cloud.md "Software"): choose the set, watch a relay sync it, ask it to sync now."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from relay.cloud.api.auth import WORKER, actor
from relay.cloud.api.bodies import ok, read_json
from relay.cloud.api.openapi import INT, STR, STR_LIST, STR_OR_NULL, Route, Schema, obj
from relay.cloud.api.relaycerts import SUMMARY
from relay.sync.images import IMAGE_STATES

API = "/api/v1"

SET: Schema = obj(images=STR_LIST, count=INT, bytes=INT, max_images=INT, max_bytes=INT)
STATE: Schema = obj(
    image=STR,
    status={"type": "string", "enum": list(IMAGE_STATES)},
    progress={"type": "number", "minimum": 0, "maximum": 1},
    reason=STR,
    updated=STR_OR_NULL,
)
DISK: Schema = obj(
    free_bytes={"type": ["integer", "null"]},
    reserve_bytes={"type": ["integer", "null"]},
    reported=STR_OR_NULL,
    sync=INT,
    synced=INT,
    syncing=INT,
    failed=INT,
)


async def get_set(request: web.Request) -> web.Response:
    worker = request.app[WORKER]
    return ok(await worker.call(worker.plane.relay_images.current))


async def put_set(request: web.Request) -> web.Response:
    """The body's shape is checked by the rules (400 malformed, 422 over the limits)."""
    body = await read_json(request)
    worker = request.app[WORKER]
    return ok(await worker.call(worker.plane.relay_images.set_images, body, actor(request)))


async def relay_images(request: web.Request) -> web.Response:
    worker = request.app[WORKER]
    relay_id = request.match_info["id"]
    return ok(await worker.call(worker.plane.relay_images.relay_images, relay_id))


async def sync_images(request: web.Request) -> web.Response:
    worker = request.app[WORKER]
    relay_id = request.match_info["id"]
    sync = await worker.call(worker.plane.relay_images.request_sync, relay_id, actor(request))
    return ok({"sync": sync}, 202)


async def get_relay(request: web.Request) -> web.Response:
    """One relay with its link status and, under `images`, its room for images; under
    `certificate`, the state of its uploaded certificate (issue 7)."""
    worker = request.app[WORKER]
    plane = worker.plane
    relay_id = request.match_info["id"]

    def read() -> dict[str, Any]:
        return {
            **plane.relays.get(relay_id),
            "images": plane.relay_images.disk(relay_id),
            "certificate": plane.relay_certs.summary(relay_id),
        }

    return ok(await worker.call(read))


ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        f"{API}/relay-images",
        get_set,
        "The tenant's relay image set: what every relay keeps (at most 40 images, 30 GB)",
        "images",
        response=SET,
    ),
    Route(
        "PUT",
        f"{API}/relay-images",
        put_set,
        "Set the relay image set, in order: 404 names an unknown image; 422 too_many_images "
        "or too_large says the limit; nothing changes when refused",
        "images",
        request=STR_LIST,
        response=SET,
    ),
    Route(
        "GET",
        f"{API}/relays/{{id}}",
        get_relay,
        "One relay with its link status, its room for images and its certificate state",
        "relays",
        response={"type": "object", "properties": {"images": DISK, "certificate": SUMMARY}},
    ),
    Route(
        "GET",
        f"{API}/relays/{{id}}/images",
        relay_images,
        "Each image of the set on this relay: synced, syncing (with progress) or failed "
        "(with the reason), from its download agent's latest report",
        "images",
        response={"type": "array", "items": STATE},
    ),
    Route(
        "POST",
        f"{API}/relays/{{id}}/images/sync",
        sync_images,
        "Sync images: the relay's agent re-checks at once and retries failed images",
        "images",
        response=obj(sync=INT),
        status=202,
    ),
)
