"""JSON errors for every failure: `{"error": {"code", "message", "field"}}`.

Bad input never becomes a 500: rule violations carry their status, aiohttp's
own HTTP errors (404 route, 405, 413 body too large) are rewritten as JSON,
and only a real bug is a 500 (logged with its traceback, never shown).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from relay.cloud.rules.errors import RuleError
from relay.logs import event

log = logging.getLogger("cloud.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
}


def error_response(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    headers = {"WWW-Authenticate": 'Bearer realm="relay"'} if status == 401 else None
    return web.json_response({"error": body}, status=status, headers=headers)


class ApiError(Exception):
    """An HTTP-level refusal raised by the API layer itself (auth, media type)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except RuleError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.field)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.field)
    except web.HTTPRequestEntityTooLarge as exc:
        return error_response(413, "too_large", exc.text or "request body too large", "body")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _CODES.get(exc.status, "error")
        return error_response(exc.status, code, exc.reason)
    except json.JSONDecodeError as exc:
        return error_response(400, "invalid_json", f"body is not valid JSON: {exc.msg}", "body")
    except Exception:
        event(log, "internal_error", logging.ERROR, method=request.method, path=request.path)
        log.exception("unhandled error")
        return error_response(500, "internal", "internal error; see the service log")
