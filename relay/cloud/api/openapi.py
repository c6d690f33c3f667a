"""The OpenAPI 3.1 document, built from the same route table that the server
registers, so the two cannot drift apart."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from relay import __version__

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


def obj(**props: Schema) -> Schema:
    return {"type": "object", "properties": props}


STR: Schema = {"type": "string"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
STR_LIST: Schema = {"type": "array", "items": STR}

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
    op["security"] = [] if route.public else [{"bearer": []}]
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
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
