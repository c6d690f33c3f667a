"""The zero-touch redirect partner API (API-KEY; profiles and devices; 400/401/404/409),
the admin route that issues its key, and the relays' directory sync route
(phones.md section 1 item 5; docs/agent-link.md "ZTP directory")."""

from __future__ import annotations

import asyncio
import json
import shutil
from dataclasses import dataclass
from typing import Any

import pytest

from relay.cloud.store.store import Store
from tests.api.conftest import Api, Reply, error_of, register_relay, relay_auth

MAC = "0004f23ea4e1"
PROFILE = {
    "name": "HQ",
    "url": "https://prov.example.com/phones",
    "user": "phones",
    "password": "Pr0v-s3cret",
}
ZTP_PATHS = {
    ("get", "/api/v1/ztp/profiles"),
    ("post", "/api/v1/ztp/profiles"),
    ("get", "/api/v1/ztp/profiles/{id}"),
    ("delete", "/api/v1/ztp/profiles/{id}"),
    ("get", "/api/v1/ztp/devices"),
    ("post", "/api/v1/ztp/devices"),
    ("get", "/api/v1/ztp/devices/{mac}"),
    ("delete", "/api/v1/ztp/devices/{mac}"),
}


@dataclass
class Partner:
    """A partner API client: the `API-KEY` header and no bearer token."""

    api: Api
    key: str | None

    async def call(self, method: str, path: str, body: Any = None) -> Reply:
        headers = {} if self.key is None else {"API-KEY": self.key}
        payload = None if body is None else json.dumps(body)
        async with self.api.session.request(
            method, self.api.base + "/ztp" + path, data=payload, headers=headers
        ) as resp:
            text = await resp.text()
            parsed = json.loads(text) if resp.content_type == "application/json" else None
            return Reply(resp.status, parsed, text, dict(resp.headers))

    async def profile(self, **changes: Any) -> dict[str, Any]:
        reply = await self.call("POST", "/profiles", {**PROFILE, **changes})
        assert reply.status == 201, reply.text
        body: dict[str, Any] = reply.body
        return body

    async def assign(self, mac: str, profile: str) -> Reply:
        return await self.call("POST", "/devices", {"id": mac, "profile": profile})


async def issue_key(api: Api) -> str:
    reply = await api.post("/tenant/ztp-key")
    assert reply.status == 201, reply.text
    key: str = reply.body["api_key"]
    return key


@pytest.fixture
async def partner(api: Api) -> Partner:
    return Partner(api, await issue_key(api))


async def audited_failures(api: Api) -> list[dict[str, Any]]:
    entries = (await api.get("/activity")).body["entries"]
    return [e for e in entries if e["op"] == "auth_failed"]


def seed_other_account(api: Api, mac: str) -> None:
    """Another tenant of the same control plane holds `mac` (written beside the running
    plane through a second connection to its database)."""
    store = Store(api.data_dir / "cloud" / "cloud.db")
    try:
        with store.transaction():
            store.insert_ztp_profile(
                {
                    "id": "otherprof",
                    "tenant_id": "other-tenant",
                    "name": "Theirs",
                    "url": "https://other.example/",
                    "created": 0.0,
                }
            )
            store.put_ztp_device(
                {"mac": mac, "tenant_id": "other-tenant", "profile_id": "otherprof", "created": 0}
            )
    finally:
        store.close()


# -- the key -----------------------------------------------------------------------------


async def test_without_an_api_key_the_partner_api_is_401_and_audited(api: Api) -> None:
    reply = await Partner(api, None).call("GET", "/profiles")
    assert reply.status == 401
    assert "API-KEY" in error_of(reply)["message"]
    failures = await audited_failures(api)
    assert failures[-1]["target"] == "/api/v1/ztp/profiles"
    assert failures[-1]["detail"]["reason"] == "missing ZTP API key"


