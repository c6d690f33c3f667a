"""A running control plane (the real `relay.app.run`) on a loopback port, and a client."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.typedefs import Middleware

from relay.app import run
from relay.cloud.api.routes import build_app
from relay.cloud.controlplane import CloudWorker, ControlPlane
from relay.config import Config
from relay.sync.messages import Credential


@dataclass
class Reply:
    status: int
    body: Any
    text: str
    headers: dict[str, str]


@dataclass
class Api:
    """A thin client: every call returns status and decoded body."""

    base: str
    token: str
    session: aiohttp.ClientSession
    data_dir: Path

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        data: bytes | str | io.BytesIO | None = None,
        content_type: str | None = None,
        token: str | None = None,
        params: dict[str, str] | None = None,
        auth: str | None = None,
    ) -> Reply:
        """`auth` replaces the whole Authorization header (a relay's `Relay id:secret`)."""
        bearer = f"Bearer {token if token is not None else self.token}"
        headers = {"Authorization": auth if auth is not None else bearer}
        if content_type:
            headers["Content-Type"] = content_type
        payload: bytes | str | io.BytesIO | None = data
        if body is not None:
            payload = json.dumps(body)
            headers["Content-Type"] = "application/json"
        async with self.session.request(
            method, self.base + path, data=payload, headers=headers, params=params
        ) as resp:
            raw = await resp.read()
            text = raw.decode("utf-8", "replace")
            parsed: Any = None
            if resp.content_type == "application/json" and raw:
                parsed = json.loads(raw)
            return Reply(resp.status, parsed, text, dict(resp.headers))

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.call("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.call("POST", path, body, **kw)

    async def put(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.call("PUT", path, body, **kw)

    async def patch(self, path: str, body: Any = None, **kw: Any) -> Reply:
        return await self.call("PATCH", path, body, **kw)

    async def delete(self, path: str, **kw: Any) -> Reply:
        return await self.call("DELETE", path, **kw)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    """`relay up` in-process, on free loopback ports, with a fresh data directory."""
    config = Config(data_dir=tmp_path / "data", free_ports=True, agent=False)
    ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()

    async def stopped() -> None:
        await stop.wait()

    task = asyncio.create_task(run(config, ready.set_result, stopped))
    facts = await asyncio.wait_for(asyncio.shield(ready), 30)
    try:
        async with aiohttp.ClientSession() as session:
            yield Api(facts["api"], facts["token"], session, config.data_dir)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


class Clock:
    """A settable clock for the control plane (time-dependent rules: PIN, link status)."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@dataclass
class ServedPlane:
    """A control plane, its API app's runner (a test may stop it) and a client."""

    api: Api
    plane: ControlPlane
    runner: web.AppRunner


@contextlib.asynccontextmanager
async def served_plane(
    data_dir: Path,
    clock: Callable[[], float] = time.time,
    middlewares: Sequence[Middleware] = (),
) -> AsyncIterator[ServedPlane]:
    """A bootstrapped control plane (in `data_dir`/cloud, on `clock`) and its API app on
    a loopback port, with an admin token; everything closed on exit."""
    plane = ControlPlane(data_dir / "cloud", clock=clock)
    token = plane.bootstrap()
    assert token is not None
    worker = CloudWorker(plane)
    app = build_app(worker, 20 * 1024 * 1024)
    app.middlewares.extend(middlewares)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as session:
            api = Api(f"http://127.0.0.1:{port}/api/v1", token, session, data_dir)
            yield ServedPlane(api, plane, runner)
    finally:
        await runner.cleanup()
        worker.close()
        await asyncio.get_running_loop().shutdown_default_executor()


@pytest.fixture
async def clocked_api(tmp_path: Path, clock: Clock) -> AsyncIterator[Api]:
    """The API app over a control plane that runs on `clock`, on a loopback port."""
    async with served_plane(tmp_path, clock) as served:
        yield served.api


async def registration(api: Api, name: str = "relay-1", **extra: Any) -> dict[str, Any]:
    """A valid registration body: the tenant ID and current PIN as the console shows them."""
    tenant = (await api.get("/tenant")).body["id"]
    pin = (await api.get("/tenant/pin")).body["pin"]
    return {"tenant": tenant, "pin": pin, "name": name, "version": "1.0", **extra}


async def register_relay(api: Api, name: str = "relay-1") -> Credential:
    reply = await api.post("/agent/register", await registration(api, name))
    assert reply.status == 201, reply.text
    return Credential.from_wire(reply.body)


def relay_auth(credential: Credential) -> str:
    return f"Relay {credential.relay_id}:{credential.secret}"


def heartbeat_body(
    *addresses: str, download_agent: str = "absent", version: str = "1.0"
) -> dict[str, Any]:
    return {
        "version": version,
        "addresses": list(addresses),
        "uptime": 12.0,
        "download_agent": download_agent,
    }


CSV = "text/csv"


async def post_large(api: Api, path: str, body: bytes) -> Reply:
    """Stream a big body: aiohttp warns (an error here) when handed that many raw bytes."""
    stream: Any = io.BytesIO(body)
    return await api.post(path, data=stream, content_type=CSV)


def only_row(report: dict[str, Any]) -> dict[str, Any]:
    """The one row of an import report."""
    assert len(report["rows"]) == 1, report
    row: dict[str, Any] = report["rows"][0]
    return row


def error_of(reply: Reply) -> dict[str, Any]:
    """The `error` object of a JSON error reply."""
    assert isinstance(reply.body, dict) and "error" in reply.body, reply.text
    error: dict[str, Any] = reply.body["error"]
    return error
