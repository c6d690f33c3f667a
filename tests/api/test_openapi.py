"""The OpenAPI document describes exactly the routes the server serves."""

from __future__ import annotations

import re

from aiohttp import web

from relay.cloud.api.routes import build_app
from tests.api.conftest import Api

FIXED_ROUTES = {
    ("post", "/api/v1/sites"),
    ("get", "/api/v1/sites/match"),
    ("post", "/api/v1/sites/import"),
    ("post", "/api/v1/devices/import"),
    ("get", "/api/v1/devices/export"),
    ("post", "/api/v1/device-groups"),
    ("put", "/api/v1/devices/{mac}/groups"),
    ("post", "/api/v1/profiles"),
    ("put", "/api/v1/deployment/{container}/{key}"),
    ("get", "/api/v1/devices/{mac}/effective-config"),
}


def _served(app: web.Application) -> set[tuple[str, str]]:
    out = set()
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        out.add((route.method.lower(), str(path)))
    return out


async def test_document_and_router_list_the_same_routes(api: Api) -> None:
    document = (await api.get("/openapi.json")).body
    documented = {(m, p) for p, ops in document["paths"].items() for m in ops}
    served = _served(build_app(worker=None, max_body_bytes=1))  # type: ignore[arg-type]
    assert documented == served


async def test_fixed_routes_of_the_issue_are_documented(api: Api) -> None:
    document = (await api.get("/openapi.json")).body
    documented = {(m, p) for p, ops in document["paths"].items() for m in ops}
    assert documented >= FIXED_ROUTES


async def test_every_path_parameter_is_declared(api: Api) -> None:
    document = (await api.get("/openapi.json")).body
    for path, ops in document["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", path))
        for op in ops.values():
            declared = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert declared == names, path


async def test_document_says_whether_bad_rows_are_applied(api: Api) -> None:
    document = (await api.get("/openapi.json")).body
    assert "apply every good row" in document["info"]["description"]