async def test_a_wrong_api_key_is_401_and_audited_without_the_key(api: Api) -> None:
    await issue_key(api)
    reply = await Partner(api, "ztp_wrong-key").call("GET", "/devices")
    assert reply.status == 401
    failures = await audited_failures(api)
    assert failures[-1]["detail"]["reason"] == "unknown ZTP API key"
    assert "ztp_wrong-key" not in str(await api.get("/activity"))


async def test_an_admin_token_is_not_a_partner_key(api: Api) -> None:
    async with api.session.get(
        api.base + "/ztp/profiles", headers={"Authorization": f"Bearer {api.token}"}
    ) as resp:
        assert resp.status == 401


async def test_a_partner_key_is_not_an_admin_token(partner: Partner) -> None:
    assert (await partner.api.get("/sites", token=partner.key)).status == 401


async def test_issuing_the_key_needs_a_full_administrator(api: Api) -> None:
    readonly = (await api.post("/tokens", {"name": "viewer", "role": "readonly"})).body["token"]
    assert (await api.post("/tenant/ztp-key", token=readonly)).status == 403
    assert (await api.post("/tenant/ztp-key", token="rly_nope")).status == 401


async def test_a_new_key_replaces_the_old_one(partner: Partner) -> None:
    newer = await issue_key(partner.api)
    assert (await partner.call("GET", "/profiles")).status == 401
    assert (await Partner(partner.api, newer).call("GET", "/profiles")).status == 200


async def test_the_key_is_shown_once_and_never_logged(partner: Partner) -> None:
    assert partner.key is not None and partner.key.startswith("ztp_")
    assert partner.key not in str(await partner.api.get("/activity"))


# -- profiles ----------------------------------------------------------------------------


async def test_a_profile_is_created_with_an_id_and_read_back_with_its_account(
    partner: Partner,
) -> None:
    created = await partner.profile()
    assert {k: created[k] for k in PROFILE} == PROFILE
    assert created["devices"] == 0
    one = await partner.call("GET", f"/profiles/{created['id']}")
    assert one.status == 200 and one.body == created
    assert (await partner.call("GET", "/profiles")).body == [created]


async def test_a_profile_without_an_account_has_empty_user_and_password(
    partner: Partner,
) -> None:
    created = await partner.profile(user=None, password=None)
    assert (created["user"], created["password"]) == ("", "")


async def test_a_bad_profile_url_is_400_naming_the_field(partner: Partner) -> None:
    reply = await partner.call("POST", "/profiles", {**PROFILE, "url": "https://a b/"})
    assert reply.status == 400
    assert error_of(reply)["field"] == "url"


async def test_a_profile_body_that_is_not_an_object_is_400(partner: Partner) -> None:
    assert (await partner.call("POST", "/profiles", ["HQ"])).status == 400


async def test_a_second_profile_with_the_same_name_is_409(partner: Partner) -> None:
    await partner.profile()
    reply = await partner.call("POST", "/profiles", PROFILE)
    assert reply.status == 409
    assert error_of(reply)["field"] == "name"


async def test_an_unknown_profile_is_404(partner: Partner) -> None:
    assert (await partner.call("GET", "/profiles/nope")).status == 404
    assert (await partner.call("DELETE", "/profiles/nope")).status == 404


async def test_an_unused_profile_is_deleted(partner: Partner) -> None:
    created = await partner.profile()
    assert (await partner.call("DELETE", f"/profiles/{created['id']}")).status == 204
    assert (await partner.call("GET", f"/profiles/{created['id']}")).status == 404


async def test_deleting_a_profile_in_use_is_409_naming_its_devices(partner: Partner) -> None:
    created = await partner.profile()
    await partner.assign(MAC, created["id"])
    reply = await partner.call("DELETE", f"/profiles/{created['id']}")
    assert reply.status == 409
    assert MAC in error_of(reply)["message"]
    assert (await partner.call("GET", f"/profiles/{created['id']}")).body["devices"] == 1


async def test_profile_passwords_never_reach_the_activity_log(partner: Partner) -> None:
    created = await partner.profile()
    await partner.assign(MAC, created["id"])
    activity = (await partner.api.get("/activity")).text
    assert "ztp-profile/" in activity
    assert PROFILE["password"] not in activity


