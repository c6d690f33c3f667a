"""The download agent's routes under /api/v1/agent/images (docs/agent-link.md "Images").

The agent long-polls its image set with `If-None-Match`: the cloud answers at once
when the set's etag differs, else waits up to `wait` seconds for a change (the
set, a deleted image, this relay's sync counter) and answers 304 if none came.
A change wakes the poll through the service's `SetWatchers`; shutdown answers it
through the app's long-poll wake-up (`JOB_SIGNAL`), which releases every waiting
poll when the server stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable

from aiohttp import web

from relay.cloud.api.agents import AGENT, message
from relay.cloud.api.auth import WORKER, relay_of
from relay.cloud.api.bodies import int_query, ok
from relay.cloud.api.openapi import INT, STR, Route, Schema, obj
from relay.cloud.api.tasks import JOB_SIGNAL
from relay.sync.images import ImageReport
from relay.webfiles import send_file

MAX_WAIT = 60
MAX_ETAG_HEADER = 256
_POLLS = itertools.count()

_IMAGE: Schema = obj(id=STR, model=STR, version=STR, filename=STR, size=INT, sha256=STR, url=STR)
IMAGE_SET: Schema = obj(etag=STR, images={"type": "array", "items": _IMAGE}, sync=INT)
IMAGE_REPORT: Schema = obj(
    states={
        "type": "array",
        "items": obj(
            image=STR,
            status={"type": "string", "enum": ["synced", "syncing", "failed"]},
            progress={"type": "number", "minimum": 0, "maximum": 1},
            reason=STR,
        ),
    },
    free_bytes=INT,
    reserve_bytes=INT,
)


def _known_etag(request: web.Request) -> str | None:
    """The etag of `If-None-Match` (RFC 9110 section 13.1.2), quotes and weakness dropped."""
    raw = request.headers.get("If-None-Match", "").strip()
    if not raw or len(raw) > MAX_ETAG_HEADER:
        return None
    return raw.removeprefix("W/").strip('"')


def _waker(loop: asyncio.AbstractEventLoop, wake: asyncio.Event) -> Callable[[], None]:
    """Called on the control plane's worker thread; the loop may already be closing."""

    def notify() -> None:
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(wake.set)

    return notify


def _answer(image_set_wire: dict[str, object], etag: str, changed: bool) -> web.Response:
    headers = {"ETag": f'"{etag}"'}
    if not changed:
        return web.Response(status=304, headers=headers)
    response = ok(image_set_wire)
    response.headers.update(headers)
    return response


async def image_set(request: web.Request) -> web.Response:
    relay_id = relay_of(request)
    wait = int_query(request, "wait", 0, 0, MAX_WAIT)
    known = _known_etag(request)
    worker = request.app[WORKER]
    service = worker.plane.relay_images
    signal = request.app[JOB_SIGNAL]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    # A key of its own in the app's wake-up registry: set on shutdown, dropped at the end.
    key = f"images/{relay_id}/{next(_POLLS)}"
    wake = signal.current(key)
    token = service.watchers.add(relay_id, _waker(loop, wake))
    try:
        while True:
            wake.clear()
            current = await worker.call(service.image_set, relay_id)
            remaining = deadline - loop.time()
            if current.etag != known or remaining <= 0 or signal.closing:
                return _answer(current.to_wire(), current.etag, current.etag != known)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await wake.wait()
    finally:
        service.watchers.remove(token)
        signal.notify([key])


async def image_content(request: web.Request) -> web.StreamResponse:
    """The stored bytes, with Range and the sha256 as ETag, so an agent resumes."""
    worker = request.app[WORKER]
    path, sha256 = await worker.call(
        worker.plane.relay_images.content_path, request.match_info["id"]
    )
    return await send_file(request, path, etag=sha256)


async def image_status(request: web.Request) -> web.Response:
    report = await message(request, ImageReport.from_wire)
    worker = request.app[WORKER]
    etag = await worker.call(worker.plane.relay_images.receive_report, relay_of(request), report)
    return ok({"etag": etag})


ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        f"{AGENT}/images",
        image_set,
        "The relay image set with its ETag; with If-None-Match equal to it, waits up to "
        "`wait` seconds for a change and answers 304 if none came",
        "agent",
        response=IMAGE_SET,
        query=(("wait", "integer", f"seconds to wait for a change, 0-{MAX_WAIT} (default 0)"),),
        security="relay",
    ),
    Route(
        "GET",
        f"{AGENT}/images/{{id}}/content",
        image_content,
        "The stored bytes of an image of the set, with Range and ETag (its sha256)",
        "agent",
        response={"type": "string", "format": "binary"},
        response_type="application/octet-stream",
        security="relay",
    ),
    Route(
        "PUT",
        f"{AGENT}/images/status",
        image_status,
        "The download agent's state of each image and its disk room; answers the set's etag",
        "agent",
        request=IMAGE_REPORT,
        response=obj(etag=STR),
        security="relay",
    ),
)
