"""Device groups over the REST API (cloud.md "Devices and device groups")."""

from __future__ import annotations

from tests.api.conftest import Api

MAC = "0004f23ea4e1"


async def _groups(api: Api, *names: str) -> None:
    for name in names:
        assert (await api.post("/device-groups", {"name": name})).status == 201


async def test_device_groups_are_kept_in_priority_order(api: Api) -> None:
    await _groups(api, "g1", "g2", "g3")
    await api.post("/devices", {"mac": MAC})
    reply = await api.put(f"/devices/{MAC}/groups", ["g3", "g1", "g2"])
    assert reply.body == ["g3", "g1", "g2"]
    assert (await api.get(f"/devices/{MAC}/groups")).body == ["g3", "g1", "g2"]


async def test_unknown_group_is_refused(api: Api) -> None:
    await api.post("/devices", {"mac": MAC})
    reply = await api.put(f"/devices/{MAC}/groups", ["nope"])
    assert reply.status == 404
    assert reply.body["error"]["code"] == "unknown_group"


async def test_top_priority_puts_the_group_first_for_all_its_devices(api: Api) -> None:
    await _groups(api, "a", "b", "c")
    for mac in ("0004f2000001", "0004f2000002"):
        await api.post("/devices", {"mac": mac, "groups": ["a", "b", "c"]})
    await api.post("/devices", {"mac": "0004f2000003", "groups": ["a"]})
    assert (await api.post("/device-groups/c/top-priority")).status == 200
    assert (await api.get("/devices/0004f2000001/groups")).body == ["c", "a", "b"]
    assert (await api.get("/devices/0004f2000002/groups")).body == ["c", "a", "b"]
    assert (await api.get("/devices/0004f2000003/groups")).body == ["a"]


async def test_default_groups_are_kept_in_order(api: Api) -> None:
    await _groups(api, "d1", "d2")
    reply = await api.put("/default-device-groups", ["d2", "d1"])
    assert reply.body == ["d2", "d1"]
    groups = {g["name"]: g for g in (await api.get("/device-groups")).body}
    assert groups["d1"]["default"] and groups["d2"]["default"]


async def test_deleting_a_group_removes_its_associations(api: Api) -> None:
    await _groups(api, "gone", "kept")
    await api.post("/devices", {"mac": MAC, "groups": ["gone", "kept"]})
    await api.post("/profiles", {"name": "p", "parameters": {"x.y": "1"}})
    await api.put("/deployment/group/gone", {"profiles": ["p"]})
    assert (await api.delete("/device-groups/gone")).status == 204
    assert (await api.get(f"/devices/{MAC}/groups")).body == ["kept"]
    assert (await api.get("/profiles/p")).body["bindings"] == []


async def test_group_members_can_be_added_and_removed(api: Api) -> None:
    await _groups(api, "m")
    await api.post("/devices", {"mac": MAC})
    reply = await api.post("/device-groups/m/devices", {"add": [MAC.upper()]})
    assert reply.body["devices"] == [MAC]
    reply = await api.post("/device-groups/m/devices", {"remove": [MAC]})
    assert reply.body["devices"] == []


async def test_renaming_a_group_keeps_members_and_bindings(api: Api) -> None:
    await _groups(api, "before")
    await api.post("/devices", {"mac": MAC, "groups": ["before"]})
    await api.post("/profiles", {"name": "p", "parameters": {"x.y": "1"}})
    await api.put("/deployment/group/before", {"profiles": ["p"]})
    reply = await api.patch("/device-groups/before", {"name": "after"})
    assert reply.body["devices"] == [MAC]
    assert reply.body["profiles"] == ["p"]


async def test_group_name_rules_apply(api: Api) -> None:
    reply = await api.post("/device-groups", {"name": "sales team"})
    assert reply.status == 422
    assert reply.body["error"]["field"] == "name"
