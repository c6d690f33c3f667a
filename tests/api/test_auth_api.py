"""Bearer tokens, the read-only role, and auditing of every auth failure."""

from __future__ import annotations

from tests.api.conftest import Api


async def test_request_without_token_is_401_json(api: Api) -> None:
    async with api.session.get(api.base + "/sites") as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["code"] == "unauthorized"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_unknown_token_is_refused(api: Api) -> None:
    reply = await api.get("/sites", token="rly_not-a-real-token")
    assert reply.status == 401


async def test_readonly_token_reads_but_every_write_is_403(api: Api) -> None:
    created = await api.post("/tokens", {"name": "viewer", "role": "readonly"})
    assert created.status == 201
    ro = created.body["token"]
    assert (await api.get("/sites", token=ro)).status == 200
    writes = [
        ("POST", "/sites", {"name": "x", "public_subnets": []}),
        ("PATCH", "/tenant", {"hostname": "acme"}),
        ("PUT", "/deployment/global/-", {"profiles": []}),
        ("DELETE", "/profiles/REST-API-Enable", None),
        ("POST", "/devices/import", None),
    ]
    for method, path, body in writes:
        reply = await api.call(method, path, body, token=ro)
        assert reply.status == 403, (method, path)
        assert reply.body["error"]["code"] == "read_only"


async def test_revoked_token_stops_working(api: Api) -> None:
    created = (await api.post("/tokens", {"name": "temp", "role": "admin"})).body
    assert (await api.delete(f"/tokens/{created['id']}")).status == 204
    assert (await api.get("/sites", token=created["token"])).status == 401


async def test_token_list_never_shows_secrets(api: Api) -> None:
    await api.post("/tokens", {"name": "other", "role": "readonly"})
    reply = await api.get("/tokens")
    assert all(
        set(t) == {"id", "name", "role", "created", "last_used", "revoked"} for t in reply.body
    )
    assert api.token not in reply.text


async def test_auth_failures_are_in_the_activity_log(api: Api) -> None:
    await api.get("/sites", token="rly_wrong")
    entries = (await api.get("/activity")).body["entries"]
    failures = [e for e in entries if e["op"] == "auth_failed"]
    assert failures and failures[-1]["target"] == "/api/v1/sites"
    assert "rly_wrong" not in str(entries)


async def test_health_and_openapi_need_no_token(api: Api) -> None:
    async with api.session.get(api.base + "/health") as resp:
        assert resp.status == 200
    async with api.session.get(api.base + "/openapi.json") as resp:
        assert resp.status == 200
