"""The relay image set over the API: the admin's routes, the download agent's routes
and the long-poll (cloud.md "Software"; docs/agent-link.md "Images")."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from relay.cloud.rules.relayimages import WAITING
from tests.api.conftest import (
    Api,
    Reply,
    ServedPlane,
    error_of,
    register_relay,
    relay_auth,
    served_plane,
)

GB4 = 4 * 10**9
FIRMWARE = bytes(range(256)) * 400


Cloud = ServedPlane


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[Cloud]:
    """The API over a control plane the test can see (to know when a poll is waiting)."""
    async with served_plane(tmp_path) as served:
        yield served


@pytest.fixture
def api(cloud: Cloud) -> Api:
    return cloud.api


# Where a registered image would be fetched from; no agent runs in these tests.
NOWHERE = "http://127.0.0.1:9/sip.ld"


async def register_image(api: Api, n: int, size: int = 1000, url: str = NOWHERE) -> str:
    body = {
        "model": "VVX",
        "version": f"6.4.{n}",
        "filename": "sip.ld",
        "size": size,
        "sha256": f"{n:064x}",
        "url": url,
    }
    reply = await api.post("/images", body)
    assert reply.status == 201, reply.text
    return str(reply.body["id"])


async def upload_image(api: Api, version: str = "7.0.0", data: bytes = FIRMWARE) -> str:
    params = {"model": "VVX", "version": version, "filename": "sip.ld"}
    reply = await api.post(
        "/images", data=data, content_type="application/octet-stream", params=params
    )
    assert reply.status == 201, reply.text
    return str(reply.body["id"])


async def agent_get(
    api: Api, path: str, auth: str, headers: dict[str, str] | None = None
) -> tuple[int, CIMultiDict[str], bytes]:
    """A GET as the download agent, with its own headers (If-None-Match, Range)."""
    async with api.session.get(
        api.base + path, headers={"Authorization": auth, **(headers or {})}
    ) as resp:
        return resp.status, CIMultiDict(resp.headers), await resp.read()


async def relay(api: Api) -> tuple[str, str]:
    credential = await register_relay(api)
    return credential.relay_id, relay_auth(credential)


async def image_set(api: Api, auth: str) -> dict[str, Any]:
    reply = await api.get("/agent/images", auth=auth)
    assert reply.status == 200, reply.text
    body: dict[str, Any] = reply.body
    return body


def report(*states: tuple[str, str, float, str], free: int = 10**10) -> dict[str, Any]:
    return {
        "states": [{"image": i, "status": s, "progress": p, "reason": r} for i, s, p, r in states],
        "free_bytes": free,
        "reserve_bytes": 10**9,
    }


def held(cloud: Cloud, monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Set once the server holds a long-poll, so a change comes while it waits."""
    event = asyncio.Event()
    watchers = cloud.plane.relay_images.watchers
    add = watchers.add

    def spy(relay_id: str, wake: Callable[[], None]) -> int:
        token = add(relay_id, wake)
        event.set()
        return token

    monkeypatch.setattr(watchers, "add", spy)
    return event


def poll(api: Api, auth: str, etag: str, wait: int = 60) -> asyncio.Task[Reply]:
    headers = {"If-None-Match": f'"{etag}"'}

    async def get() -> Reply:
        async with api.session.get(
            api.base + "/agent/images",
            params={"wait": str(wait)},
            headers={"Authorization": auth, **headers},
        ) as resp:
            body = await resp.json() if resp.status == 200 else None
            return Reply(resp.status, body, "", {"ETag": resp.headers.get("ETag", "")})

    return asyncio.create_task(get())


# -- the admin's set -------------------------------------------------------------


async def test_the_set_is_empty_at_first(api: Api) -> None:
    reply = await api.get("/relay-images")
    assert reply.body == {
        "images": [],
        "count": 0,
        "bytes": 0,
        "max_images": 40,
        "max_bytes": 30_000_000_000,
    }


async def test_putting_ids_sets_the_set_in_their_order(api: Api) -> None:
    first, second = await register_image(api, 1, 100), await register_image(api, 2, 200)
    reply = await api.put("/relay-images", [second, first])
    assert reply.status == 200
    assert (reply.body["images"], reply.body["count"], reply.body["bytes"]) == (
        [second, first],
        2,
        300,
    )
    assert (await api.get("/relay-images")).body == reply.body


