"""The agent link's authentication, message checks and exactly-once reports
(docs/agent-link.md "Authentication", "Reports")."""

from __future__ import annotations

import io
from typing import Any

from tests.api.conftest import Api, error_of, heartbeat_body, register_relay, relay_auth

MAC = "0004f2000101"


def status_report(seq: int, online: bool = True, mac: str = MAC) -> dict[str, Any]:
    return {
        "seq": seq,
        "kind": "status",
        "body": {"device": mac, "online": online, "checked": 0},
    }


async def test_an_admin_token_is_refused_on_agent_routes(api: Api) -> None:
    reply = await api.post("/agent/heartbeat", heartbeat_body())
    assert reply.status == 401
    assert (await api.get("/agent/devices")).status == 401


async def test_a_relay_credential_is_refused_on_admin_routes(api: Api) -> None:
    auth = relay_auth(await register_relay(api))
    assert (await api.get("/sites", auth=auth)).status == 401
    assert (await api.get("/relays", auth=auth)).status == 401


async def test_a_wrong_relay_secret_is_401_and_audited(api: Api) -> None:
    credential = await register_relay(api)
    reply = await api.get("/agent/devices", auth=f"Relay {credential.relay_id}:wrong-secret")
    assert reply.status == 401
    entries = (await api.get("/activity")).body["entries"]
    failures = [e for e in entries if e["op"] == "auth_failed"]
    assert failures[-1]["target"] == "/api/v1/agent/devices"
    assert "wrong-secret" not in str(entries)


async def test_a_body_that_is_not_json_is_400(api: Api) -> None:
    auth = relay_auth(await register_relay(api))
    reply = await api.post(
        "/agent/heartbeat", data="{not json", content_type="application/json", auth=auth
    )
    assert reply.status == 400
    assert error_of(reply)["code"] == "invalid_json"


async def test_a_malformed_message_is_400_naming_the_field(api: Api) -> None:
    auth = relay_auth(await register_relay(api))
    reply = await api.post("/agent/heartbeat", {"version": "1", "uptime": 1}, auth=auth)
    assert reply.status == 400
    assert error_of(reply)["message"] == "heartbeat.download_agent is missing"
    bad_register = await api.post("/agent/register", {"tenant": 5})
    assert bad_register.status == 400


async def test_an_agent_body_over_8_mib_is_413(api: Api) -> None:
    auth = relay_auth(await register_relay(api))
    stream: Any = io.BytesIO(b" " * (8 * 1024 * 1024 + 1))
    reply = await api.post(
        "/agent/reports", data=stream, content_type="application/json", auth=auth
    )
    assert reply.status == 413


async def test_a_report_batch_sent_twice_is_stored_once(api: Api) -> None:
    await api.post("/devices", {"mac": MAC, "public_ip": "20.1.2.3"})
    auth = relay_auth(await register_relay(api))
    batch = {"reports": [status_report(1, online=False), status_report(2, online=True)]}
    first = await api.post("/agent/reports", batch, auth=auth)
    assert first.status == 200 and first.body == {"acked": 2}
    again = await api.post("/agent/reports", batch, auth=auth)
    assert again.body == {"acked": 2}
    assert (await api.get(f"/devices/{MAC}")).body["online"] is True


async def test_reports_at_or_below_the_acked_seq_are_ignored(api: Api) -> None:
    await api.post("/devices", {"mac": MAC, "public_ip": "20.1.2.3"})
    auth = relay_auth(await register_relay(api))
    await api.post("/agent/reports", {"reports": [status_report(5, online=True)]}, auth=auth)
    late = {"reports": [status_report(4, online=False), status_report(5, online=False)]}
    assert (await api.post("/agent/reports", late, auth=auth)).body == {"acked": 5}
    assert (await api.get(f"/devices/{MAC}")).body["online"] is True


async def test_an_empty_batch_answers_the_acked_seq(api: Api) -> None:
    auth = relay_auth(await register_relay(api))
    assert (await api.post("/agent/reports", {"reports": []}, auth=auth)).body == {"acked": 0}


async def test_a_result_for_an_unknown_job_is_acked_and_ignored(api: Api) -> None:
    auth = relay_auth(await register_relay(api))
    result = {
        "seq": 1,
        "kind": "result",
        "body": {"job": 99, "task_id": "t1", "device": MAC, "result": "success"},
    }
    reply = await api.post("/agent/reports", {"reports": [result]}, auth=auth)
    assert reply.status == 200 and reply.body == {"acked": 1}


async def test_acked_seqs_are_per_relay(api: Api) -> None:
    one = relay_auth(await register_relay(api, "one"))
    two = relay_auth(await register_relay(api, "two"))
    await api.post("/agent/reports", {"reports": [status_report(3)]}, auth=one)
    assert (await api.post("/agent/reports", {"reports": []}, auth=two)).body == {"acked": 0}


async def test_agent_routes_are_documented_with_relay_security(api: Api) -> None:
    paths = (await api.get("/openapi.json")).body["paths"]
    assert paths["/api/v1/agent/register"]["post"]["security"] == []
    for path, method in (("heartbeat", "post"), ("devices", "get"), ("reports", "post")):
        assert paths[f"/api/v1/agent/{path}"][method]["security"] == [{"relay": []}]
