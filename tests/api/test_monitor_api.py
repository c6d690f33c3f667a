"""The device monitor through the API: watchlists, reported statuses in the device
detail, the dashboard, and the device list's filters (cloud.md "Device monitor";
docs/agent-link.md "Devices to monitor", "Which relay serves which phone")."""

from __future__ import annotations

from typing import Any

from relay.sync.messages import Credential
from tests.api.conftest import Api, heartbeat_body, register_relay, relay_auth

HQ = {
    "name": "HQ",
    "public_subnets": [{"cidr": "127.0.0.0/8", "private_subnets": ["10.1.0.0/16"]}],
}
BRANCH = {
    "name": "Branch",
    "public_subnets": [{"cidr": "127.0.0.0/8", "private_subnets": ["10.2.0.0/16"]}],
}


async def _relay_at(api: Api, name: str, address: str) -> Credential:
    credential = await register_relay(api, name)
    beat = await api.post("/agent/heartbeat", heartbeat_body(address), auth=relay_auth(credential))
    assert beat.status == 200, beat.text
    return credential


async def _phone(api: Api, mac: str, private_ip: str, **extra: Any) -> None:
    body = {"mac": mac, "public_ip": "127.0.0.1", "private_ip": private_ip, **extra}
    reply = await api.post("/devices", body)
    assert reply.status == 201, reply.text


async def _watched(api: Api, credential: Credential) -> set[str]:
    reply = await api.get("/agent/devices", auth=relay_auth(credential))
    assert reply.status == 200, reply.text
    return {d["mac"] for d in reply.body["devices"]}


async def _report(api: Api, credential: Credential, *bodies: dict[str, Any]) -> None:
    reports = [{"seq": i + 1, "kind": "status", "body": b} for i, b in enumerate(bodies)]
    reply = await api.post("/agent/reports", {"reports": reports}, auth=relay_auth(credential))
    assert reply.status == 200, reply.text


async def test_the_watchlist_gives_address_rest_capability_and_password(api: Api) -> None:
    await api.post("/sites", HQ)
    await _phone(api, "0004f2000001", "10.1.0.10", model="VVX 500")
    await _phone(api, "0004f2000002", "10.1.0.11", model="SPIP650")
    relay = await _relay_at(api, "hq", "10.1.0.2")
    reply = await api.get("/agent/devices", auth=relay_auth(relay))
    password = (await api.get("/device-admin-password")).body["password"]
    assert reply.body["monitor_seconds"] == 7200.0
    by_mac = {d["mac"]: d for d in reply.body["devices"]}
    assert by_mac["0004f2000001"] == {
        "mac": "0004f2000001",
        "address": "10.1.0.10",
        "model": "VVX500",
        "firmware": "",
        "rest": True,
        "password": password,
    }
    assert by_mac["0004f2000002"]["rest"] is False


async def test_the_watchlist_respects_site_specific_control(api: Api) -> None:
    await api.post("/sites", {**HQ, "site_specific": True})
    await api.post("/sites", BRANCH)
    await _phone(api, "0004f2000001", "10.1.0.10")
    await _phone(api, "0004f2000002", "10.2.0.10")
    hq = await _relay_at(api, "hq", "10.1.0.2")
    branch = await _relay_at(api, "branch", "10.2.0.2")
    assert await _watched(api, hq) == {"0004f2000001"}
    assert await _watched(api, branch) == {"0004f2000002"}


async def test_a_site_specific_site_without_its_relay_is_watched_by_no_one(api: Api) -> None:
    await api.post("/sites", {**HQ, "site_specific": True})
    await api.post("/sites", BRANCH)
    await _phone(api, "0004f2000001", "10.1.0.10")
    branch = await _relay_at(api, "branch", "10.2.0.2")
    assert await _watched(api, branch) == set()


