"""Reading request bodies and query numbers, and writing JSON answers: one way for
every API module, so every route caps and reports bad input alike."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from relay.cloud.api.errors import ApiError

MAX_JSON_BYTES = 2 * 1024 * 1024


async def read_json(request: web.Request, limit: int = MAX_JSON_BYTES) -> Any:
    """The decoded body: 413 over `limit` bytes, 400 if it is not JSON."""
    too_large = ApiError(413, "too_large", f"JSON bodies are limited to {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    try:
        raw = await request.read()
    except ConnectionResetError as exc:
        # The client went away mid-body (an agent stopping): nobody reads the answer.
        raise ApiError(400, "body_cut_off", "the request body ended early", "body") from exc
    if len(raw) > limit:
        raise too_large
    try:
        return json.loads(raw or b"null")
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, "invalid_json", f"body is not valid JSON: {exc}", "body") from exc


async def json_body(request: web.Request, kind: type = dict) -> Any:
    """A JSON object (or, with `kind=list`, a list) body."""
    value = await read_json(request)
    if not isinstance(value, kind):
        name = "an object" if kind is dict else "a list"
        raise ApiError(400, "invalid_json", f"body must be {name}", "body")
    return value


def ok(value: Any, status: int = 200) -> web.Response:
    return web.json_response(value, status=status)


def int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError(400, "invalid_query", f"{name} must be a number {low}-{high}", name)
    return int(raw)
