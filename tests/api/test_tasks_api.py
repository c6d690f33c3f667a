"""Scheduled tasks over the REST API and the agent's job long-poll (cloud.md
"Scheduled tasks"; docs/agent-link.md "Jobs")."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
from typing import Any

import pytest

from relay.cloud.rules.tasks import MASK, PNG_SIGNATURE
from tests.api.conftest import Api, Clock, error_of, register_relay, relay_auth

MAC = "0004f2000201"
OTHER = "0004f2000202"

VALID_OPTIONS: list[tuple[str, dict[str, Any]]] = [
    ("check_sync", {"reboot": True}),
    ("reboot", {}),
    ("reset", {"scope": "factory"}),
    ("set_parameters", {"parameters": {f"p.{i}": str(i) for i in range(45)}}),
    ("dial", {"dest": "1001", "line": 2, "dial_type": "TEL"}),
    ("get_config", {"scope": "all"}),
    ("ad_password", {"password": "n3w-secret", "line": 1}),
    ("capture_screen", {}),
]


async def _phones(api: Api, *macs: str, **extra: Any) -> None:
    for mac in macs:
        body = {"mac": mac, "model": "VVX450", "private_ip": "10.1.0.7", **extra}
        assert (await api.post("/devices", body)).status == 201


async def _task(api: Api, **body: Any) -> dict[str, Any]:
    reply = await api.post("/tasks", {"type": "reboot", "targets": {"devices": [MAC]}, **body})
    assert reply.status == 201, reply.text
    out: dict[str, Any] = reply.body
    return out


async def _jobs(api: Api, auth: str, after: int = 0, wait: int = 0) -> list[dict[str, Any]]:
    reply = await api.get(f"/agent/jobs?after={after}&wait={wait}", auth=auth)
    assert reply.status == 200, reply.text
    jobs: list[dict[str, Any]] = reply.body["jobs"]
    return jobs


def _report(result: dict[str, Any]) -> dict[str, Any]:
    return {"reports": [{"seq": 1, "kind": "result", "body": result}]}


@pytest.mark.parametrize(("task_type", "options"), VALID_OPTIONS)
async def test_each_task_type_is_created_with_its_options(
    api: Api, task_type: str, options: dict[str, Any]
) -> None:
    await _phones(api, MAC)
    out = await _task(api, type=task_type, options=options, when="skip")
    got = (await api.get(f"/tasks/{out['id']}")).body
    assert (got["type"], got["status"], got["total"]) == (task_type, "done", 1)


async def test_bad_options_are_422_with_the_message(api: Api) -> None:
    await _phones(api, MAC)
    reply = await api.post(
        "/tasks", {"type": "get_config", "targets": {"devices": [MAC]}, "options": {"scope": "x"}}
    )
    assert reply.status == 422
    assert error_of(reply)["message"] == (
        "options.scope must be one of provisioning, local, web, device, all"
    )


async def test_an_unknown_target_is_422_naming_it(api: Api) -> None:
    reply = await api.post("/tasks", {"type": "reboot", "targets": {"groups": ["nowhere"]}})
    assert reply.status == 422
    assert "'nowhere'" in error_of(reply)["message"]


async def test_the_ad_password_is_never_shown(api: Api) -> None:
    await _phones(api, MAC)
    out = await _task(api, type="ad_password", options={"password": "n3w-secret"})
    assert out["options"]["password"] == MASK
    assert "n3w-secret" not in (await api.get("/tasks")).text


async def test_a_task_due_now_hands_its_jobs_to_the_relay(api: Api) -> None:
    auth = relay_auth(await register_relay(api))
    await _phones(api, MAC, OTHER)
    out = await _task(api, targets={"devices": [MAC, OTHER]})
    assert out["status"] == "executing"
    jobs = await _jobs(api, auth)
    assert [(j["task_id"], j["device"]["mac"]) for j in jobs] == [
        (out["id"], MAC),
        (out["id"], OTHER),
    ]
    assert jobs[0]["device"]["address"] == "10.1.0.7"


async def test_the_long_poll_answers_when_a_task_is_created(api: Api) -> None:
    auth = relay_auth(await register_relay(api))
    await _phones(api, MAC)
    poll = asyncio.create_task(_jobs(api, auth, wait=30))
    await asyncio.sleep(0.2)
    assert not poll.done()
    await _task(api)
    jobs = await asyncio.wait_for(poll, 5)
    assert [j["device"]["mac"] for j in jobs] == [MAC]


async def test_an_empty_long_poll_answers_after_its_wait(api: Api) -> None:
    auth = relay_auth(await register_relay(api))
    assert await _jobs(api, auth, wait=1) == []


async def test_reported_results_finish_the_task(api: Api) -> None:
    auth = relay_auth(await register_relay(api))
    await _phones(api, MAC)
    out = await _task(api, type="get_config", options={"scope": "local"})
    job = (await _jobs(api, auth))[0]
    body = {"job": job["seq"], "task_id": out["id"], "device": MAC, "result": "success"}
    body["data"] = {"voIpProt.SIP.enable": "1"}
    reply = await api.post("/agent/reports", _report(body), auth=auth)
    assert reply.status == 200, reply.text
    done = (await api.get(f"/tasks/{out['id']}")).body
    assert (done["status"], done["success"]) == ("done", 1)
    assert done["results"][0]["data"] == {"voIpProt.SIP.enable": "1"}


async def test_a_screen_capture_is_served_as_png(api: Api) -> None:
    auth = relay_auth(await register_relay(api))
    await _phones(api, MAC)
    out = await _task(api, type="capture_screen")
    job = (await _jobs(api, auth))[0]
    image = PNG_SIGNATURE + b"pixels"
    body = {"job": job["seq"], "task_id": out["id"], "device": MAC, "result": "success"}
    body["data"] = {"image_png": base64.b64encode(image).decode()}
    await api.post("/agent/reports", _report(body), auth=auth)
    screen = (await api.get(f"/tasks/{out['id']}")).body["results"][0]["screen"]
    url = api.base + screen.removeprefix("/api/v1")
    async with api.session.get(url, headers={"Authorization": f"Bearer {api.token}"}) as resp:
        assert resp.status == 200 and resp.content_type == "image/png"
        assert await resp.read() == image


async def test_a_scheduled_task_starts_when_its_time_comes(clocked_api: Api, clock: Clock) -> None:
    api = clocked_api
    await register_relay(api)
    await _phones(api, MAC)
    at = dt.datetime.fromtimestamp(clock.now + 600, dt.UTC).isoformat()
    out = await _task(api, when=at)
    assert out["status"] == "scheduled"
    clock.advance(601)
    for _ in range(40):
        if (await api.get(f"/tasks/{out['id']}")).body["status"] == "executing":
            break
        await asyncio.sleep(0.1)
    assert (await api.get(f"/tasks/{out['id']}")).body["status"] == "executing"


async def test_editing_a_task_that_ran_is_409(api: Api) -> None:
    await register_relay(api)
    await _phones(api, MAC)
    out = await _task(api)
    assert (await api.patch(f"/tasks/{out['id']}", {"name": "late"})).status == 409


async def test_deleting_an_executing_task_is_409(api: Api) -> None:
    await register_relay(api)
    await _phones(api, MAC)
    out = await _task(api)
    assert (await api.delete(f"/tasks/{out['id']}")).status == 409


async def test_tasks_are_listed_newest_first_and_filtered(api: Api) -> None:
    await _phones(api, MAC)
    first = await _task(api, when="skip")
    second = await _task(api, when="2031-01-01T00:00:00Z")
    listed = (await api.get("/tasks")).body
    assert [t["id"] for t in listed] == [second["id"], first["id"]]
    scheduled = (await api.get("/tasks?status=scheduled")).body
    assert [t["id"] for t in scheduled] == [second["id"]]


async def test_a_profile_edit_offers_to_apply_it_to_the_devices_it_reaches(api: Api) -> None:
    await _phones(api, MAC, OTHER)
    await api.post("/device-groups", {"name": "g"})
    await api.post("/device-groups/g/devices", {"add": [MAC]})
    await api.post("/profiles", {"name": "p", "parameters": {"a.b": "1"}})
    await api.put("/deployment/group/g", {"profiles": ["p"]})
    reply = await api.patch("/profiles/p", {"parameters": {"a.b": "2"}})
    assert reply.body["affected_devices"] == [MAC]
    assert reply.body["apply_task"] == {
        "type": "check_sync",
        "name": "Apply provisioning changes",
        "targets": {"devices": [MAC]},
        "when": "now",
    }


async def test_apply_now_on_a_binding_creates_the_task(api: Api) -> None:
    await _phones(api, MAC)
    await api.post("/profiles", {"name": "p", "parameters": {"a.b": "1"}})
    reply = await api.put(f"/deployment/device/{MAC}", {"profiles": ["p"]}, params={"apply": "now"})
    assert reply.status == 200 and reply.body["affected_devices"] == [MAC]
    task = (await api.get(f"/tasks/{reply.body['task_id']}")).body
    assert (task["type"], task["targets"]["devices"]) == ("check_sync", [MAC])


async def test_a_group_membership_change_offers_the_added_and_removed_devices(api: Api) -> None:
    await _phones(api, MAC, OTHER)
    await api.post("/device-groups", {"name": "g"})
    await api.post("/device-groups/g/devices", {"add": [MAC]})
    reply = await api.post("/device-groups/g/devices", {"add": [OTHER], "remove": [MAC]})
    assert reply.body["affected_devices"] == [MAC, OTHER]


async def test_a_bad_apply_changes_nothing(api: Api) -> None:
    await _phones(api, MAC)
    await api.post("/profiles", {"name": "p"})
    reply = await api.put(
        f"/deployment/device/{MAC}", {"profiles": ["p"]}, params={"apply": "soon"}
    )
    assert reply.status == 422 and error_of(reply)["field"] == "apply"
    assert (await api.get(f"/deployment/device/{MAC}")).body["profiles"] == []


async def test_the_task_routes_are_documented(api: Api) -> None:
    paths = (await api.get("/openapi.json")).body["paths"]
    assert {"post", "get"} <= set(paths["/api/v1/tasks"])
    assert paths["/api/v1/agent/jobs"]["get"]["security"] == [{"relay": []}]
