"""Composition root of `relay up`: every service in one process.

Today that is the embedded control plane and its REST API; later issues add
the relay's services here. Once everything listens, `on_ready` gets the facts
that scripts (the JSON ready line) and people (the banner) need.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import secrets
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from certs.lab import ensure_lab_identity
from certs.tls import server_context
from relay.cloud.api.errors import Handler
from relay.cloud.api.phones import PhoneService, build_phone_app
from relay.cloud.api.routes import build_app
from relay.cloud.controlplane import CloudWorker, ControlPlane
from relay.config import Config
from relay.demo import run_demo
from relay.logs import event
from relay.secretfile import read_secret, write_secret

log = logging.getLogger("relay.app")


LISTEN_BACKLOG = 4096


class StartupError(RuntimeError):
    """A service could not start; the message says what to do."""


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


async def _listen(
    runner: web.AppRunner,
    host: str,
    port: int,
    what: str,
    ssl_context: ssl.SSLContext | None = None,
) -> int:
    """Bind one runner (one runner per service) and return the port it got."""
    await runner.setup()
    # Phones boot together after a power cut: a deep accept queue instead of aiohttp's 128
    # (2,000 simulated phones overflowed it 6,548 times, see bench/RESULTS.md).
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context, backlog=LISTEN_BACKLOG)
    try:
        await site.start()
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"{what}: port {port} on {host} is in use; pass another port or --free-ports"
            ) from exc
        raise StartupError(f"{what}: cannot listen on {host}:{port}: {exc.strerror}") from exc
    return int(runner.addresses[-1][1])


def _provisioning_account(plane: ControlPlane, path: Path) -> tuple[str | None, str | None]:
    """A new data directory gets a random provisioning account (there is no default one);
    its password is kept 0600 beside the admin token, and shown while it is still valid."""
    if not plane.provisioning.account_configured():
        user, password = "phones", secrets.token_urlsafe(18)
        plane.tenancy.update(
            {"provisioning_account": {"user": user, "password": password}}, "system"
        )
        write_secret(path, json.dumps({"user": user, "password": password}))
        event(log, "provisioning_account_created", account_file=str(path))
        return user, password
    try:
        saved = json.loads(read_secret(path) or "{}")
    except ValueError:
        saved = {}
    user, password = saved.get("user"), saved.get("password")
    if (
        isinstance(user, str)
        and isinstance(password, str)
        and plane.provisioning.check_account(user, password)
    ):
        return user, password
    return plane.tenancy.tenant()["prov_user"], None


def _names(config: Config) -> tuple[list[str], list[str]]:
    """DNS names and addresses the lab certificate must cover."""
    names = [socket.gethostname(), socket.getfqdn(), "localhost", *config.tls_names]
    ips = ["127.0.0.1"]
    if config.host not in ("127.0.0.1", "0.0.0.0", "localhost"):  # noqa: S104
        ips.append(config.host)
    return sorted(set(n for n in names if n)), ips


async def run(
    config: Config,
    emit: Callable[[dict[str, Any]], None],
    stopped: Callable[[], Awaitable[None]],
) -> None:
    """Start everything, emit the ready event, run until `stopped()` returns, shut down."""
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
    prov_user, prov_password = _provisioning_account(plane, data_dir / "provisioning-account")
    names, ips = _names(config)
    identity = ensure_lab_identity(data_dir / "tls", names, ips)
    worker = CloudWorker(plane)
    api_app = build_app(worker, config.max_body_bytes)
    api_app.middlewares.insert(0, access_log)
    phones = PhoneService(worker, trusted_proxies=config.trusted_proxies)
    runners = [web.AppRunner(api_app, access_log=None, handle_signals=False)]
    # A phone refused mid-upload is not waited for long at shutdown.
    for _ in range(2 if config.prov_http else 1):
        runners.append(
            web.AppRunner(
                build_phone_app(phones),
                access_log=None,
                handle_signals=False,
                lingering_time=1.0,
            )
        )
    demo: asyncio.Task[None] | None = None
    try:
        port = await _listen(
            runners[0], config.host, config.port(config.api_port), "control plane API"
        )
        prov_port = await _listen(
            runners[1],
            config.host,
            config.port(config.prov_port),
            "provisioning (HTTPS)",
            server_context(identity),
        )
        api = f"http://{config.host}:{port}/api/v1"
        provisioning = f"https://{config.host}:{prov_port}/"
        facts: dict[str, Any] = {
            "event": "ready",
            "api": api,
            "openapi": f"{api}/openapi.json",
            "token": token,
            "token_file": str(token_file),
            "tenant": plane.tenancy.tenant()["id"],
            "data_dir": str(data_dir),
            "provisioning": provisioning,
            "prov_user": prov_user,
            "prov_password": prov_password,
            "ca_cert": str(identity.ca_cert),
        }
        if config.prov_http:
            http_port = await _listen(
                runners[2], config.host, config.port(config.prov_http_port), "provisioning (HTTP)"
            )
            facts["provisioning_http"] = f"http://{config.host}:{http_port}/"
        event(log, "ready", api=api, provisioning=provisioning, data_dir=str(data_dir))
        emit(facts)
        if config.demo and prov_user and prov_password:
            demo = asyncio.create_task(
                run_demo(
                    config.demo, provisioning, prov_user, prov_password, identity.ca_cert, emit
                )
            )
        await stopped()
    finally:
        event(log, "stopping")
        if demo is not None:
            demo.cancel()
            await asyncio.gather(demo, return_exceptions=True)
        for runner in reversed(runners):
            await runner.cleanup()
        worker.close()
        # File reads and writes ran on the loop's default executor: stop its threads.
        await asyncio.get_running_loop().shutdown_default_executor()
        event(log, "stopped")