async def test_an_unknown_image_is_404_naming_it_and_changes_nothing(api: Api) -> None:
    known = await register_image(api, 1)
    await api.put("/relay-images", [known])
    reply = await api.put("/relay-images", [known, "0123456789abcdef"])
    assert reply.status == 404
    assert "'0123456789abcdef'" in error_of(reply)["message"]
    assert (await api.get("/relay-images")).body["images"] == [known]


async def test_an_image_with_no_file_and_no_url_is_refused_as_unfetchable(api: Api) -> None:
    known = await register_image(api, 1)
    nowhere = await register_image(api, 2, url="")
    reply = await api.put("/relay-images", [known, nowhere])
    assert reply.status == 422
    assert error_of(reply)["code"] == "no_source"
    assert f"{nowhere!r}" in error_of(reply)["message"]
    assert (await api.get("/relay-images")).body["count"] == 0


async def test_forty_one_images_are_refused_as_too_many(api: Api) -> None:
    ids = [await register_image(api, n) for n in range(41)]
    reply = await api.put("/relay-images", ids)
    assert reply.status == 422
    assert error_of(reply)["code"] == "too_many_images"
    assert error_of(reply)["message"] == (
        "the relay set may hold at most 40 images; this one has 41"
    )
    assert (await api.get("/relay-images")).body["count"] == 0


async def test_a_set_over_30_gb_is_refused_as_too_large(api: Api) -> None:
    ids = [await register_image(api, n, GB4) for n in range(7)]
    assert (await api.put("/relay-images", ids)).status == 200
    ids.append(await register_image(api, 7, GB4))
    reply = await api.put("/relay-images", ids)
    assert reply.status == 422
    assert error_of(reply)["code"] == "too_large"
    assert "32.00 GB" in error_of(reply)["message"]
    assert "30 GB" in error_of(reply)["message"]
    assert (await api.get("/relay-images")).body["count"] == 7


@pytest.mark.parametrize("body", [{"images": []}, [5], "abc"])
async def test_a_malformed_body_is_400(api: Api, body: object) -> None:
    assert (await api.put("/relay-images", body)).status == 400


async def test_a_body_that_is_not_json_is_400(api: Api) -> None:
    reply = await api.put("/relay-images", data="[", content_type="application/json")
    assert reply.status == 400


async def test_an_image_named_twice_is_refused(api: Api) -> None:
    image = await register_image(api, 1)
    reply = await api.put("/relay-images", [image, image])
    assert reply.status == 422
    assert error_of(reply)["code"] == "duplicate_image"


async def test_setting_the_set_is_in_the_activity_log(api: Api) -> None:
    image = await register_image(api, 1)
    await api.put("/relay-images", [image])
    entries = (await api.get("/activity")).body["entries"]
    assert any(e["op"] == "set" and e["target"] == "relay-images" for e in entries)


async def test_deleting_an_image_removes_it_from_the_set(api: Api) -> None:
    first, second = await register_image(api, 1), await register_image(api, 2)
    await api.put("/relay-images", [first, second])
    assert (await api.delete(f"/images/{first}")).status == 204
    assert (await api.get("/relay-images")).body["images"] == [second]


# -- a relay's copy, as the admin sees it ------------------------------------------


async def test_a_relay_that_has_not_reported_shows_every_image_waiting(api: Api) -> None:
    image = await register_image(api, 1)
    await api.put("/relay-images", [image])
    relay_id, _ = await relay(api)
    reply = await api.get(f"/relays/{relay_id}/images")
    assert reply.status == 200
    assert [{k: e[k] for k in ("image", "status", "progress", "reason")} for e in reply.body] == [
        {"image": image, "status": "syncing", "progress": 0, "reason": WAITING}
    ]


async def test_a_report_shows_each_state_in_set_order(api: Api) -> None:
    first, second = await register_image(api, 1), await register_image(api, 2)
    await api.put("/relay-images", [first, second])
    relay_id, auth = await relay(api)
    body = report((second, "failed", 0.5, "sha256 mismatch"), (first, "synced", 1.0, ""))
    assert (await api.put("/agent/images/status", body, auth=auth)).status == 200
    view = (await api.get(f"/relays/{relay_id}/images")).body
    assert [(e["image"], e["status"], e["progress"], e["reason"]) for e in view] == [
        (first, "synced", 1.0, ""),
        (second, "failed", 0.5, "sha256 mismatch"),
    ]


