"""Fixtures for the agent's phone side: a scriptable HTTPS "phone" and real simulated phones.

The scripted phone (`fake_phone`) shows what the simulator cannot easily show
(a stale nonce, SHA-256 Digest, malformed answers, a phone that never
answers); everything else runs against relay.sim phones provisioned from the
simulator tests' provisioning server.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from management_agent.phone_client import PhoneClient
from management_agent.sip_notify import SipNotifier
from relay.sim.clock import ScaledClock
from relay.sim.phone import PhoneSpec, SimPhone
from relay.sim.rest import server_context
from relay.sync.messages import Target
from tests.ports import free_port
from tests.sim.conftest import PASSWORD, USER, ProvServer, config, master

ADMIN_PASSWORD = "Adm1n-pass"
MAC = "0004f2a1b2c3"
# Phone time runs 100 times faster: a 10 s reboot takes 0.1 s, a 1 s busy spell 10 ms.
TIME_SCALE = 0.01

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def target(
    address: str = "127.0.0.1",
    *,
    mac: str = MAC,
    password: str = ADMIN_PASSWORD,
    rest: bool = True,
    model: str = "VVX500",
) -> Target:
    return Target(
        mac=mac, address=address, model=model, firmware="5.9.7.4477", rest=rest, password=password
    )


def rest_reply(data: object = None, status: str = "2000", http: int = 200) -> web.Response:
    body: dict[str, object] = {"Status": status}
    if data is not None:
        body["data"] = data
    return web.json_response(body, status=http)


async def until(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    """Wait for a state change the simulator makes in the background (a reboot)."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached in time")


@dataclass
class FakePhone:
    """An HTTPS server answering with `handler`; records each request's method, path
    and Authorization header, and the most requests it ever had in progress at once."""

    handler: Handler = field(default=lambda _request: _ok())
    seen: list[tuple[str, str, str]] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    in_progress: int = 0
    peak: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=0.1
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_context())
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, request.path, request.headers.get("Authorization", "")))
        self.bodies.append(await request.read())
        self.in_progress += 1
        self.peak = max(self.peak, self.in_progress)
        try:
            return await self.handler(request)
        finally:
            self.in_progress -= 1


async def _ok() -> web.Response:
    return rest_reply()


@pytest.fixture
async def fake_phone() -> AsyncIterator[FakePhone]:
    phone = FakePhone()
    await phone.start()
    yield phone
    await phone.close()


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[..., PhoneClient]]:
    """PhoneClients with fast retries (closed at the end); keywords override."""
    made: list[PhoneClient] = []

    def make(port: int, **options: object) -> PhoneClient:
        settings: dict[str, object] = {
            "port": port,
            "timeout": 5.0,
            "backoff": 0.01,
            "rng": random.Random(7),
        }
        settings.update(options)
        client = PhoneClient(**settings)  # type: ignore[arg-type]
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


# -- simulated phones ------------------------------------------------------------


def phone_files(mac: str, **extra: str) -> dict[str, bytes]:
    """Provisioning for one phone: REST on, an admin password, a line, screen capture on."""
    settings = {
        "apps__restapi__enabled": "1",
        "device__auth__localAdminPassword": ADMIN_PASSWORD,
        "reg__1__address": "1001",
        "reg__1__label": "Reception",
        "voIpProt__server__1__address": "pbx.example.test",
        "up__screenCapture__enabled": "1",
        "voice__volume": "5",
    }
    settings.update(extra)
    return {
        f"{mac}.cfg": master(config_files=(f"{mac}-site.cfg",)),
        f"{mac}-site.cfg": config(**settings),
    }


@dataclass
class Lab:
    """A provisioning server and the simulated phones booted against it."""

    prov: ProvServer
    clock: ScaledClock
    rest_port: int
    sip_port: int
    phones: list[SimPhone] = field(default_factory=list)

    async def phone(
        self,
        *,
        mac: str = MAC,
        model: str = "VVX500",
        ip: str = "127.30.0.1",
        files: dict[str, bytes] | None = None,
        **spec: object,
    ) -> SimPhone:
        self.prov.files.update(files if files is not None else phone_files(mac))
        fields: dict[str, object] = {
            "mac": mac,
            "model": model,
            "firmware": "5.9.7.4477",
            "source_ip": ip,
            "servers": (self.prov.url,),
            "user": USER,
            "password": PASSWORD,
            "rest_port": self.rest_port,
            "sip_port": self.sip_port,
            "busy_after_boot": 0.0,
        }
        fields.update(spec)
        phone = SimPhone(PhoneSpec(**fields), clock=self.clock)  # type: ignore[arg-type]
        self.phones.append(phone)
        report = await phone.boot()
        assert report.state == "provisioned", report.errors
        return phone

    def target(self, phone: SimPhone, *, password: str = ADMIN_PASSWORD) -> Target:
        return target(
            phone.spec.source_ip,
            mac=phone.mac,
            password=password,
            rest=phone.rest_auth_scheme is not None,
            model=phone.spec.model,
        )


@pytest.fixture
async def lab() -> AsyncIterator[Lab]:
    prov = ProvServer(files={})
    await prov.start()
    bench = Lab(
        prov=prov,
        clock=ScaledClock(time_scale=TIME_SCALE),
        rest_port=free_port(),
        sip_port=free_port(socket.SOCK_DGRAM),
    )
    yield bench
    await asyncio.gather(*(phone.aclose() for phone in bench.phones))
    await prov.close()


@pytest.fixture
def sip_notifier(lab: Lab) -> SipNotifier:
    return SipNotifier(local_host="127.0.0.1", sip_port=lab.sip_port, t1=0.05)
