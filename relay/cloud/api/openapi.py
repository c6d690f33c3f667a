"""The OpenAPI 3.1 document, built from the same route table that the server
registers, so the two cannot drift apart."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from relay import __version__
from relay.sync.messages import TASK_TYPES

Schema = dict[str, Any]
ERROR: Schema = {"$ref": "#/components/schemas/Error"}


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: what the server registers and what the document describes."""

    method: str
    path: str
    handler: Callable[..., Any]
    summary: str
    tag: str
    request: Schema | None = None
    request_type: str = "application/json"
    response: Schema = field(default_factory=lambda: {"type": "object"})
    response_type: str = "application/json"
    status: int = 200
    query: tuple[tuple[str, str, str], ...] = ()
    public: bool = False
    security: str = "bearer"


def obj(**props: Schema) -> Schema:
    return {"type": "object", "properties": props}


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
STR_LIST: Schema = {"type": "array", "items": STR}
TASK_TYPE: Schema = {"type": "string", "enum": list(TASK_TYPES)}
TASK_TARGETS: Schema = {
    "type": "object",
    "properties": {"devices": STR_LIST, "groups": STR_LIST, "sites": STR_LIST},
    "description": "device MACs, group names and site names; the task runs on their union",
}
NUM: Schema = {"type": "number"}
NUM_OR_NULL: Schema = {"type": ["number", "null"]}
STR_OR_NULL: Schema = {"type": ["string", "null"]}
COUNTS: Schema = {"type": "object", "additionalProperties": obj(online=INT, total=INT)}
_TARGET = obj(mac=STR, address=STR, model=STR, firmware=STR, rest=BOOL, password=STR)
_JOB_RESULT = obj(
    job=INT,
    task_id=STR,
    device=STR,
    result={"type": "string", "enum": ["success", "failure", "not_applicable"]},
    reason=STR,
    data={"type": "object"},
)

