"""Devices over the REST API (cloud.md "Devices and device groups", "Device monitor")."""

from __future__ import annotations

from tests.api.conftest import Api

MAC = "0004f23ea4e1"


async def test_create_phone_by_mac_normalizes_it_to_lower_case(api: Api) -> None:
    reply = await api.post("/devices", {"mac": "0004F23EA4E1", "name": "Front-desk"})
    assert reply.status == 201
    assert reply.body["id"] == MAC
    assert (await api.get("/devices/0004F23EA4E1")).body["name"] == "Front-desk"


async def test_mac_with_separators_is_refused_with_a_hint(api: Api) -> None:
    reply = await api.post("/devices", {"mac": "00:04:f2:3e:a4:e1"})
    assert reply.status == 422
    assert "without ':'" in reply.body["error"]["message"]


async def test_studio_is_identified_by_serial_number(api: Api) -> None:
    body = {"serial": "8218404c20ccf9", "type": "Polycom Studio", "mac": "00e0db4c20cc"}
    reply = await api.post("/devices", body)
    assert reply.status == 201
    assert reply.body["id"] == "8218404c20ccf9"


async def test_studio_without_serial_is_refused(api: Api) -> None:
    reply = await api.post("/devices", {"mac": "00e0db4c20cc", "type": "Polycom Studio"})
    assert reply.status == 422
    assert reply.body["error"]["field"] == "serial"


async def test_device_name_with_forbidden_characters_is_refused(api: Api) -> None:
    reply = await api.post("/devices", {"mac": MAC, "name": "Jon's phone"})
    assert reply.status == 422
    assert reply.body["error"]["field"] == "name"


async def test_duplicate_device_is_a_conflict(api: Api) -> None:
    await api.post("/devices", {"mac": MAC})
    assert (await api.post("/devices", {"mac": MAC})).status == 409


async def test_edit_changes_name_description_and_private_ip(api: Api) -> None:
    await api.post("/devices", {"mac": MAC})
    body = {"name": "Lobby", "description": "by the door", "private_ip": "192.0.2.10"}
    reply = await api.patch(f"/devices/{MAC}", body)
    assert {k: reply.body[k] for k in body} == body


async def test_mac_cannot_be_edited(api: Api) -> None:
    await api.post("/devices", {"mac": MAC})
    reply = await api.patch(f"/devices/{MAC}", {"mac": "0004f2000000"})
    assert reply.status == 422
    assert "new device" in reply.body["error"]["message"]


async def test_unknown_device_is_404(api: Api) -> None:
    reply = await api.get("/devices/0004f2ffffff")
    assert reply.status == 404
    assert reply.body["error"]["code"] == "not_found"


async def test_delete_removes_the_device_and_its_device_bindings(api: Api) -> None:
    await api.post("/devices", {"mac": MAC})
    await api.post("/profiles", {"name": "p", "parameters": {"a.b": "1"}})
    await api.put(f"/deployment/device/{MAC}", {"profiles": ["p"]})
    assert (await api.delete(f"/devices/{MAC}")).status == 204
    assert (await api.get(f"/devices/{MAC}")).status == 404
    assert (await api.get("/profiles/p")).body["bindings"] == []


async def test_list_searches_case_insensitive_substrings(api: Api) -> None:
    await api.post("/devices", {"mac": "0004f2000001", "name": "Lobby-Phone"})
    await api.post("/devices", {"mac": "0004f2000002", "description": "in the LOBBY"})
    await api.post("/devices", {"mac": "0004f2000003", "name": "Kitchen"})
    reply = await api.get("/devices", params={"q": "lobby"})
    assert reply.body["total"] == 2
    assert [d["id"] for d in reply.body["devices"]] == ["0004f2000001", "0004f2000002"]


async def test_list_search_treats_wildcards_literally(api: Api) -> None:
    await api.post("/devices", {"mac": "0004f2000001", "name": "a_b"})
    await api.post("/devices", {"mac": "0004f2000002", "name": "axb"})
    reply = await api.get("/devices", params={"q": "a_b"})
    assert [d["id"] for d in reply.body["devices"]] == ["0004f2000001"]


async def test_list_filters_combine_with_search_and_page(api: Api) -> None:
    await api.post("/device-groups", {"name": "g"})
    for i in range(5):
        await api.post(
            "/devices",
            {"mac": f"0004f200000{i}", "model": "VVX500", "groups": ["g"] if i % 2 == 0 else []},
        )
    reply = await api.get(
        "/devices", params={"group": "g", "model": "VVX500", "limit": "2", "offset": "1"}
    )
    assert reply.body["total"] == 3
    assert [d["id"] for d in reply.body["devices"]] == ["0004f2000002", "0004f2000004"]


async def test_bad_paging_is_400(api: Api) -> None:
    reply = await api.get("/devices", params={"limit": "0"})
    assert reply.status == 400
    assert reply.body["error"]["field"] == "limit"


async def test_malformed_json_body_is_400(api: Api) -> None:
    reply = await api.call("POST", "/devices", data=b"{not json", content_type="application/json")
    assert reply.status == 400
    assert reply.body["error"]["code"] == "invalid_json"


async def test_json_body_of_the_wrong_shape_is_400(api: Api) -> None:
    assert (await api.post("/devices", ["a"])).status == 400
    assert (await api.put(f"/devices/{MAC}/groups", {"a": 1})).status == 400
