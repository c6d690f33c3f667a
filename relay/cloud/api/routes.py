"""The REST API under /api/v1: handlers and the route table they are served from.

Handlers are thin: parse the request, call the control plane on its worker
thread, shape the answer. Rules live in relay.cloud; errors become JSON in
`errors.error_middleware`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

from aiohttp import web

from relay.cloud.api import agent_images, agents, relaycerts, relayimages, relays, tasks, ztp
from relay.cloud.api.auth import WORKER, actor, auth_middleware, principal_of
from relay.cloud.api.bodies import int_query, json_body, ok
from relay.cloud.api.errors import ApiError, error_middleware
from relay.cloud.api.openapi import (
    BOOL,
    INT,
    STR,
    STR_LIST,
    Route,
    Schema,
    build_document,
    list_of,
    obj,
    ref,
)
from relay.cloud.controlplane import CloudWorker, ControlPlane
from relay.cloud.images import MAX_IMAGE
from relay.cloud.rules.files import MAX_RESOURCE_BYTES
from relay.cloud.store.store import DeviceListQuery
from relay.cloud.tasks import CONFIG_FIELDS
from relay.proto.csv.table import SEPARATORS

API = "/api/v1"
NOTES = {
    "auth": "Authenticate with `Authorization: Bearer <token>`. Read-only tokens are refused "
    "every write (403). The first admin token is written to `<data-dir>/admin-token`.",
    "errors": 'Errors are `{"error": {"code", "message", "field"}}` with status 400, 401, 403, '
    "404, 409, 413 or 422.",
    "agents": "Relay agents use `/api/v1/agent/*` with `Authorization: Relay <relay_id>:<secret>` "
    "from `POST /api/v1/agent/register` (tenant ID and PIN); admin tokens are refused there, "
    "and relay credentials everywhere else.",
    "imports": "CSV imports apply every good row and report every bad one (as PDMS-E does): "
    "each row is applied all-or-nothing, so a rejected row changes nothing. A whole-file "
    "problem (headers, mixed separators in the header, too many rows, too large) applies "
    "nothing and answers 413/422.",
}


def _plane(request: web.Request) -> ControlPlane:
    return request.app[WORKER].plane


def _worker(request: web.Request) -> CloudWorker:
    return request.app[WORKER]


def _separator(request: web.Request, default: str | None) -> str | None:
    """`?separator=` as `,` `;` or a tab (also spelled `tab`); absent means `default`."""
    raw = request.query.get("separator")
    if raw is None:
        return default
    value = "\t" if raw.lower() in ("tab", "\\t", "\t") else raw
    if value not in SEPARATORS:
        raise ApiError(
            400,
            "invalid_query",
            f"separator {raw!r} is not supported; use ',', ';' or tab",
            "separator",
        )
    return value


# -- misc ------------------------------------------------------------------


async def health(request: web.Request) -> web.Response:
    return ok({"status": "ok"})


async def openapi(request: web.Request) -> web.Response:
    return ok(build_document(served_routes(), NOTES))


async def get_tenant(request: web.Request) -> web.Response:
    return ok(await _worker(request).call(_plane(request).tenancy.get))


async def patch_tenant(request: web.Request) -> web.Response:
    body = await json_body(request)
    return ok(await _worker(request).call(_plane(request).tenancy.update, body, actor(request)))


async def list_tokens(request: web.Request) -> web.Response:
    return ok(await _worker(request).call(_plane(request).tenancy.tokens))


async def create_token(request: web.Request) -> web.Response:
    body = await json_body(request)
    token, row = await _worker(request).call(
        _plane(request).tenancy.create_token, body, actor(request)
    )
    return ok({**row, "token": token}, 201)


async def revoke_token(request: web.Request) -> web.Response:
    plane = _plane(request)
    await _worker(request).call(
        plane.tenancy.revoke_token, request.match_info["id"], actor(request)
    )
    return web.Response(status=204)


async def activity(request: web.Request) -> web.Response:
    raw = request.query.get("date")
    try:
        day = dt.date.fromisoformat(raw) if raw else dt.datetime.now(dt.UTC).date()
    except ValueError as exc:
        raise ApiError(400, "invalid_query", "date must be YYYY-MM-DD", "date") from exc
    entries = await _worker(request).call(_plane(request).activity.week, day)
    if request.query.get("format") == "jsonl":
        text = "".join(json.dumps(e) + "\n" for e in entries)
        return web.Response(
            text=text,
            content_type="application/x-ndjson",
            headers={"Content-Disposition": f'attachment; filename="activity-{day}.jsonl"'},
        )
    return ok({"week_of": str(day), "entries": entries})


# -- sites -------------------------------------------------------------------


async def list_sites(request: web.Request) -> web.Response:
    return ok(await _worker(request).call(_plane(request).sites.listing))


async def create_site(request: web.Request) -> web.Response:
    body = await json_body(request)
    return ok(await _worker(request).call(_plane(request).sites.create, body, actor(request)), 201)


async def match_site(request: web.Request) -> web.Response:
    public_ip = request.query.get("public_ip")
    if not public_ip:
        raise ApiError(400, "invalid_query", "public_ip is required", "public_ip")
    site = await _worker(request).call(
        _plane(request).sites.match, public_ip, request.query.get("private_ip")
    )
    return ok({"site": site})


async def import_sites(request: web.Request) -> web.Response:
    data = await request.read()
    report = await _worker(request).call(
        _plane(request).sites.import_csv, data, actor(request), _separator(request, None)
    )
    return ok(report.as_dict())


async def get_site(request: web.Request) -> web.Response:
    return ok(await _worker(request).call(_plane(request).sites.get, request.match_info["name"]))


async def patch_site(request: web.Request) -> web.Response:
    body = await json_body(request)
    name = request.match_info["name"]
    return ok(await _worker(request).call(_plane(request).sites.update, name, body, actor(request)))


async def delete_site(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await _worker(request).call(_plane(request).sites.delete, name, actor(request))
    return web.Response(status=204)


# -- groups ------------------------------------------------------------------


async def list_groups(request: web.Request) -> web.Response:
    return ok(await _worker(request).call(_plane(request).groups.listing))


async def create_group(request: web.Request) -> web.Response:
    body = await json_body(request)
    return ok(await _worker(request).call(_plane(request).groups.create, body, actor(request)), 201)


async def get_group(request: web.Request) -> web.Response:
    return ok(await _worker(request).call(_plane(request).groups.get, request.match_info["name"]))


async def patch_group(request: web.Request) -> web.Response:
    body = await json_body(request)
    name = request.match_info["name"]
    return ok(
        await _worker(request).call(_plane(request).groups.update, name, body, actor(request))
    )


async def delete_group(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await _worker(request).call(_plane(request).groups.delete, name, actor(request))
    return web.Response(status=204)


async def top_priority(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    return ok(
        await _worker(request).call(_plane(request).groups.set_top_priority, name, actor(request))
    )


async def change_group_devices(request: web.Request) -> web.Response:
    body = await json_body(request)
    add, remove = body.get("add", []), body.get("remove", [])
    for key, value in (("add", add), ("remove", remove)):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ApiError(422, "invalid_type", f"{key} must be a list of device ids", key)
    name = request.match_info["name"]
    plane, who = _plane(request), actor(request)

    def change() -> tuple[dict[str, Any], list[str]]:
        before = set(plane.store.group_members(name))
        out = plane.groups.change_members(
            name, [v.lower() for v in add], [v.lower() for v in remove], who
        )
        return out, sorted(before.symmetric_difference(out["devices"]))

    return await tasks.with_offer(request, change)


async def get_default_groups(request: web.Request) -> web.Response:
    return ok(await _worker(request).call(_plane(request).groups.default_groups))


async def put_default_groups(request: web.Request) -> web.Response:
    body = await json_body(request, list)
    return ok(
        await _worker(request).call(_plane(request).groups.set_default_groups, body, actor(request))
    )


# -- devices -----------------------------------------------------------------


def _status_query(request: web.Request) -> str | None:
    status = request.query.get("status")
    if status not in (None, "online", "offline"):
        raise ApiError(400, "invalid_query", "status must be online or offline", "status")
    return status


async def list_devices(request: web.Request) -> web.Response:
    q = request.query
    query = DeviceListQuery(
        search=q.get("q", "")[:200],
        site=q.get("site"),
        group=q.get("group"),
        model=q.get("model"),
        type=q.get("type"),
        firmware=q.get("firmware"),
        status=_status_query(request),
        offset=int_query(request, "offset", 0, 0, 10**9),
        limit=int_query(request, "limit", 100, 1, 1000),
    )
    return ok(await _worker(request).call(_plane(request).devices.listing, query))


async def create_device(request: web.Request) -> web.Response:
    body = await json_body(request)
    return ok(
        await _worker(request).call(_plane(request).devices.create, body, actor(request)), 201
    )


async def import_devices(request: web.Request) -> web.Response:
    data = await request.read()
    mode = request.query.get("update", "skip")
    report = await _worker(request).call(
        _plane(request).devices.import_csv,
        data,
        mode,
        actor(request),
        _separator(request, None),
    )
    return ok(report.as_dict())


async def export_devices(request: web.Request) -> web.Response:
    separator = _separator(request, ",") or ","
    text = await _worker(request).call(_plane(request).devices.export_csv, separator)
    return web.Response(
        text=text,
        content_type="text/csv",
        headers={"Content-Disposition": 'attachment; filename="devices.csv"'},
    )


async def get_device(request: web.Request) -> web.Response:
    return ok(await _worker(request).call(_plane(request).devices.get, request.match_info["mac"]))


async def patch_device(request: web.Request) -> web.Response:
    body = await json_body(request)
    mac = request.match_info["mac"]
    return ok(
        await _worker(request).call(_plane(request).devices.update, mac, body, actor(request))
    )


async def delete_device(request: web.Request) -> web.Response:
    mac = request.match_info["mac"]
    await _worker(request).call(_plane(request).devices.delete, mac, actor(request))
    return web.Response(status=204)


async def get_device_groups(request: web.Request) -> web.Response:
    device = await _worker(request).call(_plane(request).devices.get, request.match_info["mac"])
    return ok(device["groups"])


async def put_device_groups(request: web.Request) -> web.Response:
    body = await json_body(request, list)
    mac = request.match_info["mac"]
    return ok(
        await _worker(request).call(_plane(request).devices.set_groups, mac, body, actor(request))
    )


async def effective_config(request: web.Request) -> web.Response:
    mac = request.match_info["mac"]
    return ok(await _worker(request).call(_plane(request).deployment.effective_out, mac))


# -- profiles ----------------------------------------------------------------


async def list_profiles(request: web.Request) -> web.Response:
    kind = request.query.get("type")
    return ok(await _worker(request).call(_plane(request).profiles.listing, kind))


async def create_profile(request: web.Request) -> web.Response:
    body = await json_body(request)
    return ok(
        await _worker(request).call(_plane(request).profiles.create, body, actor(request)), 201
    )


async def export_profiles(request: web.Request) -> web.Response:
    names = request.query.getall("name", []) or None
    data = await _worker(request).call(_plane(request).profiles.export_zip, names)
    return web.Response(
        body=data,
        content_type="application/zip",
        headers={"Content-Disposition": 'attachment; filename="profiles.zip"'},
    )


async def get_profile(request: web.Request) -> web.Response:
    return ok(await _worker(request).call(_plane(request).profiles.get, request.match_info["name"]))


async def patch_profile(request: web.Request) -> web.Response:
    body = await json_body(request)
    name = request.match_info["name"]
    plane, who = _plane(request), actor(request)

    def change() -> tuple[dict[str, Any], list[str]]:
        out = plane.profiles.update(name, body, who)
        if not any(field in body for field in CONFIG_FIELDS):
            return out, []
        return out, plane.tasks.reached_by_profile(out["name"])

    return await tasks.with_offer(request, change)


async def delete_profile(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await _worker(request).call(_plane(request).profiles.delete, name, actor(request))
    return web.Response(status=204)


async def copy_profile(request: web.Request) -> web.Response:
    body = await json_body(request)
    name = request.match_info["name"]
    return ok(
        await _worker(request).call(_plane(request).profiles.copy, name, body, actor(request)),
        201,
    )


async def import_profile_file(request: web.Request) -> web.Response:
    data = await request.read()
    name = request.match_info["name"]
    return ok(
        await _worker(request).call(
            _plane(request).profiles.import_file, name, data, actor(request)
        )
    )


# -- deployment ----------------------------------------------------------------


async def deployment_overview(request: web.Request) -> web.Response:
    return ok(await _worker(request).call(_plane(request).deployment.overview))


async def get_binding(request: web.Request) -> web.Response:
    m = request.match_info
    return ok(await _worker(request).call(_plane(request).deployment.get, m["container"], m["key"]))


async def put_binding(request: web.Request) -> web.Response:
    body = await json_body(request)
    m = request.match_info
    plane, who = _plane(request), actor(request)

    def change() -> tuple[dict[str, Any], list[str]]:
        before = plane.deployment.get(m["container"], m["key"])
        out = plane.deployment.set(m["container"], m["key"], body.get("profiles"), who)
        if out["profiles"] == before["profiles"]:
            return out, []
        return out, plane.store.devices_in(out["container"], out["key"])

    return await tasks.with_offer(request, change)


# -- images ------------------------------------------------------------------


async def list_images(request: web.Request) -> web.Response:
    return ok(await _worker(request).call(_plane(request).images.listing))


async def register_image(request: web.Request) -> web.Response:
    """JSON registers an image by its facts; `?model=&version=&filename=` with the file as
    the body uploads it (streamed to disk and hashed off the event loop)."""
    if "model" in request.query:
        return await _upload_image(request)
    body = await json_body(request)
    return ok(
        await _worker(request).call(_plane(request).images.register, body, actor(request)), 201
    )


async def _upload_image(request: web.Request) -> web.Response:
    plane = _plane(request)
    tmp = plane.files.incoming()
    digest = hashlib.sha256()
    size = 0
    try:
        with await asyncio.to_thread(tmp.open, "wb") as fh:
            async for chunk in request.content.iter_chunked(1024 * 1024):
                size += len(chunk)
                if size > MAX_IMAGE:
                    raise ApiError(413, "too_large", "an image is at most 4 GiB", "body")
                digest.update(chunk)
                await asyncio.to_thread(fh.write, chunk)
        row = await _worker(request).call(
            plane.images.add_upload,
            dict(request.query),
            tmp,
            size,
            digest.hexdigest(),
            actor(request),
        )
    finally:
        await asyncio.to_thread(tmp.unlink, True)
    return ok({"id": row["id"], "sha256": row["sha256"], "size": row["size"]}, 201)


async def get_image(request: web.Request) -> web.Response:
    return ok(await _worker(request).call(_plane(request).images.get, request.match_info["id"]))


async def delete_image(request: web.Request) -> web.Response:
    image_id = request.match_info["id"]
    await _worker(request).call(_plane(request).images.delete, image_id, actor(request))
    return web.Response(status=204)


# -- files -------------------------------------------------------------------


async def list_resources(request: web.Request) -> web.Response:
    return ok(await _worker(request).call(_plane(request).files.resources))


async def _body(request: web.Request, limit: int) -> bytes:
    """The whole body up to `limit` bytes (past the app's general body cap), else 413."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(1024 * 1024):
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"the body is limited to {limit} bytes", "body")
        chunks.append(chunk)
    return b"".join(chunks)


