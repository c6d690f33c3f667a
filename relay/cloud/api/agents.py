"""The agent link's routes under /api/v1/agent/ (docs/agent-link.md, the contract).

Bodies are the messages of relay.sync.messages, checked by their `from_wire`:
a malformed one is a 400 that names the field. Agent bodies may be up to
8 MiB, as screen captures travel base64-encoded inside job results.
Every route but registration is authenticated by `auth.relay_of`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

from aiohttp import web

from relay.cloud.api.auth import WORKER, relay_of
from relay.cloud.api.bodies import ok, read_json
from relay.cloud.api.errors import ApiError, error_response
from relay.cloud.api.openapi import INT, Route, obj, ref
from relay.cloud.relays import RegistrationThrottled
from relay.sync.messages import Heartbeat, Registration, ReportBatch, SyncError

AGENT = "/api/v1/agent"
MAX_AGENT_BYTES = 8 * 1024 * 1024

M = TypeVar("M")


async def message(request: web.Request, parse: Callable[[object], M]) -> M:
    """The body as one agent-link message: 413 over the cap, 400 if it is not valid JSON
    or breaks the message format (with SyncError's text, which names the field)."""
    value = await read_json(request, MAX_AGENT_BYTES)
    try:
        return parse(value)
    except SyncError as exc:
        raise ApiError(400, "invalid_message", str(exc), "body") from exc


async def register(request: web.Request) -> web.Response:
    registration = await message(request, Registration.from_wire)
    worker = request.app[WORKER]
    try:
        credential = await worker.call(
            worker.plane.relays.register, registration, request.remote or "-"
        )
    except RegistrationThrottled as exc:
        response = error_response(exc.status, exc.code, exc.message)
        response.headers["Retry-After"] = str(math.ceil(exc.retry_after))
        return response
    return ok(credential.to_wire(), 201)


async def heartbeat(request: web.Request) -> web.Response:
    beat = await message(request, Heartbeat.from_wire)
    worker = request.app[WORKER]
    settings = await worker.call(
        worker.plane.relays.heartbeat, relay_of(request), beat, request.remote
    )
    return ok(settings.to_wire())


async def watchlist(request: web.Request) -> web.Response:
    worker = request.app[WORKER]
    return ok((await worker.call(worker.plane.monitor.watchlist, relay_of(request))).to_wire())


async def reports(request: web.Request) -> web.Response:
    batch = await message(request, ReportBatch.from_wire)
    worker = request.app[WORKER]
    plane = worker.plane
    acked = await worker.call(
        plane.relays.receive_reports,
        relay_of(request),
        batch,
        plane.tasks.record_result,
        plane.monitor.record,
    )
    return ok({"acked": acked})


ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        f"{AGENT}/register",
        register,
        "Register a relay with the tenant ID and PIN (401 wrong; 429 + Retry-After throttled)",
        "agent",
        request=ref("Registration"),
        response=ref("Credential"),
        status=201,
        public=True,
    ),
    Route(
        "POST",
        f"{AGENT}/heartbeat",
        heartbeat,
        "Heartbeat: version, addresses, uptime, download agent state",
        "agent",
        request=ref("Heartbeat"),
        response=ref("LinkSettings"),
        security="relay",
    ),
    Route(
        "GET",
        f"{AGENT}/devices",
        watchlist,
        "The phones this relay monitors",
        "agent",
        response=ref("Watchlist"),
        security="relay",
    ),
    Route(
        "POST",
        f"{AGENT}/reports",
        reports,
        "Job results and device statuses, each stored once (seq above the last acked)",
        "agent",
        request=ref("ReportBatch"),
        response=obj(acked=INT),
        security="relay",
    ),
)
