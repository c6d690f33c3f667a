"""Composition root of `relay up`: every service in one process.

Today that is the embedded control plane and its REST API; later issues add
the relay's services here. Once everything listens, `on_ready` gets the facts
that scripts (the JSON ready line) and people (the banner) need.
"""

from __future__ import annotations

import errno
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from relay.cloud.api.errors import Handler
from relay.cloud.api.routes import build_app
from relay.cloud.controlplane import CloudWorker, ControlPlane
from relay.config import Config
from relay.logs import event

log = logging.getLogger("relay.app")


class StartupError(RuntimeError):
    """A service could not start; the message says what to do."""


def write_secret(path: Path, value: str) -> None:
    """Write a secret file with 0600 permissions, atomically (never half-written)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, (value + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    tmp.replace(path)


def read_secret(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """One structured line per API request (never the Authorization header)."""
    started = time.perf_counter()
    response = await handler(request)
    event(
        logging.getLogger("cloud.api"),
        "request",
        method=request.method,
        path=request.path,
        status=response.status,
        ms=round((time.perf_counter() - started) * 1000, 1),
        source=request.remote,
    )
    return response


async def _listen(runner: web.AppRunner, host: str, port: int, what: str) -> int:
    """Bind one runner (one runner per service) and return the port it got."""
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"{what}: port {port} on {host} is in use; pass another port or --free-ports"
            ) from exc
        raise StartupError(f"{what}: cannot listen on {host}:{port}: {exc.strerror}") from exc
    return int(runner.addresses[-1][1])


async def run(
    config: Config,
    on_ready: Callable[[dict[str, Any]], None],
    stopped: Callable[[], Awaitable[None]],
) -> None:
    """Start everything, report readiness, run until `stopped()` returns, shut down."""
    data_dir = config.data_dir
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    plane = ControlPlane(data_dir / "cloud")
    token = plane.bootstrap()
    token_file = data_dir / "admin-token"
    if token is not None:
        write_secret(token_file, token)
        event(log, "tenant_created", token_file=str(token_file))
    else:
        token = read_secret(token_file)
    worker = CloudWorker(plane)
    app = build_app(worker, config.max_body_bytes)
    app.middlewares.insert(0, access_log)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        port = await _listen(runner, config.host, config.port(config.api_port), "control plane API")
        api = f"http://{config.host}:{port}/api/v1"
        tenant = plane.tenancy.tenant()
        event(log, "ready", api=api, data_dir=str(data_dir))
        on_ready(
            {
                "event": "ready",
                "api": api,
                "openapi": f"{api}/openapi.json",
                "token": token,
                "token_file": str(token_file),
                "tenant": tenant["id"],
                "data_dir": str(data_dir),
            }
        )
        await stopped()
    finally:
        event(log, "stopping")
        await runner.cleanup()
        worker.close()
        event(log, "stopped")