async def test_a_reported_status_shows_in_the_device_detail(api: Api) -> None:
    await api.post("/sites", HQ)
    await _phone(api, "0004f2000001", "10.1.0.10")
    relay = await _relay_at(api, "hq", "10.1.0.2")
    await _report(
        api,
        relay,
        {
            "device": "0004f2000001",
            "online": True,
            "checked": 1_700_000_000.0,
            "lines": [
                {"number": 1, "registration": "registered", "sip_address": "100@pbx"},
                {"number": 2, "registration": "unregistered"},
            ],
            "calls": [{"state": "connected", "remote_name": "Ann", "remote_number": "200"}],
            "uptime": 3600.0,
            "last_restart": 1_699_996_400.0,
            "firmware": "6.4.3.1234",
        },
    )
    device = (await api.get("/devices/0004f2000001")).body
    assert device["online"] is True
    assert device["sip_registration"] == "partial"
    assert device["call_status"] == "in_call"
    assert device["calls"][0]["remote_name"] == "Ann" and device["calls"][0]["duration"] == 0.0
    assert device["lines"][0] == {
        "number": 1,
        "registration": "registered",
        "sip_address": "100@pbx",
        "user_id": "",
        "proxy": "",
    }
    assert device["uptime"] == 3600.0
    assert device["last_restart"] == "2023-11-14T21:13:20+00:00"
    assert device["last_checked"] == "2023-11-14T22:13:20+00:00"
    assert device["monitored_by"] == relay.relay_id
    assert device["firmware"] == "6.4.3.1234" and device["groups"] == []


async def test_a_device_never_checked_has_unknown_registration_and_is_idle(api: Api) -> None:
    await _phone(api, "0004f2000001", "10.1.0.10")
    device = (await api.get("/devices/0004f2000001")).body
    assert device["online"] is False
    assert device["sip_registration"] == "unknown" and device["call_status"] == "idle"
    assert device["last_checked"] is None and device["monitored_by"] is None


async def test_an_unreachable_phone_is_offline_with_unknown_registration(api: Api) -> None:
    await _phone(api, "0004f2000001", "10.1.0.10")
    relay = await _relay_at(api, "any", "10.9.0.2")
    await _report(api, relay, {"device": "0004f2000001", "online": False, "checked": 0})
    device = (await api.get("/devices/0004f2000001")).body
    assert device["online"] is False and device["sip_registration"] == "unknown"


async def test_a_status_for_an_unknown_mac_is_ignored(api: Api) -> None:
    relay = await _relay_at(api, "any", "10.9.0.2")
    await _report(api, relay, {"device": "0004f2ffffff", "online": True, "checked": 0})
    assert (await api.get("/devices/0004f2ffffff")).status == 404


async def test_the_dashboard_counts_online_and_total_by_type_site_group_and_model(
    api: Api,
) -> None:
    await api.post("/sites", HQ)
    await api.post("/device-groups", {"name": "Sales"})
    await _phone(api, "0004f2000001", "10.1.0.10", model="VVX500", type="VVX", groups=["Sales"])
    await _phone(api, "0004f2000002", "10.1.0.11", model="VVX500", type="VVX")
    await _phone(api, "0004f2000003", "10.2.0.11", model="Trio8800", type="Polycom Trio")
    relay = await _relay_at(api, "hq", "10.1.0.2")
    await _report(api, relay, {"device": "0004f2000001", "online": True, "checked": 0})
    board = (await api.get("/dashboard")).body
    assert board["online"] == 1 and board["total"] == 3
    assert board["by_type"] == {
        "Polycom Trio": {"online": 0, "total": 1},
        "VVX": {"online": 1, "total": 2},
    }
    assert board["by_site"] == {
        "HQ": {"online": 1, "total": 2},
        "Internet": {"online": 0, "total": 1},
    }
    assert board["by_group"] == {"Sales": {"online": 1, "total": 1}}
    assert board["by_model"]["VVX500"] == {"online": 1, "total": 2}


async def test_the_device_list_filters_by_status_and_firmware_with_paging(api: Api) -> None:
    for i in range(1, 6):
        await _phone(api, f"0004f200000{i}", f"10.1.0.{i}")
    relay = await _relay_at(api, "any", "10.9.0.2")
    await _report(
        api,
        relay,
        *(
            {"device": f"0004f200000{i}", "online": True, "checked": 0, "firmware": "6.4.3"}
            for i in (1, 2, 3)
        ),
    )
    online = (await api.get("/devices", params={"status": "online", "limit": "2"})).body
    assert online["total"] == 3 and len(online["devices"]) == 2
    assert all(d["online"] for d in online["devices"])
    rest = (await api.get("/devices", params={"status": "online", "offset": "2"})).body
    assert [d["mac"] for d in rest["devices"]] == ["0004f2000003"]
    offline = (await api.get("/devices", params={"status": "offline"})).body
    assert [d["mac"] for d in offline["devices"]] == ["0004f2000004", "0004f2000005"]
    firmware = (await api.get("/devices", params={"firmware": "6.4.3", "q": "0004F2000002"})).body
    assert [d["mac"] for d in firmware["devices"]] == ["0004f2000002"]


async def test_an_unknown_status_filter_is_400(api: Api) -> None:
    assert (await api.get("/devices", params={"status": "asleep"})).status == 400
