"""Issue 6, "Done when": an admin adds an image to the relay set through the API, watches
the relay sync it, and a site's simulated phones upgrade from the relay.

`relay.app.run` in-process (the cloud, the embedded management and download
agents and the relay's listeners, all on loopback), the REST API as the admin,
`relay sim`'s phones provisioning through the relay. The site's download path
is the relay's HTTPS URL, so APP_FILE_PATH sends the phones to the relay.

Which server answered the firmware shows in what each side could serve: in the
first test the image is registered by URL and its only source, a static server
in this test, is stopped once the relay has it, so only the relay can hand it
out; in the second the image is not in the relay set, so the relay must pass
the phones' requests on to the cloud.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from relay.sim.firmware import make_image
from relay.sim.fleet import Fleet, make_specs
from tests.e2e.conftest import Service, run_relay

IMAGE_SIZE = 3_000_000
SYNC_TIMEOUT = 60.0
BOOT_TIMEOUT = 120.0
PHONES = 8
SITE_SUBNET = "127.0.0.0/8"


async def _ok(reply: Any, status: int = 200) -> Any:
    assert reply.status == status, reply.text
    return reply.body


async def _site_downloading_from_the_relay(service: Service) -> None:
    """Every phone (behind the relay, the cloud sees the relay's 127.0.0.1 as its public
    address) is at a site whose download path is
    the relay (cloud.md "Software": the site's download path points at its relay)."""
    body = {
        "name": "Branch",
        "public_subnets": [{"cidr": SITE_SUBNET}],
        "download_path": service.facts["relay_https"],
    }
    await _ok(await service.api.post("/sites", body), 201)


async def _bind_software(service: Service, model: str, version: str) -> None:
    profiles = [f"Software-{model}-{version}", "REST-API-Enable"]
    await _ok(await service.api.put("/deployment/global/-", {"profiles": profiles}))


async def _wait_synced(service: Service, image_id: str) -> list[dict[str, Any]]:
    relay = service.facts["relay_id"]
    seen: list[dict[str, Any]] = []
    async with asyncio.timeout(SYNC_TIMEOUT):
        while True:
            seen = await _ok(await service.api.get(f"/relays/{relay}/images"))
            if [s["status"] for s in seen if s["image"] == image_id] == ["synced"]:
                return seen
            await asyncio.sleep(0.2)


def _fleet(service: Service) -> Fleet:
    specs = make_specs(
        PHONES,
        [service.facts["relay_https"]],
        user=service.facts["prov_user"],
        password=service.facts["prov_password"],
        cacert=service.facts["ca_cert"],
        seed=11,
        models={"VVX500": "", "VVX450": ""},
    )
    return Fleet(specs)


@pytest.fixture
async def static_image() -> AsyncIterator[tuple[bytes, str, web.AppRunner]]:
    """The image's only source outside the cloud: a loopback static server."""
    image = make_image("VVX", "6.4.3", IMAGE_SIZE)
    app = web.Application()

    async def get(request: web.Request) -> web.StreamResponse:
        return web.Response(body=image, content_type="application/octet-stream")

    app.router.add_get("/fw/sip.ld", get)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield image, f"http://127.0.0.1:{port}/fw/sip.ld", runner
    finally:
        await runner.cleanup()


async def test_phones_upgrade_from_the_relay_once_it_has_synced_the_image(
    service: Service,
    static_image: tuple[bytes, str, web.AppRunner],
    tmp_path: Path,
) -> None:
    image, url, source = static_image
    facts = {
        "model": "VVX",
        "version": "6.4.3",
        "filename": "sip.ld",
        "size": len(image),
        "sha256": hashlib.sha256(image).hexdigest(),
        "url": url,
    }
    registered = await _ok(await service.api.post("/images", facts), 201)
    await _ok(await service.api.put("/relay-images", [registered["id"]]))
    states = await _wait_synced(service, registered["id"])
    assert states[0]["progress"] == 1
    await source.cleanup()  # from now on only the relay has the bytes

    listed = run_relay(tmp_path, "images", "--data-dir", str(service.api.data_dir), "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    await _site_downloading_from_the_relay(service)
    await _bind_software(service, "VVX", "6.4.3")
    async with _fleet(service) as fleet:
        summary = await fleet.boot_all(timeout=BOOT_TIMEOUT)
        assert summary["errors"] == []
        listed_devices = await _ok(await service.api.get("/devices", params={"limit": "500"}))
        devices = {d["id"]: d for d in listed_devices["devices"]}
        for phone in fleet.phones:
            report = phone.report()
            assert report.firmware == "6.4.3", report.requests
            fetched = [r for r in report.requests if r[1].endswith(".sip.ld") and r[2] == 200]
            assert fetched and all(
                r[1].startswith(service.facts["relay_https"]) for r in fetched
            ), fetched
            assert devices[phone.mac]["firmware"] == "6.4.3"


async def test_the_relay_reports_its_download_agent_running(service: Service) -> None:
    relay = await _ok(await service.api.get(f"/relays/{service.facts['relay_id']}"))
    assert relay["download_agent_status"] == "active"


async def test_an_image_not_yet_on_the_relay_reaches_phones_from_the_cloud_through_it(
    service: Service,
) -> None:
    image = make_image("VVX", "6.4.3", IMAGE_SIZE)
    await _ok(
        await service.api.call(
            "POST",
            "/images",
            data=io.BytesIO(image),
            content_type="application/octet-stream",
            params={"model": "VVX", "version": "6.4.3", "filename": "sip.ld"},
        ),
        201,
    )
    await _site_downloading_from_the_relay(service)
    await _bind_software(service, "VVX", "6.4.3")
    async with _fleet(service) as fleet:
        summary = await fleet.boot_all(timeout=BOOT_TIMEOUT)
        assert summary["errors"] == []
        for phone in fleet.phones:
            assert phone.report().firmware == "6.4.3", phone.report().requests
