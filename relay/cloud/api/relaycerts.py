"""A relay's own TLS certificate over the API (issue 7; docs/agent-link.md
"Certificates"): the admin uploads a PFX and reads the validation report and the
relay's state; the relay's agent fetches the certificate by etag and reports what it
serves."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from relay.cloud.api.agents import AGENT, message
from relay.cloud.api.auth import WORKER, actor, relay_of
from relay.cloud.api.bodies import ok, read_json
from relay.cloud.api.errors import ApiError
from relay.cloud.api.openapi import BOOL, STR, STR_LIST, STR_OR_NULL, Route, Schema, obj
from relay.cloud.relaycerts import STATES
from relay.sync.certificates import CertificateState

API = "/api/v1"
# A PFX is at most 256 KiB (certs.validate.MAX_PFX_BYTES): its base64 and the JSON
# around it fit in twice that.
MAX_UPLOAD_BYTES = 512 * 1024
MAX_IF_NONE_MATCH = 1024
MAX_ETAGS = 16

_FINDING: Schema = obj(code=STR, message=STR)
REPORT: Schema = obj(
    ok=BOOL,
    errors={"type": "array", "items": _FINDING},
    warnings={"type": "array", "items": _FINDING},
    certificate={"type": ["object", "null"]},
)
UPLOAD: Schema = obj(
    pfx={"type": "string", "contentEncoding": "base64"},
    password={"type": "string", "writeOnly": True},
    fqdns=STR_LIST,
)
SUMMARY: Schema = obj(
    state={"type": "string", "enum": list(STATES)},
    fingerprint=STR,
    not_after=STR,
    fqdns=STR_LIST,
    uploaded=STR_OR_NULL,
    uploaded_by=STR,
    delivered=BOOL,
    serving=STR,
    previous=STR,
    error=STR,
)
VIEW: Schema = {"allOf": [SUMMARY, obj(report=REPORT)]}
CERTIFICATE: Schema = obj(etag=STR, chain_pem=STR, key_pem=STR, fingerprint=STR)
STATE: Schema = obj(serving=STR, not_after=STR, previous=STR, error=STR)


def _known_etags(request: web.Request) -> frozenset[str]:
    """The etags of `If-None-Match` (RFC 9110 13.1.2: a list, `*`, weak ones compared
    weakly), quotes and `W/` dropped; an oversized header counts as absent."""
    raw = request.headers.get("If-None-Match", "")
    if len(raw) > MAX_IF_NONE_MATCH:
        return frozenset()
    tags = (t.strip().removeprefix("W/").strip('"') for t in raw.split(",")[:MAX_ETAGS])
    return frozenset(t for t in tags if t)


async def put_certificate(request: web.Request) -> web.Response:
    """200 with the report when the certificate is accepted; 422 with the report (and the
    usual `error` object) when it is refused, and nothing stored."""
    body = await read_json(request, MAX_UPLOAD_BYTES)
    worker = request.app[WORKER]
    relay_id = request.match_info["id"]
    report = await worker.call(worker.plane.relay_certs.upload, relay_id, body, actor(request))
    answer: dict[str, Any] = report.as_json()
    if report.ok:
        return ok(answer)
    codes = ", ".join(f.code for f in report.errors)
    message_text = "; ".join(f.message for f in report.errors)
    error = {"code": "invalid_certificate", "message": f"{codes}: {message_text}", "field": "pfx"}
    return ok({**answer, "error": error}, 422)


async def get_certificate(request: web.Request) -> web.Response:
    worker = request.app[WORKER]
    return ok(await worker.call(worker.plane.relay_certs.view, request.match_info["id"]))


async def delete_certificate(request: web.Request) -> web.Response:
    worker = request.app[WORKER]
    await worker.call(worker.plane.relay_certs.delete, request.match_info["id"], actor(request))
    return web.Response(status=204)


async def agent_certificate(request: web.Request) -> web.Response:
    worker = request.app[WORKER]
    delivery = await worker.call(
        worker.plane.relay_certs.deliver, relay_of(request), _known_etags(request)
    )
    if delivery is None:
        raise ApiError(
            404, "not_found", "no certificate was uploaded for this relay; serve your own"
        )
    headers = {"ETag": f'"{delivery.etag}"'}
    if delivery.certificate is None:
        return web.Response(status=304, headers=headers)
    response = ok(delivery.certificate.to_wire())
    response.headers.update(headers)
    return response


async def agent_certificate_status(request: web.Request) -> web.Response:
    state = await message(request, CertificateState.from_wire)
    worker = request.app[WORKER]
    etag = await worker.call(worker.plane.relay_certs.receive_state, relay_of(request), state)
    return ok({"etag": etag})


ROUTES: tuple[Route, ...] = (
    Route(
        "PUT",
        f"{API}/relays/{{id}}/certificate",
        put_certificate,
        "Upload the relay's certificate as a PFX (base64), its password (never stored or "
        "shown) and the FQDNs phones use (default: the relay's name when it is an FQDN). "
        "200 with the validation report: the certificate is delivered to the relay; 422 "
        "with the report: refused, nothing stored",
        "relays",
        request=UPLOAD,
        response=REPORT,
    ),
    Route(
        "GET",
        f"{API}/relays/{{id}}/certificate",
        get_certificate,
        "The relay's uploaded certificate: its validation report judged again now, whether "
        "the relay fetched it, what the relay serves, and its state (none, pending, "
        "installed, failed)",
        "relays",
        response=VIEW,
    ),
    Route(
        "DELETE",
        f"{API}/relays/{{id}}/certificate",
        delete_certificate,
        "Remove the uploaded certificate: the relay goes back to its own",
        "relays",
        status=204,
    ),
    Route(
        "GET",
        f"{AGENT}/certificate",
        agent_certificate,
        "This relay's certificate chain and key with its ETag; 304 with If-None-Match "
        "equal to it; 404 when none was uploaded (serve your own)",
        "agent",
        response=CERTIFICATE,
        security="relay",
    ),
    Route(
        "PUT",
        f"{AGENT}/certificate/status",
        agent_certificate_status,
        "What this relay's listeners serve now and why a delivered certificate was not "
        "installed; answers the current etag (empty without a certificate)",
        "agent",
        request=STATE,
        response=obj(etag=STR),
        security="relay",
    ),
)
