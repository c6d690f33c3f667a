"""Bearer-token authentication and the read-only role.

Every failure is written to the audit trail (the activity log and a
structured log line) with the source address; the token itself never is.
"""

from __future__ import annotations

import logging

from aiohttp import web

from relay.cloud.api.errors import ApiError, Handler
from relay.cloud.controlplane import CloudWorker
from relay.cloud.tenancy import Principal
from relay.logs import event

log = logging.getLogger("cloud.auth")

WORKER = web.AppKey("worker", CloudWorker)
PUBLIC_PATHS = frozenset({"/api/v1/health", "/api/v1/openapi.json"})
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PRINCIPAL_KEY = web.RequestKey("principal", Principal)


async def _audit_failure(request: web.Request, reason: str) -> None:
    worker = request.app[WORKER]
    source = request.remote or "-"
    event(log, "auth_failed", logging.WARNING, source=source, path=request.path, reason=reason)
    await worker.call(
        worker.plane.ctx.log, "anonymous", "auth_failed", request.path, source=source, reason=reason
    )


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC_PATHS:
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        await _audit_failure(request, "missing bearer token")
        raise ApiError(
            401,
            "unauthorized",
            "send 'Authorization: Bearer <token>'; the admin token is in <data-dir>/admin-token",
        )
    worker = request.app[WORKER]
    principal = await worker.call(worker.plane.tenancy.authenticate, token.strip())
    if principal is None:
        await _audit_failure(request, "unknown or revoked token")
        raise ApiError(401, "unauthorized", "the token is unknown or revoked")
    if request.method not in READ_METHODS and not principal.can_write:
        await _audit_failure(request, "read-only token used for a write")
        raise ApiError(403, "read_only", "this token is read-only; use an admin token to change")
    request[PRINCIPAL_KEY] = principal
    return await handler(request)


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL_KEY]


def actor(request: web.Request) -> str:
    p = principal_of(request)
    return f"{p.name}({p.token_id})"