COMPONENTS: dict[str, Schema] = {
    "Error": obj(error=obj(code=STR, message=STR, field=STR)),
    "Site": obj(
        name=STR,
        description=STR,
        location=STR,
        public_subnets={
            "type": "array",
            "items": obj(
                cidr={"type": "string", "example": "20.1.0.0/16"}, private_subnets=STR_LIST
            ),
        },
        download_path=STR,
        site_specific=BOOL,
        builtin=BOOL,
        device_count=INT,
    ),
    "Group": obj(name=STR, description=STR, default=BOOL, device_count=INT),
    "Device": obj(
        id=STR,
        mac=STR,
        serial=STR,
        type=STR,
        model=STR,
        name=STR,
        description=STR,
        private_ip=STR,
        public_ip=STR,
        site=STR,
        firmware=STR,
        groups=STR_LIST,
        online=BOOL,
        sip_registration={
            "type": "string",
            "enum": ["registered", "partial", "unregistered", "unknown"],
        },
        call_status={"type": "string", "enum": ["idle", "in_call"]},
        calls={"type": "array", "items": {"$ref": "#/components/schemas/Call"}},
        lines={"type": "array", "items": {"$ref": "#/components/schemas/Line"}},
        uptime=NUM_OR_NULL,
        last_restart=STR_OR_NULL,
        last_checked=STR_OR_NULL,
        monitored_by=STR_OR_NULL,
    ),
    "Profile": obj(
        name=STR,
        type={"type": "string", "enum": ["standard", "user", "software", "imported"]},
        description=STR,
        parameters={"type": "object", "additionalProperties": STR},
        software={"type": ["object", "null"]},
    ),
    "ImportReport": obj(
        rows={
            "type": "array",
            "items": obj(
                row=INT,
                key=STR,
                status={"type": "string", "enum": ["created", "updated", "skipped", "error"]},
                error=STR,
            ),
        },
        created=INT,
        updated=INT,
        skipped=INT,
        errors=INT,
    ),
    "Line": obj(
        number=INT,
        registration={"type": "string", "enum": ["registered", "unregistered"]},
        sip_address=STR,
        user_id=STR,
        proxy=STR,
    ),
    "Call": obj(state=STR, remote_name=STR, remote_number=STR, duration=NUM),
    "Relay": obj(
        id=STR,
        name=STR,
        site=STR,
        status={"type": "string", "enum": ["active", "inactive"]},
        download_agent_status={"type": "string", "enum": ["active", "inactive", "absent"]},
        download_agent_version=STR,
        last_heartbeat=STR_OR_NULL,
        version=STR,
        addresses=STR_LIST,
        uptime=NUM_OR_NULL,
        registered=STR,
    ),
    "Pin": obj(pin=STR, previous_pin_valid_until=STR_OR_NULL, next_reset_allowed=STR_OR_NULL),
    "Dashboard": obj(
        online=INT, total=INT, by_type=COUNTS, by_site=COUNTS, by_group=COUNTS, by_model=COUNTS
    ),
    "Registration": obj(tenant=STR, pin=STR, name=STR, version=STR, addresses=STR_LIST),
    "Credential": obj(relay_id=STR, secret=STR, heartbeat_seconds=NUM),
    "Heartbeat": obj(
        version=STR,
        addresses=STR_LIST,
        uptime=NUM,
        download_agent={"type": "string", "enum": ["running", "stopped", "absent"]},
        download_agent_version=STR,
    ),
    "LinkSettings": obj(relay_id=STR, site=STR_OR_NULL, heartbeat_seconds=NUM, monitor_seconds=NUM),
    "Watchlist": obj(devices={"type": "array", "items": _TARGET}, monitor_seconds=NUM),
    "DeviceStatus": obj(
        device=STR,
        online=BOOL,
        checked=NUM,
        reason=STR,
        lines={"type": "array", "items": {"$ref": "#/components/schemas/Line"}},
        calls={"type": "array", "items": {"$ref": "#/components/schemas/Call"}},
        uptime=NUM_OR_NULL,
        last_restart=NUM_OR_NULL,
        firmware=STR,
    ),
    "ReportBatch": obj(
        reports={
            "type": "array",
            "items": {
                "oneOf": [
                    obj(seq=INT, kind={"const": "result"}, body=_JOB_RESULT),
                    obj(
                        seq=INT,
                        kind={"const": "status"},
                        body={"$ref": "#/components/schemas/DeviceStatus"},
                    ),
                ]
            },
        }
    ),
    "TaskBody": {
        "type": "object",
        "properties": {
            "type": TASK_TYPE,
            "name": STR,
            "targets": TASK_TARGETS,
            "when": {
                "type": "string",
                "description": "now (default), skip, or an ISO 8601 time with a time zone",
                "example": "2025-01-31T03:00:00Z",
            },
            "options": {
                "type": "object",
                "description": "check_sync: reboot (bool); reset: scope (web, local, device, "
                "all, factory); get_config: scope (provisioning, local, web, device, all); "
                "set_parameters: parameters {name: value}; dial: dest, line, dial_type (SIP, "
                "TEL, H323); ad_password: password, line",
            },
        },
        "required": ["type", "targets"],
    },
    "TaskResult": obj(
        device=STR,
        result={"type": "string", "enum": ["success", "failure", "not_applicable"]},
        reason=STR,
        data={"type": "object"},
        screen={"type": "string", "description": "capture_screen: where the PNG is served"},
        finished=STR,
    ),
    "Task": obj(
        id=STR,
        name=STR,
        type=TASK_TYPE,
        status={"type": "string", "enum": ["scheduled", "executing", "done"]},
        options={"type": "object", "description": "secrets (the AD password) are masked"},
        targets=TASK_TARGETS,
        when=STR,
        run_at={"type": ["string", "null"]},
        created=STR,
        created_by=STR,
        started={"type": ["string", "null"]},
        finished={"type": ["string", "null"]},
        total=INT,
        success=INT,
        failure=INT,
        in_progress=INT,
        not_applicable=INT,
        results={"type": "array", "items": {"$ref": "#/components/schemas/TaskResult"}},
        pending={"type": "array", "items": obj(device=STR, relay=STR, state=STR)},
    ),
    "JobBatch": obj(
        jobs={
            "type": "array",
            "items": obj(
                seq=INT,
                task_id=STR,
                type=TASK_TYPE,
                options={"type": "object"},
                device=obj(mac=STR, address=STR, model=STR, firmware=STR, rest=BOOL, password=STR),
            ),
        }
    ),
    "EffectiveConfig": obj(
        parameters={
            "type": "object",
            "additionalProperties": obj(value=STR, profile=STR, container=STR),
        },
        software={"type": ["object", "null"]},
        chain={"type": "array", "items": obj(container=STR, key=STR, profile=STR)},
    ),
}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def list_of(name: str) -> Schema:
    return {"type": "array", "items": ref(name)}


_PARAM = re.compile(r"\{(\w+)\}")


def _operation(route: Route) -> Schema:
    op: Schema = {
        "summary": route.summary,
        "tags": [route.tag],
        "operationId": route.handler.__name__,
        "responses": {
            str(route.status): {
                "description": "OK",
                "content": {route.response_type: {"schema": route.response}},
            },
            "default": {"description": "error", "content": {"application/json": {"schema": ERROR}}},
        },
    }
    params = [
        {"name": n, "in": "path", "required": True, "schema": STR}
        for n in _PARAM.findall(route.path)
    ]
    params += [
        {"name": n, "in": "query", "required": False, "schema": {"type": t}, "description": d}
        for n, t, d in route.query
    ]
    if params:
        op["parameters"] = params
    if route.request is not None:
        op["requestBody"] = {
            "required": True,
            "content": {route.request_type: {"schema": route.request}},
        }
    op["security"] = [] if route.public else [{route.security: []}]
    return op


def build_document(routes: Iterable[Route], notes: Mapping[str, str]) -> Schema:
    paths: dict[str, dict[str, Schema]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Relay control plane API",
            "version": __version__,
            "description": "\n\n".join(notes.values()),
        },
        "paths": paths,
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "relay": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "`Relay <relay_id>:<secret>` (docs/agent-link.md)",
                },
                "ztp_key": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "API-KEY",
                    "description": "the tenant's ZTP partner API key (POST /api/v1/tenant/ztp-key)",
                },
            },
        },
    }