async def test_a_report_on_images_outside_the_set_is_ignored(api: Api) -> None:
    image, other = await register_image(api, 1), await register_image(api, 2)
    await api.put("/relay-images", [image])
    relay_id, auth = await relay(api)
    body = report((other, "synced", 1.0, ""), ("ffffffffffffffff", "synced", 1.0, ""))
    assert (await api.put("/agent/images/status", body, auth=auth)).status == 200
    view = (await api.get(f"/relays/{relay_id}/images")).body
    assert [(e["image"], e["status"]) for e in view] == [(image, "syncing")]


async def test_a_malformed_report_is_400_naming_the_field(api: Api) -> None:
    _, auth = await relay(api)
    body = report(("0123456789abcdef", "done", 1.0, ""))
    reply = await api.put("/agent/images/status", body, auth=auth)
    assert reply.status == 400
    assert "report.states[0].status" in error_of(reply)["message"]


async def test_a_report_is_answered_with_the_current_etag(api: Api) -> None:
    await api.put("/relay-images", [await register_image(api, 1)])
    _, auth = await relay(api)
    reply = await api.put("/agent/images/status", report(), auth=auth)
    assert reply.body == {"etag": (await image_set(api, auth))["etag"]}


async def test_the_relay_shows_its_room_for_images(api: Api) -> None:
    await api.put("/relay-images", [await register_image(api, 1)])
    relay_id, auth = await relay(api)
    await api.put("/agent/images/status", report(free=123_456), auth=auth)
    reply = await api.get(f"/relays/{relay_id}")
    assert reply.status == 200
    assert reply.body["id"] == relay_id
    images = reply.body["images"]
    assert (images["free_bytes"], images["reserve_bytes"], images["syncing"]) == (
        123_456,
        10**9,
        1,
    )


async def test_an_unknown_relay_is_404(api: Api) -> None:
    assert (await api.get("/relays/rnope/images")).status == 404
    assert (await api.post("/relays/rnope/images/sync")).status == 404
    assert (await api.get("/relays/rnope")).status == 404


async def test_sync_images_counts_up_and_is_accepted(api: Api) -> None:
    relay_id, _ = await relay(api)
    first = await api.post(f"/relays/{relay_id}/images/sync")
    second = await api.post(f"/relays/{relay_id}/images/sync")
    assert (first.status, first.body, second.body) == (202, {"sync": 1}, {"sync": 2})


# -- the agent's set and content --------------------------------------------------


async def test_the_agent_gets_each_image_with_where_to_fetch_it(api: Api) -> None:
    uploaded = await upload_image(api)
    linked = await register_image(api, 1, url="https://cdn.example/sip.ld")
    await api.put("/relay-images", [uploaded, linked])
    _, auth = await relay(api)
    images = (await image_set(api, auth))["images"]
    assert [(i["id"], i["url"]) for i in images] == [
        (uploaded, ""),
        (linked, "https://cdn.example/sip.ld"),
    ]
    assert images[0]["sha256"] == hashlib.sha256(FIRMWARE).hexdigest()
    assert images[0]["size"] == len(FIRMWARE)


async def test_the_set_carries_its_etag_in_the_header(api: Api) -> None:
    _, auth = await relay(api)
    status, headers, _ = await agent_get(api, "/agent/images", auth)
    body = await image_set(api, auth)
    assert (status, headers["ETag"]) == (200, f'"{body["etag"]}"')


async def test_an_unchanged_set_is_304_without_waiting(api: Api) -> None:
    _, auth = await relay(api)
    etag = (await image_set(api, auth))["etag"]
    status, headers, _ = await agent_get(api, "/agent/images", auth, {"If-None-Match": f'"{etag}"'})
    assert (status, headers["ETag"]) == (304, f'"{etag}"')


async def test_an_unchanged_set_is_304_after_the_wait(api: Api) -> None:
    _, auth = await relay(api)
    etag = (await image_set(api, auth))["etag"]
    assert (await poll(api, auth, etag, wait=1)).status == 304


async def test_a_wait_beyond_60_seconds_is_400(api: Api) -> None:
    _, auth = await relay(api)
    status, _, _ = await agent_get(api, "/agent/images?wait=61", auth)
    assert status == 400