# -- devices -----------------------------------------------------------------------------


async def test_a_device_is_assigned_by_mac_in_any_accepted_spelling(partner: Partner) -> None:
    profile = (await partner.profile())["id"]
    reply = await partner.assign("00:04:F2:3E:A4:E1", profile)
    assert reply.status == 201
    assert (reply.body["id"], reply.body["profile"]) == (MAC, profile)
    assert (await partner.call("GET", "/devices/00-04-f2-3e-a4-e1")).body == reply.body
    assert (await partner.call("GET", "/devices")).body == [reply.body]


async def test_assigning_an_assigned_device_moves_it_with_200(partner: Partner) -> None:
    first = (await partner.profile())["id"]
    second = (await partner.profile(name="Branch"))["id"]
    await partner.assign(MAC, first)
    moved = await partner.assign(MAC, second)
    assert moved.status == 200
    assert (await partner.call("GET", f"/devices/{MAC}")).body["profile"] == second


@pytest.mark.parametrize(("method", "path"), [("GET", "/devices/nope"), ("DELETE", "/devices/1")])
async def test_a_bad_mac_in_the_path_is_400(partner: Partner, method: str, path: str) -> None:
    reply = await partner.call(method, path)
    assert reply.status == 400
    assert error_of(reply)["code"] == "invalid_mac"


async def test_a_bad_mac_in_the_body_is_400(partner: Partner) -> None:
    profile = (await partner.profile())["id"]
    reply = await partner.assign("0004f23ea4e", profile)
    assert reply.status == 400
    assert error_of(reply)["field"] == "id"


async def test_assigning_to_an_unknown_profile_is_404(partner: Partner) -> None:
    reply = await partner.assign(MAC, "nope")
    assert reply.status == 404
    assert error_of(reply)["field"] == "profile"


async def test_an_unknown_device_is_404(partner: Partner) -> None:
    assert (await partner.call("GET", f"/devices/{MAC}")).status == 404
    assert (await partner.call("DELETE", f"/devices/{MAC}")).status == 404


async def test_a_released_device_is_gone_and_its_profile_can_go(partner: Partner) -> None:
    profile = (await partner.profile())["id"]
    await partner.assign(MAC, profile)
    assert (await partner.call("DELETE", f"/devices/{MAC}")).status == 204
    assert (await partner.call("GET", f"/devices/{MAC}")).status == 404
    assert (await partner.call("DELETE", f"/profiles/{profile}")).status == 204


async def test_a_mac_registered_to_another_account_is_409(partner: Partner) -> None:
    seed_other_account(partner.api, MAC)
    profile = (await partner.profile())["id"]
    reply = await partner.assign(MAC, profile)
    assert reply.status == 409
    assert "another account" in error_of(reply)["message"]


async def test_another_accounts_device_and_profile_are_invisible(partner: Partner) -> None:
    seed_other_account(partner.api, MAC)
    assert (await partner.call("GET", f"/devices/{MAC}")).status == 404
    assert (await partner.call("DELETE", f"/devices/{MAC}")).status == 404
    assert (await partner.call("GET", "/profiles/otherprof")).status == 404
    assert (await partner.call("GET", "/devices")).body == []


# -- the relays' directory ---------------------------------------------------------------


async def test_a_relay_gets_the_directory_with_an_etag(partner: Partner) -> None:
    profile = (await partner.profile())["id"]
    await partner.assign(MAC, profile)
    auth = relay_auth(await register_relay(partner.api))
    reply = await partner.api.get("/agent/ztp", auth=auth)
    assert reply.status == 200
    assert reply.body["devices"] == {MAC: {k: PROFILE[k] for k in ("url", "user", "password")}}
    headers = {k.lower(): v for k, v in reply.headers.items()}
    assert headers["etag"].startswith('"')
    assert headers["cache-control"] == "no-store"


