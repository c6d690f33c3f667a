"""Bearer-token authentication and the read-only role; relay credentials on the
agent routes (docs/agent-link.md "Authentication").

Admin tokens work only on admin routes and relay credentials only on agent
routes, so a leaked relay secret cannot administer the tenant. Every failure
is written to the audit trail (the activity log and a structured log line)
with the source address; the token itself never is.
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
RELAY_KEY = web.RequestKey("relay", str)
AGENT_PREFIX = "/api/v1/agent/"
# Registration is authenticated by the tenant ID and the PIN in its body.
AGENT_PUBLIC_PATHS = frozenset({"/api/v1/agent/register"})
# The ZTP partner API takes its own `API-KEY` header, checked by relay.cloud.api.ztp.
ZTP_PREFIX = "/api/v1/ztp/"


async def _audit_failure(request: web.Request, reason: str) -> None:
    worker = request.app[WORKER]
    source = request.remote or "-"
    event(log, "auth_failed", logging.WARNING, source=source, path=request.path, reason=reason)
    await worker.call(
        worker.plane.ctx.log, "anonymous", "auth_failed", request.path, source=source, reason=reason
    )


async def _relay_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in AGENT_PUBLIC_PATHS:
        return await handler(request)
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    relay_id, _, secret = credential.strip().partition(":")
    if scheme.lower() != "relay" or not relay_id or not secret:
        await _audit_failure(request, "missing relay credential")
        raise ApiError(
            401,
            "unauthorized",
            "agent routes take 'Authorization: Relay <relay_id>:<secret>' from registration",
        )
    worker = request.app[WORKER]
    if not await worker.call(worker.plane.relays.authenticate, relay_id, secret):
        await _audit_failure(request, "unknown relay or wrong secret")
        raise ApiError(
            401,
            "unauthorized",
            "the relay is unknown or its registration was revoked; run relay agent register",
        )
    request[RELAY_KEY] = relay_id
    return await handler(request)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.path in PUBLIC_PATHS or request.path.startswith(ZTP_PREFIX):
        return await handler(request)
    if request.path.startswith(AGENT_PREFIX):
        return await _relay_auth(request, handler)
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


def relay_of(request: web.Request) -> str:
    """The authenticated relay of an agent route."""
    return request[RELAY_KEY]


def principal_of(request: web.Request) -> Principal:
    return request[PRINCIPAL_KEY]


def actor(request: web.Request) -> str:
    p = principal_of(request)
    return f"{p.name}({p.token_id})"
