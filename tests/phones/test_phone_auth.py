"""HTTP basic auth on the phone-facing service: the tenant's provisioning account, no
default account, 401 + audit for wrong credentials, throttling per source address."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest
from aiohttp import web

from relay.cloud.api.phones import PhoneService, build_phone_app
from relay.cloud.controlplane import CloudWorker, ControlPlane
from tests.api.conftest import Api
from tests.phones.conftest import (
    MAC,
    NO_AUTH,
    Relay,
    activity,
    curl_binary,
    settle_after_shutdown,
)

WRONG = ("phones", "not-the-password")
FACTORY = ("PlcmSpIp", "PlcmSpIp")


@pytest.fixture
async def no_account_service(tmp_path: Path) -> AsyncIterator[Relay]:
    """The phone app over a control plane whose tenant has no provisioning account,
    served over plain HTTP on a free loopback port."""
    binary = curl_binary()
    plane = ControlPlane(tmp_path / "cloud")
    plane.bootstrap()
    assert not plane.provisioning.account_configured()
    worker = CloudWorker(plane)
    runner = web.AppRunner(
        build_phone_app(PhoneService(worker)), access_log=None, handle_signals=False
    )
    try:
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        facts = {
            "provisioning": f"http://127.0.0.1:{port}/",
            "prov_user": FACTORY[0],
            "prov_password": FACTORY[1],
        }
        (tmp_path / "curl").mkdir()
        yield Relay(cast(Api, None), facts, tmp_path / "curl", binary)
    finally:
        await runner.cleanup()
        worker.close()
        await settle_after_shutdown()


@pytest.mark.parametrize(
    ("method", "path", "auth"),
    [
        ("GET", "/000000000000.cfg", None),
        ("GET", f"/{MAC}.cfg", None),
        ("GET", f"/{MAC}-profile.cfg", NO_AUTH),
        ("PUT", f"/{MAC}-app.log", None),
    ],
)
async def test_without_an_account_every_request_gets_403_saying_how_to_set_it(
    no_account_service: Relay, method: str, path: str, auth: tuple[str, str] | None
) -> None:
    reply = await no_account_service.curl(
        method, path, auth=auth, upload=b"log\n" if method == "PUT" else None
    )
    assert reply.status == 403
    assert "provisioning_account" in reply.text
    assert "PATCH /api/v1/tenant" in reply.text


async def test_the_correct_account_is_served(relay: Relay) -> None:
    reply = await relay.curl("GET", "/000000000000.cfg")
    assert reply.status == 200
    assert reply.body.startswith(b"<?xml")


async def test_the_account_also_works_on_the_plain_http_listener(relay: Relay) -> None:
    reply = await relay.curl("GET", "/000000000000.cfg", base=relay.http)
    assert reply.status == 200
    assert b"<APPLICATION" in reply.body


async def test_the_factory_default_account_is_not_accepted(relay: Relay) -> None:
    reply = await relay.curl("GET", "/000000000000.cfg", auth=FACTORY)
    assert reply.status == 401


async def test_a_wrong_password_gets_401_asking_for_basic_auth(relay: Relay) -> None:
    reply = await relay.curl("GET", "/000000000000.cfg", auth=(relay.account[0], "wrong-pass"))
    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith("Basic")


async def test_a_wrong_user_with_the_right_password_gets_401(relay: Relay) -> None:
    reply = await relay.curl("GET", "/000000000000.cfg", auth=("someone", relay.account[1]))
    assert reply.status == 401


async def test_missing_credentials_get_401_asking_for_basic_auth(relay: Relay) -> None:
    reply = await relay.curl("GET", f"/{MAC}.cfg", auth=NO_AUTH)
    assert reply.status == 401
    assert reply.headers["www-authenticate"].startswith("Basic")


@pytest.mark.parametrize(
    "header",
    [
        "Authorization: Basic !!!not-base64!!!",
        "Authorization: Basic " + base64.b64encode(b"no-colon-here").decode(),
        "Authorization: Basic " + base64.b64encode(b"\xff\xfe:\xff").decode(),
        "Authorization: Bearer abc",
        "Authorization: Basic " + "A" * 4000,
    ],
)
async def test_malformed_authorization_headers_get_401(relay: Relay, header: str) -> None:
    reply = await relay.curl("GET", "/000000000000.cfg", auth=NO_AUTH, headers=[header])
    assert reply.status == 401


async def test_a_failed_login_is_audited_with_its_source(relay: Relay) -> None:
    await relay.curl("GET", f"/{MAC}.cfg", auth=WRONG)
    entries = await activity(relay, "auth_failed")
    assert len(entries) == 1
    assert entries[0]["detail"]["source"] == "127.0.0.1"
    assert MAC in entries[0]["target"]


async def test_wrong_credentials_for_a_known_device_record_a_failed_result(relay: Relay) -> None:
    assert (await relay.api.post("/devices", {"mac": MAC})).status == 201
    await relay.curl("GET", f"/{MAC}-profile.cfg", auth=WRONG)
    device = (await relay.api.get(f"/devices/{MAC}")).body
    assert device["last_result"] == "FAILED"
    assert "credentials" in device["last_error"]


async def _fail_until_throttled(relay: Relay, attempts: int = 8) -> list[int]:
    statuses = []
    for _ in range(attempts):
        reply = await relay.curl("GET", "/000000000000.cfg", auth=WRONG)
        statuses.append(reply.status)
        if reply.status == 429:
            assert int(reply.headers["retry-after"]) >= 1
            break
    return statuses


async def test_a_source_that_keeps_failing_gets_429_with_retry_after(relay: Relay) -> None:
    statuses = await _fail_until_throttled(relay)
    assert statuses[:5] == [401] * 5
    assert statuses[-1] == 429


async def test_after_five_failures_the_next_attempt_gets_429(relay: Relay) -> None:
    """The issue: "after 5 failures the source gets 429 with Retry-After"."""
    for _ in range(5):
        assert (await relay.curl("GET", "/000000000000.cfg", auth=WRONG)).status == 401
    reply = await relay.curl("GET", "/000000000000.cfg", auth=WRONG)
    assert reply.status == 429
    assert int(reply.headers["retry-after"]) >= 1


async def test_a_throttled_source_is_refused_even_with_the_right_account(relay: Relay) -> None:
    assert (await _fail_until_throttled(relay))[-1] == 429
    assert (await relay.curl("GET", "/000000000000.cfg")).status == 429


async def test_another_source_is_still_served_while_one_is_throttled(relay: Relay) -> None:
    assert (await _fail_until_throttled(relay))[-1] == 429
    reply = await relay.curl("GET", "/000000000000.cfg", extra=["--interface", "127.0.0.2"])
    assert reply.status == 200
    entries = await activity(relay, "auth_failed")
    assert {e["detail"]["source"] for e in entries} == {"127.0.0.1"}
