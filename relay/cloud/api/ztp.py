"""The zero-touch redirect routes: the partner API under /api/v1/ztp/, the admin
route that issues its key, and the relays' directory sync (phones.md section 1
item 5; docs/agent-link.md "ZTP directory").

The partner API is authenticated by the tenant's `API-KEY` header, not by admin
tokens (auth.py lets /api/v1/ztp/ through to the check here); a missing or wrong
key is a 401 and audited like every other auth failure, without the key.
"""

from __future__ import annotations

from aiohttp import web

from relay.cloud.api.auth import WORKER, _audit_failure, actor
from relay.cloud.api.bodies import json_body, ok
from relay.cloud.api.errors import ApiError
from relay.cloud.api.openapi import INT, STR, Route, Schema, obj

API = "/api/v1"
ZTP = f"{API}/ztp"
PARTNER = "ztp-api"  # the actor of partner API changes in the activity log

PROFILE: Schema = obj(id=STR, name=STR, url=STR, user=STR, password=STR, devices=INT, created=STR)
PROFILE_BODY: Schema = {
    **obj(
        name=STR,
        url={"type": "string", "example": "https://prov.example.com/phones"},
        user=STR,
        password=STR,
    ),
    "required": ["name", "url"],
}
DEVICE: Schema = obj(id=STR, profile=STR, created=STR)
DEVICE_BODY: Schema = {
    **obj(id={"type": "string", "example": "0004f23ea4e1"}, profile=STR),
    "required": ["id", "profile"],
}
DIRECTORY: Schema = obj(
    version=INT,
    devices={"type": "object", "additionalProperties": obj(url=STR, user=STR, password=STR)},
)


async def _tenant(request: web.Request) -> str:
    """The tenant whose `API-KEY` the request carries, or a 401 (audited)."""
    key = request.headers.get("API-KEY", "").strip()
    worker = request.app[WORKER]
    tenant = await worker.call(worker.plane.ztp.authenticate, key) if key else None
    if tenant is None:
        await _audit_failure(request, "unknown ZTP API key" if key else "missing ZTP API key")
        raise ApiError(
            401,
            "unauthorized",
            "send 'API-KEY: <key>'; an administrator issues it with POST /api/v1/tenant/ztp-key",
        )
    return tenant


async def ztp_list_profiles(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    worker = request.app[WORKER]
    return ok(await worker.call(worker.plane.ztp.profiles, tenant))


async def ztp_create_profile(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    body = await json_body(request)
    worker = request.app[WORKER]
    return ok(await worker.call(worker.plane.ztp.create_profile, tenant, body, PARTNER), 201)


async def ztp_get_profile(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    worker = request.app[WORKER]
    return ok(await worker.call(worker.plane.ztp.profile, tenant, request.match_info["id"]))


async def ztp_delete_profile(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    worker = request.app[WORKER]
    await worker.call(worker.plane.ztp.delete_profile, tenant, request.match_info["id"], PARTNER)
    return web.Response(status=204)


async def ztp_list_devices(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    worker = request.app[WORKER]
    return ok(await worker.call(worker.plane.ztp.devices, tenant))


async def ztp_assign_device(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    body = await json_body(request)
    worker = request.app[WORKER]
    device, created = await worker.call(worker.plane.ztp.assign, tenant, body, PARTNER)
    return ok(device, 201 if created else 200)


async def ztp_get_device(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    worker = request.app[WORKER]
    return ok(await worker.call(worker.plane.ztp.device, tenant, request.match_info["mac"]))


async def ztp_delete_device(request: web.Request) -> web.Response:
    tenant = await _tenant(request)
    worker = request.app[WORKER]
    await worker.call(worker.plane.ztp.delete_device, tenant, request.match_info["mac"], PARTNER)
    return web.Response(status=204)


async def create_ztp_key(request: web.Request) -> web.Response:
    worker = request.app[WORKER]
    return ok({"api_key": await worker.call(worker.plane.ztp.create_key, actor(request))}, 201)


async def agent_ztp(request: web.Request) -> web.Response:
    """The directory with its ETag; 304 when If-None-Match already names it. No caching
    proxy may keep it: it holds the profiles' passwords."""
    worker = request.app[WORKER]
    etag, directory = await worker.call(
        worker.plane.ztp.relay_directory, request.headers.get("If-None-Match")
    )
    headers = {"ETag": etag, "Cache-Control": "no-store"}
    if directory is None:
        return web.Response(status=304, headers=headers)
    return web.json_response(directory, headers=headers)


ROUTES: tuple[Route, ...] = (
    Route(
        "GET",
        f"{ZTP}/profiles",
        ztp_list_profiles,
        "ZTP profiles (partner API; API-KEY header)",
        "ztp",
        response={"type": "array", "items": PROFILE},
        security="ztp_key",
    ),
    Route(
        "POST",
        f"{ZTP}/profiles",
        ztp_create_profile,
        "Add a ZTP profile: provisioning URL (http, https, ftp, ftps, tftp; no spaces or "
        "backslashes) and optional account; 400 invalid, 409 name taken",
        "ztp",
        request=PROFILE_BODY,
        response=PROFILE,
        status=201,
        security="ztp_key",
    ),
    Route(
        "GET",
        f"{ZTP}/profiles/{{id}}",
        ztp_get_profile,
        "One ZTP profile; 404 unknown",
        "ztp",
        response=PROFILE,
        security="ztp_key",
    ),
    Route(
        "DELETE",
        f"{ZTP}/profiles/{{id}}",
        ztp_delete_profile,
        "Delete a ZTP profile; 409 while devices are assigned to it (they are named)",
        "ztp",
        status=204,
        security="ztp_key",
    ),
    Route(
        "GET",
        f"{ZTP}/devices",
        ztp_list_devices,
        "Devices assigned to ZTP profiles",
        "ztp",
        response={"type": "array", "items": DEVICE},
        security="ztp_key",
    ),
    Route(
        "POST",
        f"{ZTP}/devices",
        ztp_assign_device,
        "Assign a MAC to a profile (201 new, 200 moved); 400 bad MAC, 404 unknown profile, "
        "409 registered to another account",
        "ztp",
        request=DEVICE_BODY,
        response=DEVICE,
        status=201,
        security="ztp_key",
    ),
    Route(
        "GET",
        f"{ZTP}/devices/{{mac}}",
        ztp_get_device,
        "One device's assignment; 400 bad MAC, 404 unknown",
        "ztp",
        response=DEVICE,
        security="ztp_key",
    ),
    Route(
        "DELETE",
        f"{ZTP}/devices/{{mac}}",
        ztp_delete_device,
        "Release a device; 400 bad MAC, 404 unknown",
        "ztp",
        status=204,
        security="ztp_key",
    ),
    Route(
        "POST",
        f"{API}/tenant/ztp-key",
        create_ztp_key,
        "Issue the ZTP partner API key (shown once; the previous key stops working)",
        "ztp",
        response=obj(api_key=STR),
        status=201,
    ),
    Route(
        "GET",
        f"{API}/agent/ztp",
        agent_ztp,
        "The tenant's ZTP directory for the relay's local copy (ETag; 304 with If-None-Match)",
        "agent",
        response=DIRECTORY,
        security="relay",
    ),
)