async def test_a_waiting_poll_is_answered_when_the_set_changes(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = cloud.api
    _, auth = await relay(api)
    etag = (await image_set(api, auth))["etag"]
    waiting_held = held(cloud, monkeypatch)
    waiting = poll(api, auth, etag)
    await waiting_held.wait()
    image = await register_image(api, 1)
    await api.put("/relay-images", [image])
    reply = await waiting
    assert reply.status == 200
    assert [i["id"] for i in reply.body["images"]] == [image]
    assert reply.headers["ETag"] == f'"{reply.body["etag"]}"'


async def test_a_waiting_poll_is_answered_when_the_relay_is_asked_to_sync(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = cloud.api
    relay_id, auth = await relay(api)
    etag = (await image_set(api, auth))["etag"]
    waiting_held = held(cloud, monkeypatch)
    waiting = poll(api, auth, etag)
    await waiting_held.wait()
    await api.post(f"/relays/{relay_id}/images/sync")
    reply = await waiting
    assert (reply.status, reply.body["sync"]) == (200, 1)
    assert reply.body["etag"] != etag


async def test_a_waiting_poll_is_answered_when_an_image_of_the_set_is_deleted(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = cloud.api
    image = await register_image(api, 1)
    await api.put("/relay-images", [image])
    _, auth = await relay(api)
    etag = (await image_set(api, auth))["etag"]
    waiting_held = held(cloud, monkeypatch)
    waiting = poll(api, auth, etag)
    await waiting_held.wait()
    await api.delete(f"/images/{image}")
    reply = await waiting
    assert (reply.status, reply.body["images"]) == (200, [])


async def test_another_relays_sync_does_not_answer_a_waiting_poll(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = cloud.api
    _, auth = await relay(api)
    other, _ = await relay(api)
    etag = (await image_set(api, auth))["etag"]
    waiting_held = held(cloud, monkeypatch)
    waiting = poll(api, auth, etag, wait=1)
    await waiting_held.wait()
    await api.post(f"/relays/{other}/images/sync")
    assert (await waiting).status == 304


async def test_shutdown_answers_a_waiting_poll_at_once(
    cloud: Cloud, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = cloud.api
    _, auth = await relay(api)
    etag = (await image_set(api, auth))["etag"]
    waiting_held = held(cloud, monkeypatch)
    waiting = poll(api, auth, etag)
    await waiting_held.wait()
    await cloud.runner.cleanup()
    assert (await waiting).status == 304


async def test_the_agent_downloads_an_image_with_its_sha256_as_etag(api: Api) -> None:
    image = await upload_image(api)
    await api.put("/relay-images", [image])
    _, auth = await relay(api)
    status, headers, body = await agent_get(api, f"/agent/images/{image}/content", auth)
    assert (status, body) == (200, FIRMWARE)
    assert headers["ETag"] == f'"{hashlib.sha256(FIRMWARE).hexdigest()}"'


async def test_the_agent_resumes_a_download_with_a_range(api: Api) -> None:
    image = await upload_image(api)
    await api.put("/relay-images", [image])
    _, auth = await relay(api)
    status, headers, body = await agent_get(
        api, f"/agent/images/{image}/content", auth, {"Range": "bytes=1000-"}
    )
    assert (status, body) == (206, FIRMWARE[1000:])
    assert headers["Content-Range"] == f"bytes 1000-{len(FIRMWARE) - 1}/{len(FIRMWARE)}"


async def test_content_of_an_image_outside_the_set_is_404(api: Api) -> None:
    image = await upload_image(api)
    _, auth = await relay(api)
    status, _, _ = await agent_get(api, f"/agent/images/{image}/content", auth)
    assert status == 404


async def test_content_the_cloud_holds_no_copy_of_is_404(api: Api) -> None:
    image = await register_image(api, 1, url="https://cdn.example/sip.ld")
    await api.put("/relay-images", [image])
    _, auth = await relay(api)
    status, _, _ = await agent_get(api, f"/agent/images/{image}/content", auth)
    assert status == 404


async def test_an_admin_token_is_refused_on_the_agent_image_routes(api: Api) -> None:
    assert (await api.get("/agent/images")).status == 401
    assert (await api.put("/agent/images/status", report())).status == 401


async def test_the_routes_are_documented(api: Api) -> None:
    paths = (await api.get("/openapi.json")).body["paths"]
    assert paths["/api/v1/relay-images"]["put"]["tags"] == ["images"]
    assert paths["/api/v1/relays/{id}/images/sync"]["post"]["tags"] == ["images"]
    assert paths["/api/v1/agent/images"]["get"]["tags"] == ["agent"]
    assert "put" in paths["/api/v1/agent/images/status"]
    assert "get" in paths["/api/v1/agent/images/{id}/content"]