async def put_resource(request: web.Request) -> web.Response:
    data = await _body(request, MAX_RESOURCE_BYTES)
    name = request.match_info["name"]
    return ok(
        await _worker(request).call(_plane(request).files.put_resource, name, data, actor(request)),
        201,
    )


async def get_resource(request: web.Request) -> web.StreamResponse:
    path = await _worker(request).call(
        _plane(request).files.resource_path, request.match_info["name"]
    )
    return web.FileResponse(path)


async def delete_resource(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await _worker(request).call(_plane(request).files.delete_resource, name, actor(request))
    return web.Response(status=204)


async def list_device_files(request: web.Request) -> web.Response:
    return ok(await _worker(request).call(_plane(request).files.device_files))


async def put_device_file(request: web.Request) -> web.Response:
    data = await request.read()
    name = request.match_info["name"]
    directory = request.query.get("directory", "")
    return ok(
        await _worker(request).call(
            _plane(request).files.put_device_file, name, directory, data, actor(request)
        ),
        201,
    )


async def get_device_file(request: web.Request) -> web.StreamResponse:
    found = await _worker(request).call(
        _plane(request).files.device_file, request.match_info["name"]
    )
    if found is None:
        raise ApiError(404, "not_found", "no such device file", "name")
    return web.FileResponse(found[1])


async def delete_device_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    await _worker(request).call(_plane(request).files.delete_device_file, name, actor(request))
    return web.Response(status=204)


async def device_logs(request: web.Request) -> web.Response:
    device = await _worker(request).call(_plane(request).devices.get, request.match_info["mac"])
    return ok(await _worker(request).call(_plane(request).files.logs, device["id"]))


async def _log_path(request: web.Request) -> Path:
    m = request.match_info
    day = m["date"]
    try:
        dt.date.fromisoformat(day)
    except ValueError as exc:
        raise ApiError(400, "invalid_date", "date must be YYYY-MM-DD", "date") from exc
    device = await _worker(request).call(_plane(request).devices.get, m["mac"])
    path: Path = await _worker(request).call(
        _plane(request).files.log_path, device["id"], day, m["name"]
    )
    return path


async def get_device_log(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(await _log_path(request))


async def delete_device_log(request: web.Request) -> web.Response:
    m = request.match_info
    await _log_path(request)
    device = await _worker(request).call(_plane(request).devices.get, m["mac"])
    await _worker(request).call(
        _plane(request).files.delete_log, device["id"], m["date"], m["name"], actor(request)
    )
    return web.Response(status=204)


async def get_device_password(request: web.Request) -> web.Response:
    if not principal_of(request).can_write:
        raise ApiError(403, "read_only", "the phones' admin password is shown to admin tokens")
    password = await _worker(request).call(_plane(request).tenancy.device_admin_password)
    return ok({"user": "Polycom", "password": password})


async def rotate_device_password(request: web.Request) -> web.Response:
    password = await _worker(request).call(
        _plane(request).tenancy.rotate_device_admin_password, actor(request)
    )
    return ok({"user": "Polycom", "password": password})


# -- the table -----------------------------------------------------------------

SITE_BODY: Schema = obj(
    name=STR,
    description=STR,
    location=STR,
    download_path=STR,
    site_specific=BOOL,
    public_subnets={
        "type": "array",
        "items": obj(cidr={"type": "string", "example": "20.1.0.0/16"}, private_subnets=STR_LIST),
    },
)
PROFILE_BODY: Schema = obj(
    name=STR,
    description=STR,
    parameters={"type": "object", "additionalProperties": STR},
    add_parameters={"type": "object", "additionalProperties": STR},
    files={"type": "object", "additionalProperties": STR},
    software={"type": ["string", "null"]},
)
CSV: Schema = {"type": "string"}
REPORT = ref("ImportReport")

ROUTES: tuple[Route, ...] = (
    Route("GET", f"{API}/health", health, "Liveness", "meta", public=True),
    Route("GET", f"{API}/openapi.json", openapi, "This document", "meta", public=True),
    Route("GET", f"{API}/tenant", get_tenant, "The tenant and its provisioning settings", "tenant"),
    Route(
        "PATCH",
        f"{API}/tenant",
        patch_tenant,
        "Edit host name, provisioning account, download paths, polling window",
        "tenant",
        request=obj(
            hostname=STR,
            provisioning_account=obj(user=STR, password=STR),
            download_paths=obj(enterprise=STR, internet=STR),
            polling_window=obj(start=STR, end=STR),
        ),
    ),
    Route("GET", f"{API}/tokens", list_tokens, "API tokens (never their secrets)", "tenant"),
    Route(
        "POST",
        f"{API}/tokens",
        create_token,
        "Create a token; the secret is shown once",
        "tenant",
        request=obj(name=STR, role={"type": "string", "enum": ["admin", "readonly"]}),
        status=201,
    ),
    Route("DELETE", f"{API}/tokens/{{id}}", revoke_token, "Revoke a token", "tenant", status=204),
    Route(
        "GET",
        f"{API}/activity",
        activity,
        "The activity log of the week holding `date`",
        "tenant",
        query=(
            ("date", "string", "YYYY-MM-DD, default today"),
            ("format", "string", "jsonl to download the week as a file"),
        ),
    ),
    Route("GET", f"{API}/sites", list_sites, "All sites", "sites", response=list_of("Site")),
    Route(
        "POST",
        f"{API}/sites",
        create_site,
        "Add a site",
        "sites",
        request=SITE_BODY,
        response=ref("Site"),
        status=201,
    ),
    Route(
        "GET",
        f"{API}/sites/match",
        match_site,
        "The site an address pair belongs to",
        "sites",
        response=obj(site=STR),
        query=(("public_ip", "string", "required"), ("private_ip", "string", "optional")),
    ),
    Route(
        "POST",
        f"{API}/sites/import",
        import_sites,
        "Import sites from CSV",
        "sites",
        request=CSV,
        request_type="text/csv",
        response=REPORT,
        query=(("separator", "string", "force ',', ';' or tab; detected by default"),),
    ),
    Route("GET", f"{API}/sites/{{name}}", get_site, "One site", "sites", response=ref("Site")),
    Route(
        "PATCH",
        f"{API}/sites/{{name}}",
        patch_site,
        "Edit a site",
        "sites",
        request=SITE_BODY,
        response=ref("Site"),
    ),
    Route(
        "DELETE",
        f"{API}/sites/{{name}}",
        delete_site,
        "Delete a site; its devices move to the sites they now match",
        "sites",
        status=204,
    ),
    Route(
        "GET",
        f"{API}/device-groups",
        list_groups,
        "All device groups",
        "groups",
        response=list_of("Group"),
    ),
    Route(
        "POST",
        f"{API}/device-groups",
        create_group,
        "Add a device group",
        "groups",
        request=obj(name=STR, description=STR),
        response=ref("Group"),
        status=201,
    ),
    Route(
        "GET",
        f"{API}/default-device-groups",
        get_default_groups,
        "Groups that auto-added devices join, in priority order",
        "groups",
        response=STR_LIST,
    ),
    Route(
        "PUT",
        f"{API}/default-device-groups",
        put_default_groups,
        "Set the default groups, in priority order",
        "groups",
        request=STR_LIST,
        response=STR_LIST,
    ),
    Route(
        "GET",
        f"{API}/device-groups/{{name}}",
        get_group,
        "One group with its devices",
        "groups",
        response=ref("Group"),
    ),
    Route(
        "PATCH",
        f"{API}/device-groups/{{name}}",
        patch_group,
        "Rename or describe a group",
        "groups",
        request=obj(name=STR, description=STR),
        response=ref("Group"),
    ),
    Route(
        "DELETE",
        f"{API}/device-groups/{{name}}",
        delete_group,
        "Delete a group and its associations",
        "groups",
        status=204,
    ),
    Route(
        "POST",
        f"{API}/device-groups/{{name}}/top-priority",
        top_priority,
        "Make the group its devices' highest-priority group",
        "groups",
        response=ref("Group"),
    ),
    Route(
        "POST",
        f"{API}/device-groups/{{name}}/devices",
        change_group_devices,
        "Add devices to / remove devices from a group; offers to apply the change to them",
        "groups",
        request=obj(add=STR_LIST, remove=STR_LIST),
        response={"allOf": [ref("Group"), obj(**tasks.OFFER)]},
        query=tasks.APPLY_QUERY,
    ),
    Route(
        "GET",
        f"{API}/devices",
        list_devices,
        "Search and filter devices",
        "devices",
        response=obj(total=INT, offset=INT, limit=INT, devices=list_of("Device")),
        query=(
            ("q", "string", "case-insensitive substring"),
            ("site", "string", ""),
            ("group", "string", ""),
            ("model", "string", ""),
            ("type", "string", ""),
            ("firmware", "string", ""),
            ("status", "string", "online or offline"),
            ("offset", "integer", ""),
            ("limit", "integer", "1-1000"),
        ),
    ),
    Route(
        "POST",
        f"{API}/devices",
        create_device,
        "Add a device",
        "devices",
        request=obj(
            mac=STR,
            serial=STR,
            type=STR,
            model=STR,
            name=STR,
            description=STR,
            private_ip=STR,
            public_ip=STR,
            groups=STR_LIST,
        ),
        response=ref("Device"),
        status=201,
    ),
    Route(
        "POST",
        f"{API}/devices/import",
        import_devices,
        "Import devices from CSV",
        "devices",
        request=CSV,
        request_type="text/csv",
        response=REPORT,
        query=(
            ("update", "string", "skip (default), overwrite or merge"),
            ("separator", "string", "force ',', ';' or tab; detected by default"),
        ),
    ),
    Route(
        "GET",
        f"{API}/devices/export",
        export_devices,
        "Export devices and their CSV profiles in the import format",
        "devices",
        response=CSV,
        response_type="text/csv",
        query=(("separator", "string", "',' (default), ';' or tab"),),
    ),
    Route(
        "GET",
        f"{API}/devices/{{mac}}",
        get_device,
        "One device (MAC or serial)",
        "devices",
        response=ref("Device"),
    ),
    Route(
        "PATCH",
        f"{API}/devices/{{mac}}",
        patch_device,
        "Edit name, description, addresses, model, type",
        "devices",
        request=obj(name=STR, description=STR, private_ip=STR, public_ip=STR, model=STR, type=STR),
        response=ref("Device"),
    ),
    Route(
        "DELETE",
        f"{API}/devices/{{mac}}",
        delete_device,
        "Delete a device with its CSV profile",
        "devices",
        status=204,
    ),
    Route(
        "GET",
        f"{API}/devices/{{mac}}/groups",
        get_device_groups,
        "The device's groups in priority order",
        "devices",
        response=STR_LIST,
    ),
    Route(
        "PUT",
        f"{API}/devices/{{mac}}/groups",
        put_device_groups,
        "Set the device's groups in priority order",
        "devices",
        request=STR_LIST,
        response=STR_LIST,
    ),
    Route(
        "GET",
        f"{API}/devices/{{mac}}/effective-config",
        effective_config,
        "Every parameter's effective value with its profile and container, and the software",
        "deployment",
        response=ref("EffectiveConfig"),
    ),
    Route(
        "GET",
        f"{API}/profiles",
        list_profiles,
        "All profiles",
        "profiles",
        response=list_of("Profile"),
        query=(("type", "string", "standard, user, software or imported"),),
    ),
    Route(
        "POST",
        f"{API}/profiles",
        create_profile,
        "Add a user-defined profile",
        "profiles",
        request=PROFILE_BODY,
        response=ref("Profile"),
        status=201,
    ),
    Route(
        "GET",
        f"{API}/profiles/export",
        export_profiles,
        "User-defined profiles as a ZIP (all, or the `name`s given)",
        "profiles",
        response={"type": "string", "format": "binary"},
        response_type="application/zip",
        query=(("name", "string", "repeatable; default all user-defined"),),
    ),
    Route(
        "GET",
        f"{API}/profiles/{{name}}",
        get_profile,
        "One profile with parameters and bindings",
        "profiles",
        response=ref("Profile"),
    ),
    Route(
        "PATCH",
        f"{API}/profiles/{{name}}",
        patch_profile,
        "Edit a user-defined profile; offers to apply the change to the devices it reaches",
        "profiles",
        request=PROFILE_BODY,
        response={"allOf": [ref("Profile"), obj(**tasks.OFFER)]},
        query=tasks.APPLY_QUERY,
    ),
    Route(
        "DELETE",
        f"{API}/profiles/{{name}}",
        delete_profile,
        "Delete a profile and its bindings",
        "profiles",
        status=204,
    ),
    Route(
        "POST",
        f"{API}/profiles/{{name}}/copy",
        copy_profile,
        "Copy into a new user-defined profile",
        "profiles",
        request=obj(name=STR, description=STR),
        response=ref("Profile"),
        status=201,
    ),
    Route(
        "POST",
        f"{API}/profiles/{{name}}/import",
        import_profile_file,
        "Add the parameters of a .cfg/.xml file (polycomConfig or PHONE_CONFIG)",
        "profiles",
        request={"type": "string"},
        request_type="application/xml",
        response=ref("Profile"),
    ),
    Route(
        "GET",
        f"{API}/deployment",
        deployment_overview,
        "Every container key with bound profiles",
        "deployment",
    ),
    Route(
        "GET",
        f"{API}/deployment/{{container}}/{{key}}",
        get_binding,
        "Profiles bound in a container (global key is '-')",
        "deployment",
        response=obj(container=STR, key=STR, profiles=STR_LIST),
    ),
    Route(
        "PUT",
        f"{API}/deployment/{{container}}/{{key}}",
        put_binding,
        "Bind profiles, highest priority first; offers to apply the change to the devices",
        "deployment",
        request=obj(profiles=STR_LIST),
        response=obj(container=STR, key=STR, profiles=STR_LIST, **tasks.OFFER),
        query=tasks.APPLY_QUERY,
    ),
    Route(
        "GET",
        f"{API}/device-admin-password",
        get_device_password,
        "The per-tenant admin password provisioned phones get (user Polycom)",
        "tenant",
        response=obj(user=STR, password=STR),
    ),
    Route(
        "POST",
        f"{API}/device-admin-password/rotate",
        rotate_device_password,
        "Generate a new phone admin password; phones get it at their next provisioning",
        "tenant",
        response=obj(user=STR, password=STR),
    ),
    Route("GET", f"{API}/resources", list_resources, "Resource files", "files"),
    Route(
        "PUT",
        f"{API}/resources/{{name}}",
        put_resource,
        "Upload a resource file (.ld .wav .cfg .csv .png .jpg .xml .zip .tar .txt .log .bak "
        ".htm .html .mp3, below 50 MB); phones fetch it by name",
        "files",
        request={"type": "string", "format": "binary"},
        request_type="application/octet-stream",
        status=201,
    ),
    Route(
        "GET",
        f"{API}/resources/{{name}}",
        get_resource,
        "Download a resource file",
        "files",
        response={"type": "string", "format": "binary"},
        response_type="application/octet-stream",
    ),
    Route(
        "DELETE",
        f"{API}/resources/{{name}}",
        delete_resource,
        "Delete a resource file",
        "files",
        status=204,
    ),
    Route("GET", f"{API}/device-files", list_device_files, "Device files", "files"),
    Route(
        "PUT",
        f"{API}/device-files/{{name}}",
        put_device_file,
        "Upload 000000000000-<name> (every phone) or <mac>-<name> (one phone; it wins)",
        "files",
        request={"type": "string", "format": "binary"},
        request_type="application/octet-stream",
        status=201,
        query=(
            (
                "directory",
                "string",
                "misc, contacts, overrides, license, userprofiles, certificates or flk",
            ),
        ),
    ),
    Route(
        "GET",
        f"{API}/device-files/{{name}}",
        get_device_file,
        "Download a device file",
        "files",
        response={"type": "string", "format": "binary"},
        response_type="application/octet-stream",
    ),
    Route(
        "DELETE",
        f"{API}/device-files/{{name}}",
        delete_device_file,
        "Delete a device file",
        "files",
        status=204,
    ),
    Route(
        "GET",
        f"{API}/devices/{{mac}}/logs",
        device_logs,
        "The phone's uploaded logs by date (kept 10 days) and override files",
        "devices",
    ),
    Route(
        "GET",
        f"{API}/devices/{{mac}}/logs/{{date}}/{{name}}",
        get_device_log,
        "Download one log",
        "devices",
        response={"type": "string", "format": "binary"},
        response_type="text/plain",
    ),
    Route(
        "DELETE",
        f"{API}/devices/{{mac}}/logs/{{date}}/{{name}}",
        delete_device_log,
        "Delete one log",
        "devices",
        status=204,
    ),
    Route("GET", f"{API}/images", list_images, "Software images", "images"),
    Route(
        "POST",
        f"{API}/images",
        register_image,
        "Register an image by its facts (JSON), or upload it with ?model=&version=&filename= "
        "and the file as the body; either produces a software profile",
        "images",
        request=obj(model=STR, version=STR, filename=STR, size=INT, sha256=STR, url=STR),
        response=obj(id=STR, sha256=STR, size=INT),
        status=201,
        query=(
            ("model", "string", "upload: model family, e.g. VVX"),
            ("version", "string", "upload: e.g. 6.4.3"),
            ("filename", "string", "upload: e.g. sip.ld"),
        ),
    ),
    Route("GET", f"{API}/images/{{id}}", get_image, "One image", "images"),
    Route("DELETE", f"{API}/images/{{id}}", delete_image, "Delete an image", "images", status=204),
)


def served_routes() -> tuple[Route, ...]:
    """Every route the API serves and documents, this module's and the feature modules'."""
    return (
        ROUTES
        + relays.ROUTES
        + agents.ROUTES
        + tasks.ROUTES
        + ztp.ROUTES
        + relayimages.ROUTES
        + agent_images.ROUTES
        + relaycerts.ROUTES
    )


def build_app(worker: CloudWorker, max_body_bytes: int) -> web.Application:
    app = web.Application(
        middlewares=[error_middleware, auth_middleware], client_max_size=max_body_bytes
    )
    app[WORKER] = worker
    tasks.install(app)
    for route in served_routes():
        app.router.add_route(route.method, route.path, route.handler)
    return app
