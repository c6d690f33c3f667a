"""Administrators' routes for relays, the registration PIN and the dashboard
(cloud.md "Tenant, relays and PIN", "Device monitor")."""

from __future__ import annotations

from aiohttp import web

from relay.cloud.api.auth import WORKER, actor, principal_of
from relay.cloud.api.bodies import ok
from relay.cloud.api.errors import ApiError
from relay.cloud.api.openapi import Route, list_of, ref

API = "/api/v1"


async def list_relays(request: web.Request) -> web.Response:
    worker = request.app[WORKER]
    return ok(await worker.call(worker.plane.relays.listing))


async def delete_relay(request: web.Request) -> web.Response:
    worker = request.app[WORKER]
    await worker.call(worker.plane.relays.delete, request.match_info["id"], actor(request))
    return web.Response(status=204)


async def get_pin(request: web.Request) -> web.Response:
    """Only full administrators see the PIN: it lets a relay join the tenant."""
    if not principal_of(request).can_write:
        raise ApiError(403, "read_only", "the PIN is shown to full administrators only")
    worker = request.app[WORKER]
    return ok(await worker.call(worker.plane.relays.pin))


async def reset_pin(request: web.Request) -> web.Response:
    worker = request.app[WORKER]
    return ok(await worker.call(worker.plane.relays.reset_pin, actor(request)))


async def dashboard(request: web.Request) -> web.Response:
    worker = request.app[WORKER]
    return ok(await worker.call(worker.plane.monitor.dashboard))


ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        f"{API}/relays",
        list_relays,
        "Registered relays with their link status (inactive after 10 minutes silent)",
        "relays",
        response=list_of("Relay"),
    ),
    Route(
        "DELETE",
        f"{API}/relays/{{id}}",
        delete_relay,
        "Revoke a relay's registration",
        "relays",
        status=204,
    ),
    Route(
        "GET",
        f"{API}/tenant/pin",
        get_pin,
        "The relay registration PIN (full administrators only)",
        "relays",
        response=ref("Pin"),
    ),
    Route(
        "POST",
        f"{API}/tenant/pin/reset",
        reset_pin,
        "New PIN; the old one works 24 more hours; 409 within 24 hours of the last reset",
        "relays",
        response=ref("Pin"),
    ),
    Route(
        "GET",
        f"{API}/dashboard",
        dashboard,
        "Online and total devices, by type, site, group and model",
        "monitor",
        response=ref("Dashboard"),
    ),
)
