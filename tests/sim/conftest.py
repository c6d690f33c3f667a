"""A small provisioning server for simulator tests: files, uploads, Range, basic auth, a log.

It stands in for the real provisioning service (built in parallel) and
records every request with its source address and User-Agent.
"""

from __future__ import annotations

import base64
import re
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from relay.proto.polycom.cfgfile import render_config
from relay.proto.polycom.master import MasterFile, render_master
from relay.sim.clock import ScaledClock
from relay.sim.firmware import make_image
from relay.sim.phone import PhoneSpec

USER = "PlcmSpIp"
PASSWORD = "s3cret-lab"
MAC = "0004f2a1b2c3"
FIRMWARE = "5.9.7.4477"
SITE_FILES = (f"{MAC}-profile.cfg", "site.cfg")

_RANGE_RE = re.compile(r"bytes=(\d+)-(\d*)")

Handler = Callable[[web.Request], Awaitable[web.Response]]


@dataclass(frozen=True, slots=True)
class Seen:
    """One request as the server saw it."""

    method: str
    path: str
    status: int
    source_ip: str
    user_agent: str
    range: str | None


@dataclass
class ProvServer:
    """Serves `files` (name relative to the root -> bytes), stores PUTs in `uploads`.

    `handlers` answer their name themselves once the credentials are checked.
    """

    user: str = USER
    password: str = PASSWORD
    files: dict[str, bytes] = field(default_factory=dict)
    uploads: dict[str, bytes] = field(default_factory=dict)
    handlers: dict[str, Handler] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    honour_range: bool = True
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        app = web.Application()
        app.router.add_route("*", "/{name:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}/"

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def requests_from(self, source_ip: str) -> list[tuple[str, str, int]]:
        return [(s.method, s.path, s.status) for s in self.seen if s.source_ip == source_ip]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        response = self._respond(request, name)
        if response.status != 401 and name in self.handlers:
            response = await self.handlers[name](request)
        self.seen.append(
            Seen(
                method=request.method,
                path=name,
                status=response.status,
                source_ip=request.remote or "",
                user_agent=request.headers.get("User-Agent", ""),
                range=request.headers.get("Range"),
            )
        )
        if request.method == "PUT" and response.status == 204:
            body = await request.read()
            previous = self.uploads.get(name, b"") if name.endswith(".log") else b""
            self.uploads[name] = previous + body
        return response

    def _respond(self, request: web.Request, name: str) -> web.Response:
        expected = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        if request.headers.get("Authorization") != f"Basic {expected}":
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="prov"'})
        if request.method == "PUT":
            return web.Response(status=204)
        data = self.files.get(name, self.uploads.get(name))
        if data is None:
            return web.Response(status=404)
        if request.method == "HEAD":
            return web.Response(status=200, headers={"Content-Length": str(len(data))})
        if request.method != "GET":
            return web.Response(status=405)
        wanted = _RANGE_RE.fullmatch(request.headers.get("Range", ""))
        if wanted is None or not self.honour_range:
            return web.Response(body=data)
        start = int(wanted[1])
        end = min(int(wanted[2]) if wanted[2] else len(data) - 1, len(data) - 1)
        return web.Response(
            status=206,
            body=data[start : end + 1],
            headers={"Content-Range": f"bytes {start}-{end}/{len(data)}"},
        )


def master(
    config_files: tuple[str, ...] = SITE_FILES,
    app_file_path: str = "",
    **directories: str,
) -> bytes:
    return render_master(
        MasterFile(
            app_file_path=app_file_path,
            config_files=config_files,
            attributes=tuple(directories.items()),
        )
    )


def config(**parameters: str) -> bytes:
    """A <polycomConfig> file; keyword `a__b` names parameter `a.b`."""
    return render_config({name.replace("__", "."): value for name, value in parameters.items()})


def standard_files() -> dict[str, bytes]:
    """The VVX 500 of phones.md section 2: its own master file, two CONFIG_FILES, no firmware."""
    return {
        f"{MAC}.cfg": master(),
        f"{MAC}-profile.cfg": config(reg__1__address="1001", voice__volume="5"),
        "site.cfg": config(reg__1__address="9999", tcpIpApp__sntp__address="pool.ntp.org"),
    }


@pytest.fixture
async def prov() -> AsyncIterator[ProvServer]:
    server = ProvServer(files=standard_files())
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def spec(prov: ProvServer) -> Callable[..., PhoneSpec]:
    """A VVX 500 spec against `prov`; keywords override fields."""

    def make(**changes: object) -> PhoneSpec:
        fields: dict[str, object] = {
            "mac": MAC,
            "model": "VVX500",
            "firmware": FIRMWARE,
            "source_ip": "127.20.0.1",
            "servers": (prov.url,),
            "user": USER,
            "password": PASSWORD,
        }
        fields.update(changes)
        return PhoneSpec(**fields)  # type: ignore[arg-type]

    return make


@pytest.fixture
def fast_clock() -> ScaledClock:
    """An hour of phone time in 0.36 s."""
    return ScaledClock(time_scale=0.0001)


def firmware_image(version: str, size: int = 4096) -> bytes:
    return make_image("PolycomVVX", version, size)


def refused_url() -> str:
    """A loopback URL nothing listens on: connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def lab_ca(directory: Path) -> tuple[ssl.SSLContext, str]:
    """A server TLS context for 127.0.0.1 and the CA file that verifies it."""
    from certs.lab import ensure_lab_identity

    identity = ensure_lab_identity(directory, [], ["127.0.0.1"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(identity.cert, identity.key)
    return context, str(identity.ca_cert)