async def test_the_directory_is_304_while_unchanged(partner: Partner) -> None:
    auth = relay_auth(await register_relay(partner.api))
    async with partner.api.session.get(
        partner.api.base + "/agent/ztp", headers={"Authorization": auth}
    ) as first:
        etag = first.headers["ETag"]
    async with partner.api.session.get(
        partner.api.base + "/agent/ztp", headers={"Authorization": auth, "If-None-Match": etag}
    ) as resp:
        assert resp.status == 304
        assert resp.headers["ETag"] == etag


async def test_every_change_bumps_the_directory_version(partner: Partner) -> None:
    auth = relay_auth(await register_relay(partner.api))
    versions = [(await partner.api.get("/agent/ztp", auth=auth)).body["version"]]
    profile = (await partner.profile())["id"]
    versions.append((await partner.api.get("/agent/ztp", auth=auth)).body["version"])
    await partner.assign(MAC, profile)
    versions.append((await partner.api.get("/agent/ztp", auth=auth)).body["version"])
    await partner.call("DELETE", f"/devices/{MAC}")
    versions.append((await partner.api.get("/agent/ztp", auth=auth)).body["version"])
    assert versions == sorted(set(versions))


async def test_the_directory_needs_a_relay_credential(partner: Partner) -> None:
    assert (await partner.api.get("/agent/ztp")).status == 401
    async with partner.api.session.get(
        partner.api.base + "/agent/ztp", headers={"API-KEY": partner.key or ""}
    ) as resp:
        assert resp.status == 401


async def test_another_accounts_devices_are_not_in_the_directory(partner: Partner) -> None:
    seed_other_account(partner.api, MAC)
    auth = relay_auth(await register_relay(partner.api))
    assert (await partner.api.get("/agent/ztp", auth=auth)).body["devices"] == {}


# -- OpenAPI -----------------------------------------------------------------------------


async def test_every_ztp_route_is_documented_with_the_api_key(api: Api) -> None:
    paths = (await api.get("/openapi.json")).body["paths"]
    documented = {(m, p) for p, ops in paths.items() for m in ops}
    assert documented >= ZTP_PATHS
    for method, path in ZTP_PATHS:
        assert paths[path][method]["security"] == [{"ztp_key": []}]
    assert paths["/api/v1/agent/ztp"]["get"]["security"] == [{"relay": []}]
    assert paths["/api/v1/tenant/ztp-key"]["post"]["security"] == [{"bearer": []}]


# -- with curl, as a partner would -------------------------------------------------------


async def curl(*args: str) -> tuple[int, str]:
    """Run curl without blocking the loop the API runs on; status and body."""
    binary = shutil.which("curl")
    if binary is None:
        pytest.skip("curl not installed (apt-get install curl)")
    proc = await asyncio.create_subprocess_exec(
        binary,
        "--silent",
        "--show-error",
        "--max-time",
        "10",
        "--write-out",
        "\n%{http_code}",
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err
    body, _, status = out.decode().rpartition("\n")
    return int(status), body


async def test_curl_creates_a_profile_and_assigns_a_phone(partner: Partner) -> None:
    key = f"API-KEY: {partner.key}"
    base = partner.api.base + "/ztp"
    status, body = await curl("-H", key, "--json", json.dumps(PROFILE), f"{base}/profiles")
    assert status == 201, body
    profile = json.loads(body)["id"]
    device = json.dumps({"id": "00:04:f2:3e:a4:e1", "profile": profile})
    status, body = await curl("-H", key, "--json", device, f"{base}/devices")
    assert (status, json.loads(body)["id"]) == (201, MAC)
    status, body = await curl("-H", key, f"{base}/devices/{MAC}")
    assert (status, json.loads(body)["profile"]) == (200, profile)
    status, _ = await curl("-H", key, "-X", "DELETE", f"{base}/devices/{MAC}")
    assert status == 204


async def test_a_dot_dot_path_under_ztp_does_not_skip_admin_auth(partner: Partner) -> None:
    status, body = await curl("--path-as-is", partner.api.base + "/ztp/../sites")
    assert status in (401, 404)
    assert "error" in json.loads(body)
