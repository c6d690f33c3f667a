"""Helpers for the REST and SIP tests: a phone serving on loopback, and clients for it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Protocol

import aiohttp

from relay.sim.clock import ScaledClock
from relay.sim.phone import PhoneSpec, SimPhone

from .conftest import MAC, ProvServer, config, master

ADMIN = "admin-pw-1"
# 100 phone seconds per real second: a 10 s reboot takes 0.1 s, a 2 s ring 20 ms.
TIME_SCALE = 0.01


def rest_files(prov: ProvServer, **extra: str) -> None:
    """Provision REST on, a known admin password and two lines, plus `extra` parameters."""
    parameters = {
        "apps__restapi__enabled": "1",
        "device__auth__localAdminPassword": ADMIN,
        "reg__1__address": "1001",
        "reg__1__label": "Reception",
        "voIpProt__server__1__address": "pbx.example",
        **extra,
    }
    prov.files[f"{MAC}.cfg"] = master()
    prov.files["site.cfg"] = config(**parameters)


@asynccontextmanager
async def serving_phone(
    spec: Callable[..., PhoneSpec], *, time_scale: float = TIME_SCALE, **changes: object
) -> AsyncIterator[SimPhone]:
    """A booted phone serving REST and SIP on free ports; closed afterwards."""
    fields: dict[str, object] = {"rest_port": 0, "sip_port": 0, "busy_after_boot": 0.0}
    fields.update(changes)
    phone = SimPhone(spec(**fields), clock=ScaledClock(time_scale))
    try:
        await phone.boot()
        yield phone
    finally:
        await phone.aclose()


class Target(Protocol):
    """What a client needs of a phone: where its REST API is and which scheme it speaks."""

    @property
    def rest_address(self) -> tuple[str, int] | None: ...

    @property
    def rest_auth_scheme(self) -> str | None: ...


def base_url(phone: Target) -> str:
    address = phone.rest_address
    assert address is not None
    return f"https://{address[0]}:{address[1]}"


@asynccontextmanager
async def client(phone: Target, password: str = ADMIN) -> AsyncIterator[aiohttp.ClientSession]:
    """A session speaking the phone's auth scheme, not verifying its self-signed certificate."""
    connector = aiohttp.TCPConnector(ssl=False, force_close=True)
    if phone.rest_auth_scheme == "digest":
        session = aiohttp.ClientSession(
            connector=connector,
            middlewares=(aiohttp.DigestAuthMiddleware("Polycom", password),),
        )
    else:
        session = aiohttp.ClientSession(
            connector=connector,
            headers={"Authorization": aiohttp.encode_basic_auth("Polycom", password)},
        )
    async with session:
        yield session


async def call(
    phone: Target,
    method: str,
    path: str,
    data: Any = None,
    *,
    password: str = ADMIN,
    raw: bytes | None = None,
) -> tuple[int, Any]:
    """One request; returns (HTTP status, parsed JSON or None)."""
    body = raw if raw is not None else (json.dumps({"data": data}).encode() if data else None)
    async with (
        client(phone, password) as session,
        session.request(method, base_url(phone) + path, data=body) as response,
    ):
        text = await response.read()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, None


async def wait_for(check: Callable[[], bool], timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Poll `check` until it holds (real seconds)."""
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110
            await asyncio.sleep(0.005)


async def curl(*args: str) -> tuple[int, str]:
    """curl in a subprocess, without blocking the loop the phone serves on."""
    process = await asyncio.create_subprocess_exec(
        "curl",
        "-sk",
        "--max-time",
        "10",
        "-w",
        "\n%{http_code}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    out, _ = await process.communicate()
    body, _, code = out.decode().rpartition("\n")
    return int(code), body
