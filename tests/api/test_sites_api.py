"""Sites over the REST API (cloud.md "Sites")."""

from __future__ import annotations

from tests.api.conftest import Api

HQ = {
    "name": "Site_A-1",
    "description": "HQ",
    "location": "Building 1",
    "public_subnets": [{"cidr": "20.1.0.0/16", "private_subnets": ["10.0.0.0/8"]}],
}


async def _site(api: Api, name: str, public: str, private: list[str]) -> None:
    body = {"name": name, "public_subnets": [{"cidr": public, "private_subnets": private}]}
    reply = await api.post("/sites", body)
    assert reply.status == 201, reply.body


async def test_create_site_returns_it_with_normalized_subnets(api: Api) -> None:
    body = {**HQ, "public_subnets": [{"cidr": "20.56.31.0/8", "private_subnets": []}]}
    reply = await api.post("/sites", body)
    assert reply.status == 201
    assert reply.body["public_subnets"] == [{"cidr": "20.0.0.0/8", "private_subnets": []}]


async def test_guide_four_site_example_matches_longest_public_then_private(api: Api) -> None:
    await _site(api, "Site_A-1", "20.1.0.0/16", ["10.0.0.0/8"])
    await _site(api, "Site_A-2", "20.1.0.0/16", ["10.33.24.0/24"])
    await _site(api, "Site_B-1", "20.56.31.0/8", ["3.1.0.0/16"])
    await _site(api, "Site_B-2", "20.56.31.0/8", [])
    cases = {
        ("20.1.9.9", "10.33.24.7"): "Site_A-2",
        ("20.1.9.9", "10.1.1.1"): "Site_A-1",
        ("20.2.0.1", "3.1.4.4"): "Site_B-1",
        ("20.2.0.1", "192.0.2.1"): "Site_B-2",
        ("203.0.113.9", "10.1.1.1"): "Internet",
    }
    for (public, private), expected in cases.items():
        reply = await api.get("/sites/match", params={"public_ip": public, "private_ip": private})
        assert reply.body == {"site": expected}, (public, private)


async def test_match_without_private_ip_uses_public_subnet_only(api: Api) -> None:
    await _site(api, "Only-public", "198.51.100.0/24", [])
    reply = await api.get("/sites/match", params={"public_ip": "198.51.100.7"})
    assert reply.body == {"site": "Only-public"}


async def test_match_rejects_a_bad_address(api: Api) -> None:
    reply = await api.get("/sites/match", params={"public_ip": "300.1.1.1"})
    assert reply.status == 422
    assert reply.body["error"]["field"] == "public_ip"


async def test_invalid_cidr_is_rejected_naming_the_field(api: Api) -> None:
    body = {"name": "Bad", "public_subnets": [{"cidr": "20.1.0.0/40"}]}
    reply = await api.post("/sites", body)
    assert reply.status == 422
    assert reply.body["error"]["code"] == "invalid_cidr"
    assert reply.body["error"]["field"] == "public_subnets[0].cidr"


async def test_site_name_with_forbidden_characters_is_rejected(api: Api) -> None:
    reply = await api.post("/sites", {"name": "HQ/main", "public_subnets": []})
    assert reply.status == 422
    assert reply.body["error"]["code"] == "invalid_name"


async def test_duplicate_site_name_is_a_conflict(api: Api) -> None:
    await api.post("/sites", HQ)
    reply = await api.post("/sites", HQ)
    assert reply.status == 409


async def test_internet_site_cannot_be_deleted(api: Api) -> None:
    reply = await api.delete("/sites/Internet")
    assert reply.status == 403
    assert reply.body["error"]["code"] == "builtin_site"


async def test_internet_site_takes_no_download_path(api: Api) -> None:
    reply = await api.patch("/sites/Internet", {"download_path": "https://relay.example.com/"})
    assert reply.status == 403


async def test_intranet_public_subnet_can_be_edited(api: Api) -> None:
    body = {"public_subnets": [{"cidr": "203.0.113.0/24", "private_subnets": []}]}
    reply = await api.patch("/sites/Intranet", body)
    assert reply.status == 200
    match = await api.get("/sites/match", params={"public_ip": "203.0.113.5"})
    assert match.body == {"site": "Intranet"}


async def test_intranet_matches_nobody_until_edited(api: Api) -> None:
    reply = await api.get("/sites/match", params={"public_ip": "0.0.0.1"})
    assert reply.body == {"site": "Internet"}


async def test_download_path_must_be_a_url(api: Api) -> None:
    reply = await api.post("/sites", {**HQ, "download_path": "relay example"})
    assert reply.status == 422
    assert reply.body["error"]["field"] == "download_path"


async def test_deleting_a_site_rehomes_its_devices(api: Api) -> None:
    await _site(api, "Wide", "20.0.0.0/8", [])
    await _site(api, "Narrow", "20.1.0.0/16", [])
    await api.post("/devices", {"mac": "0004f2000001", "public_ip": "20.1.2.3"})
    assert (await api.get("/devices/0004f2000001")).body["site"] == "Narrow"
    assert (await api.delete("/sites/Narrow")).status == 204
    assert (await api.get("/devices/0004f2000001")).body["site"] == "Wide"


async def test_editing_subnets_rehomes_devices(api: Api) -> None:
    await api.post("/devices", {"mac": "0004f2000002", "public_ip": "198.51.100.20"})
    await _site(api, "Branch", "198.51.100.0/24", [])
    assert (await api.get("/devices/0004f2000002")).body["site"] == "Branch"
    await api.patch("/sites/Branch", {"public_subnets": []})
    assert (await api.get("/devices/0004f2000002")).body["site"] == "Internet"


async def test_site_rename_moves_its_devices_and_bindings(api: Api) -> None:
    await _site(api, "Old", "198.51.100.0/24", [])
    await api.post("/devices", {"mac": "0004f2000003", "public_ip": "198.51.100.20"})
    await api.post("/profiles", {"name": "p1", "parameters": {"a.b": "1"}})
    await api.put("/deployment/site/Old", {"profiles": ["p1"]})
    reply = await api.patch("/sites/Old", {"name": "New"})
    assert reply.body["profiles"] == ["p1"]
    assert (await api.get("/devices/0004f2000003")).body["site"] == "New"


async def test_site_list_counts_devices(api: Api) -> None:
    await _site(api, "Counted", "198.51.100.0/24", [])
    await api.post("/devices", {"mac": "0004f2000004", "public_ip": "198.51.100.1"})
    sites = {s["name"]: s for s in (await api.get("/sites")).body}
    assert sites["Counted"]["device_count"] == 1
