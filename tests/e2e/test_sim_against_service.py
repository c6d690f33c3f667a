"""The phone simulator against the real service: `relay.app.run` in-process, phones over
HTTPS on loopback, the REST API as the judge.

What a phone applied must be exactly what the control plane says is effective for it
(cloud.md "Configuration profiles": "Users must be able to see, per device and per
parameter, the effective value"), plus the defaults the generated file adds (REST API
on, the tenant's device admin password, polling in the nightly window). Firmware chosen
in a profile is fetched only when the offered version differs (phones.md section 5).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from relay.cloud.rules.profiles import is_master_attribute
from relay.proto.polycom.cfgfile import render_config
from relay.sim.firmware import make_image
from relay.sim.fleet import Fleet, make_specs
from relay.sim.phone import PhoneReport
from tests.api.conftest import Api
from tests.e2e.conftest import Service

MAC_VARIABLE = "${mac_address}"
FLEET_SIZE = 200
BOOT_TIMEOUT = 120.0
COMMON_CFG = {"feature.common": "1", "feature.level": "common-file"}


async def _ok(reply: Any, status: int = 200) -> Any:
    assert reply.status == status, reply.text
    return reply.body


async def _profile(api: Api, name: str, parameters: dict[str, str]) -> None:
    await _ok(await api.post("/profiles", {"name": name, "parameters": parameters}), 201)


async def _bind(api: Api, container: str, key: str, *profiles: str) -> None:
    await _ok(await api.put(f"/deployment/{container}/{key}", {"profiles": list(profiles)}))


def _image_downloads(report: PhoneReport) -> list[tuple[str, str, int]]:
    """Whole-image GETs (200); the version probe is a ranged GET answered with 206."""
    return [
        r for r in report.requests if r[0] == "GET" and r[1].startswith("images/") and r[2] == 200
    ]


def _image_probes(report: PhoneReport) -> list[tuple[str, str, int]]:
    return [
        r for r in report.requests if r[0] == "GET" and r[1].startswith("images/") and r[2] == 206
    ]


async def _deploy_matrix(api: Api, fleet: Fleet) -> dict[str, str]:
    """Profiles in all five containers plus a CSV profile; returns mac -> what it tests."""
    phones = fleet.phones
    for group in ("Floor2", "Sales", "Lobby"):
        await _ok(await api.post("/device-groups", {"name": group}), 201)
    await _ok(await api.put("/default-device-groups", ["Floor2", "Sales"]))
    # Loopback sources 127.20.0.1-127.20.0.127 are the Lab-A site, the rest the Internet.
    await _ok(
        await api.post("/sites", {"name": "Lab-A", "public_subnets": [{"cidr": "127.20.0.0/25"}]}),
        201,
    )
    await _ok(
        await api.call(
            "PUT",
            "/resources/common.cfg",
            data=render_config(COMMON_CFG),
            content_type="application/octet-stream",
        ),
        201,
    )
    await _profile(
        api,
        "Lab-Site",
        {
            "feature.level": "site",
            "feature.site": "lab-a",
            "tcpIpApp.sntp.address": "ntp.lab-a.example",
            "CONFIG_FILES": "common.cfg",
        },
    )
    await _profile(
        api, "Model-VVX500", {"feature.level": "model", "up.backlight.idleIntensity": "2"}
    )
    await _profile(api, "Model-SPIP650", {"feature.level": "model-spip", "feature.spip": "1"})
    await _profile(
        api,
        "Grp-Floor2",
        {
            "feature.level": "floor2",
            "feature.group": "floor2",
            "reg.1.label": f"Floor2 {MAC_VARIABLE}",
        },
    )
    await _profile(api, "Grp-Sales", {"feature.group": "sales", "feature.sales": "1"})
    await _profile(
        api,
        "Glob",
        {
            "feature.level": "global",
            "feature.global": "1",
            "feature.group": "global",
            "device.prov.serverName": "relay.lab.example",
            "device.syslog.serverName": f"syslog-{MAC_VARIABLE}.lab.example",
            "LOG_FILE_DIRECTORY": "logs",
            "prov.polling.period": "43200",
        },
    )
    await _profile(api, "Desk", {"feature.level": "device", "feature.device": "1"})
    await _bind(api, "site", "Lab-A", "Lab-Site")
    await _bind(api, "model", "VVX500", "Model-VVX500")
    await _bind(api, "model", "SPIP650", "Model-SPIP650")
    await _bind(api, "group", "Floor2", "Grp-Floor2")
    await _bind(api, "group", "Sales", "Grp-Sales")
    await _bind(api, "global", "-", "Glob", "REST-API-Enable", "Polling-Nightly")
    roles: dict[str, str] = {}
    # Three phones known in advance, each with its own device binding (one in Lobby only,
    # so the default groups do not apply), and one from a CSV import with its CSV profile.
    for phone, groups in ((phones[0], ["Lobby"]), (phones[150], ["Sales"]), (phones[199], [])):
        await _ok(await api.post("/devices", {"mac": phone.mac, "groups": groups}), 201)
        await _bind(api, "device", phone.mac, "Desk")
        roles[phone.mac] = "device"
    csv_mac = phones[42].mac
    report = await _ok(
        await api.call(
            "POST",
            "/devices/import",
            data=f"mac_address,feature.level,feature.csv\n{csv_mac},csv,yes\n",
            content_type="text/csv",
        )
    )
    assert report["errors"] == 0, report
    roles[csv_mac] = "csv"
    return roles


async def _expected(api: Api, mac: str, defaults: dict[str, str]) -> dict[str, str]:
    """What the API says is effective, as the phone must end up with it."""
    effective = await _ok(await api.get(f"/devices/{mac}/effective-config"))
    params = effective["parameters"]
    out = {
        name: p["value"].replace(MAC_VARIABLE, mac)
        for name, p in params.items()
        if not is_master_attribute(name)
    }
    for name, value in defaults.items():
        out.setdefault(name, value)
    config_files = params.get("CONFIG_FILES", {}).get("value", "")
    if "common.cfg" in config_files:
        for name, value in COMMON_CFG.items():
            out.setdefault(name, value)
    return out


async def _tenant_defaults(api: Api) -> dict[str, str]:
    password = (await _ok(await api.get("/device-admin-password")))["password"]
    window = (await _ok(await api.get("/tenant")))["polling_window"]
    return {
        "apps.restapi.enabled": "1",
        "device.auth.localAdminPassword": password,
        "prov.polling.enabled": "1",
        "prov.polling.mode": "random",
        "prov.polling.period": "86400",
        "prov.polling.time": window["start"],
        "prov.polling.timeRandomEnd": window["end"],
    }


async def _devices(api: Api) -> dict[str, dict[str, Any]]:
    body = await _ok(await api.get("/devices", params={"limit": "1000"}))
    return {d["id"]: d for d in body["devices"]}


async def test_every_phone_applies_exactly_its_effective_configuration(service: Service) -> None:
    api = service.api
    async with service.fleet(FLEET_SIZE) as fleet:
        roles = await _deploy_matrix(api, fleet)
        summary = await fleet.boot_all(timeout=BOOT_TIMEOUT)
        assert summary["errors"] == []
        assert (summary["provisioned"], summary["failed"]) == (FLEET_SIZE, 0)
        defaults = await _tenant_defaults(api)
        devices = await _devices(api)
        assert len(devices) == FLEET_SIZE
        levels: dict[str, set[str]] = {}
        for phone in fleet.phones:
            report = phone.report()
            expected = await _expected(api, phone.mac, defaults)
            assert dict(report.parameters) == expected, phone.mac
            assert report.missing_set_companions == (), phone.mac
            levels.setdefault(report.parameters["feature.level"], set()).add(phone.mac)
            device = devices[phone.mac]
            assert device["model"] == phone.spec.model, phone.mac
            assert device["firmware"] == phone.firmware, phone.mac
            assert device["last_result"] == "SUCCESS", (phone.mac, device["last_error"])
            assert device["online"] is True, phone.mac
            in_lab = int(phone.spec.source_ip.rsplit(".", 1)[1]) < 128
            assert device["site"] == ("Lab-A" if in_lab else "Internet"), phone.mac
            if phone.mac not in roles:
                assert (await _ok(await api.get(f"/devices/{phone.mac}")))["groups"] == [
                    "Floor2",
                    "Sales",
                ]
    # The matrix really was exercised: every container decided some phone's value.
    assert {mac for mac, role in roles.items() if role == "device"} <= levels["device"]
    assert levels["csv"] == {mac for mac, role in roles.items() if role == "csv"}
    assert levels.keys() >= {"site", "model", "model-spip", "floor2"}, levels.keys()


async def test_firmware_from_a_global_profile_is_installed_once(service: Service) -> None:
    api = service.api
    image = make_image("VVX", "6.4.3", 200_000)
    uploaded = await _ok(
        await api.call(
            "POST",
            "/images",
            data=image,
            content_type="application/octet-stream",
            params={"model": "VVX", "version": "6.4.3", "filename": "sip.ld"},
        ),
        201,
    )
    assert uploaded["size"] == len(image)
    await _bind(api, "global", "-", "Software-VVX-6.4.3", "REST-API-Enable", "Polling-Nightly")
    specs = make_specs(
        16,
        [service.facts["provisioning"]],
        user=service.facts["prov_user"],
        password=service.facts["prov_password"],
        cacert=service.facts["ca_cert"],
        seed=7,
    )
    # Some phones already run the offered version: they must not download it.
    specs = [
        dataclasses.replace(spec, firmware="6.4.3") if i % 4 == 0 else spec
        for i, spec in enumerate(specs)
    ]
    current = {spec.mac for spec in specs if spec.firmware == "6.4.3"}
    assert 0 < len(current) < len(specs)
    async with Fleet(specs) as fleet:
        summary = await fleet.boot_all(timeout=BOOT_TIMEOUT)
        assert summary["errors"] == []
        assert summary["provisioned"] == len(specs)
        devices = await _devices(api)
        for phone in fleet.phones:
            report = phone.report()
            assert report.firmware == "6.4.3", phone.mac
            downloads = _image_downloads(report)
            if phone.mac in current:
                assert (report.reboots, downloads) == (0, []), phone.mac
            else:
                assert report.reboots == 1, phone.mac
                assert len(downloads) == 1, report.requests
                assert downloads[0][1].endswith(f"/{phone.spec.part_number}.sip.ld")
            device = devices[phone.mac]
            assert device["firmware"] == "6.4.3", phone.mac
            assert "-UA/6.4.3 " in device["user_agent"], device["user_agent"]
            assert device["last_result"] == "SUCCESS", phone.mac
        again = await fleet.boot_all(timeout=BOOT_TIMEOUT)
        assert again["errors"] == []
        assert (again["provisioned"], again["reboots"]) == (len(specs), 0)
        for phone in fleet.phones:
            report = phone.report()
            assert _image_downloads(report) == [], phone.mac
            assert len(_image_probes(report)) == 1, report.requests
