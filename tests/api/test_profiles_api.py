"""Configuration profiles over the REST API (cloud.md "Configuration profiles")."""

from __future__ import annotations

import io
import json
import zipfile

from tests.api.conftest import Api

POLYCOM_CFG = b"""<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<polycomConfig>
  <device device.set="1" device.prov.serverName.set="1" device.prov.serverName="relay.example"/>
  <reg reg.1.address="1001" reg.1.label="Front desk"/>
</polycomConfig>
"""
LEGACY_CFG = b"""<?xml version="1.0"?>
<PHONE_CONFIG><ALL voIpProt.server.1.address="sip.example" tcpIpApp.sntp.gmtOffset="3600"/>
</PHONE_CONFIG>
"""


async def test_standard_profiles_are_shipped_read_only(api: Api) -> None:
    names = {p["name"] for p in (await api.get("/profiles", params={"type": "standard"})).body}
    assert {"AdminPassword-Change-TEMPLATE", "SIP-Line-TEMPLATE", "REST-API-Enable"} <= names
    assert {"Polling-Nightly", "TimeZone-UTC", "NTP-TEMPLATE", "Syslog-TEMPLATE"} <= names
    reply = await api.patch("/profiles/REST-API-Enable", {"description": "mine"})
    assert reply.status == 403
    assert (await api.delete("/profiles/REST-API-Enable")).status == 403


async def test_create_profile_with_parameters_and_software_none(api: Api) -> None:
    body = {"name": "Lines", "description": "d", "parameters": {"reg.1.address": "1001"}}
    reply = await api.post("/profiles", {**body, "software": None})
    assert reply.status == 201
    assert reply.body["type"] == "user"
    assert reply.body["parameters"] == {"reg.1.address": "1001"}


async def test_profile_names_are_unique_across_types(api: Api) -> None:
    reply = await api.post("/profiles", {"name": "REST-API-Enable"})
    assert reply.status == 409


async def test_profile_name_rules_apply(api: Api) -> None:
    reply = await api.post("/profiles", {"name": "a*b"})
    assert reply.status == 422
    assert reply.body["error"]["code"] == "invalid_name"


async def test_factory_admin_password_is_refused(api: Api) -> None:
    body = {"name": "pw", "parameters": {"device.auth.localAdminPassword": "456"}}
    reply = await api.post("/profiles", body)
    assert reply.status == 422
    assert reply.body["error"]["code"] == "factory_password"


async def test_master_attributes_are_accepted_and_others_need_the_prefix(api: Api) -> None:
    good = {
        "APP_FILE_PATH": "https://relay.example/sip.ld",
        "CONFIG_FILES": "site.cfg",
        "LOG_FILE_DIRECTORY": "logs",
        "COREFILE_DIRECTORY": "core",
        "_mac_cfg_custom": "${mac_address}.cfg",
    }
    assert (await api.post("/profiles", {"name": "m", "parameters": good})).status == 201
    reply = await api.post("/profiles", {"name": "n", "parameters": {"NEW_ATTR": "x"}})
    assert reply.status == 422
    assert reply.body["error"]["code"] == "unknown_master_attribute"


async def test_copying_a_template_makes_an_editable_user_profile(api: Api) -> None:
    reply = await api.post("/profiles/AdminPassword-Change-TEMPLATE/copy", {"name": "AdminPw"})
    assert reply.status == 201
    assert reply.body["type"] == "user"
    assert "device.auth.localAdminPassword" in reply.body["parameters"]
    edit = {"parameters": {"device.auth.localAdminPassword": "s3cret-Pass"}}
    assert (await api.patch("/profiles/AdminPw", edit)).status == 200


async def test_import_polycom_config_file_adds_parameters(api: Api) -> None:
    await api.post("/profiles", {"name": "imp", "parameters": {"reg.1.address": "999"}})
    reply = await api.post("/profiles/imp/import", data=POLYCOM_CFG, content_type="application/xml")
    assert reply.status == 200
    assert reply.body["parameters"] == {
        "reg.1.address": "1001",
        "device.prov.serverName": "relay.example",
        "reg.1.label": "Front desk",
    }


async def test_import_legacy_phone_config_file(api: Api) -> None:
    await api.post("/profiles", {"name": "legacy"})
    reply = await api.post("/profiles/legacy/import", data=LEGACY_CFG)
    assert reply.body["parameters"] == {
        "voIpProt.server.1.address": "sip.example",
        "tcpIpApp.sntp.gmtOffset": "3600",
    }


async def test_import_of_a_malformed_file_changes_nothing(api: Api) -> None:
    await api.post("/profiles", {"name": "keep", "parameters": {"a.b": "1"}})
    reply = await api.post("/profiles/keep/import", data=b"<polycomConfig><x a='1'>")
    assert reply.status == 422
    assert reply.body["error"]["code"] == "invalid_config_file"
    assert (await api.get("/profiles/keep")).body["parameters"] == {"a.b": "1"}


async def test_deleting_a_profile_removes_its_bindings(api: Api) -> None:
    await api.post("/profiles", {"name": "bound", "parameters": {"a.b": "1"}})
    await api.put("/deployment/global/-", {"profiles": ["bound", "REST-API-Enable"]})
    assert (await api.delete("/profiles/bound")).status == 204
    reply = await api.get("/deployment/global/-")
    assert reply.body["profiles"] == ["REST-API-Enable"]


async def test_export_all_user_profiles_round_trips_through_import(api: Api) -> None:
    params = {"reg.1.address": "1001", "device.prov.serverName": "relay.example"}
    await api.post("/profiles", {"name": "exp", "description": "x", "parameters": params})
    async with api.session.get(
        api.base + "/profiles/export", headers={"Authorization": f"Bearer {api.token}"}
    ) as resp:
        data = await resp.read()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        manifest = json.loads(zf.read("profiles.json"))
        cfg = zf.read("exp.cfg")
    assert [m["name"] for m in manifest] == ["exp"]
    await api.post("/profiles", {"name": "again"})
    reply = await api.post("/profiles/again/import", data=cfg)
    assert reply.body["parameters"] == params


async def test_standard_profiles_are_not_exported(api: Api) -> None:
    reply = await api.get("/profiles/export", params={"name": "REST-API-Enable"})
    assert reply.status == 422
    assert reply.body["error"]["code"] == "not_exportable"


async def test_profile_with_unknown_software_is_refused(api: Api) -> None:
    reply = await api.post("/profiles", {"name": "sw", "software": "nope"})
    assert reply.status == 422
    assert reply.body["error"]["field"] == "software"


async def test_export_one_user_profile_as_zip(api: Api) -> None:
    await api.post("/profiles", {"name": "one", "parameters": {"reg.1.address": "1"}})
    await api.post("/profiles", {"name": "two", "parameters": {"reg.1.address": "2"}})
    async with api.session.get(
        api.base + "/profiles/export",
        params={"name": "one"},
        headers={"Authorization": f"Bearer {api.token}"},
    ) as resp:
        assert resp.content_type == "application/zip"
        data = await resp.read()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert sorted(zf.namelist()) == ["one.cfg", "profiles.json"]
