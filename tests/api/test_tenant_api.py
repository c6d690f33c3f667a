"""The tenant's provisioning settings (cloud.md "Tenant, relays and PIN")."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api


async def test_relay_up_gives_a_new_data_directory_a_random_account(api: Api) -> None:
    account = (await api.get("/tenant")).body["provisioning_account"]
    assert account == {"user": "phones", "configured": True}
    assert (api.data_dir / "provisioning-account").stat().st_mode & 0o777 == 0o600


async def test_provisioning_account_is_set_and_its_password_never_returned(api: Api) -> None:
    body = {"provisioning_account": {"user": "phones", "password": "a-long-secret-1"}}
    reply = await api.patch("/tenant", body)
    assert reply.body["provisioning_account"] == {"user": "phones", "configured": True}
    assert "a-long-secret-1" not in reply.text


async def test_short_provisioning_password_is_refused(api: Api) -> None:
    body = {"provisioning_account": {"user": "phones", "password": "short"}}
    reply = await api.patch("/tenant", body)
    assert reply.status == 422
    assert reply.body["error"]["field"] == "provisioning_account.password"


async def test_the_phones_factory_account_can_be_chosen_on_purpose(api: Api) -> None:
    body = {"provisioning_account": {"user": "PlcmSpIp", "password": "PlcmSpIp"}}
    assert (await api.patch("/tenant", body)).status == 200


async def test_the_factory_password_with_another_user_is_still_too_short(api: Api) -> None:
    body = {"provisioning_account": {"user": "phones", "password": "PlcmSpIp"}}
    assert (await api.patch("/tenant", body)).status == 422


@pytest.mark.parametrize("hostname", ["acme", "ab", "a_b-1", "x" * 31])
async def test_valid_host_names_are_accepted(api: Api, hostname: str) -> None:
    assert (await api.patch("/tenant", {"hostname": hostname})).status == 200


@pytest.mark.parametrize(
    "hostname",
    [
        "a",
        "x" * 32,
        "Acme",
        "-acme",
        "acme-",
        "t1234",
        "t1x",
        "www",
        "ops1",
        "service-a",
        "console",
        "ac me",
    ],
)
async def test_invalid_or_reserved_host_names_are_refused(api: Api, hostname: str) -> None:
    reply = await api.patch("/tenant", {"hostname": hostname})
    assert reply.status == 422
    assert reply.body["error"]["field"] == "hostname"


async def test_download_paths_and_polling_window_are_editable(api: Api) -> None:
    body = {
        "download_paths": {
            "enterprise": "https://relay.example.com/",
            "internet": "https://cloud.example.com/",
        },
        "polling_window": {"start": "01:00", "end": "02:30"},
    }
    reply = await api.patch("/tenant", body)
    assert reply.body["download_paths"] == body["download_paths"]
    assert reply.body["polling_window"] == body["polling_window"]


async def test_activity_log_records_administrator_operations(api: Api) -> None:
    await api.post("/device-groups", {"name": "g"})
    await api.patch("/tenant", {"hostname": "acme"})
    entries = (await api.get("/activity")).body["entries"]
    ops = [(e["op"], e["target"]) for e in entries]
    assert ("add", "group/g") in ops
    assert ("edit", "tenant") in ops
    last = {e["target"]: e for e in entries}
    assert last["group/g"]["actor"].startswith("admin(")
    assert last["tenant"]["actor"].startswith("admin(")


async def test_activity_log_downloads_as_a_weekly_file(api: Api) -> None:
    await api.post("/device-groups", {"name": "g"})
    reply = await api.get("/activity", params={"format": "jsonl"})
    assert reply.headers["Content-Type"].startswith("application/x-ndjson")
    assert '"group/g"' in reply.text


async def test_bad_activity_date_is_400(api: Api) -> None:
    reply = await api.get("/activity", params={"date": "yesterday"})
    assert reply.status == 400
