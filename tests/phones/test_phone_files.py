"""What phones GET: master files, their generated `<mac>-profile.cfg`, resource files
and device files (phones.md sections 2-3; cloud.md "Resource and device files")."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from relay.proto.polycom.master import parse_master
from tests.phones.conftest import (
    MAC,
    OTHER_MAC,
    UA_APPLICATION,
    UA_EDGE,
    UA_MICROBROWSER,
    UA_SPIP_SERIAL,
    Relay,
    RelayFactory,
    attributes,
    run_curl,
)

LICENSE_GLOBAL = b'<polycomConfig><license license.global="1"/></polycomConfig>\n'
LICENSE_OWN = b'<polycomConfig><license license.own="1"/></polycomConfig>\n'


async def _profile_cfg(relay: Relay, mac: str = MAC) -> dict[str, str]:
    assert (await relay.curl("GET", f"/{mac}.cfg")).status == 200
    reply = await relay.curl("GET", f"/{mac}-profile.cfg")
    assert reply.status == 200, reply.text
    assert b"<polycomConfig>" in reply.body
    return attributes(reply.body)


async def _config_files(relay: Relay, mac: str = MAC) -> tuple[str, ...]:
    reply = await relay.curl("GET", f"/{mac}.cfg")
    assert reply.status == 200, reply.text
    return parse_master(reply.body).config_files


# -- master files -----------------------------------------------------------------


async def test_the_default_master_names_the_phone_macro_profile(relay: Relay) -> None:
    reply = await relay.curl("GET", "/000000000000.cfg")
    assert reply.status == 200
    assert reply.headers["content-type"].startswith("application/xml")
    assert parse_master(reply.body).config_files[0] == "[PHONE_MAC_ADDRESS]-profile.cfg"


async def test_the_mac_master_names_the_generated_profile_first(relay: Relay) -> None:
    assert (await _config_files(relay))[0] == f"{MAC}-profile.cfg"


async def test_head_of_a_master_gives_its_length_without_a_body(relay: Relay) -> None:
    full = await relay.curl("GET", f"/{MAC}.cfg")
    head = await relay.curl("HEAD", f"/{MAC}.cfg")
    assert head.status == 200
    assert int(head.headers["content-length"]) == len(full.body)


async def test_an_unknown_phone_is_auto_added_into_the_default_groups(relay: Relay) -> None:
    for name in ("Lobby", "Floor1"):
        assert (await relay.api.post("/device-groups", {"name": name})).status == 201
    assert (await relay.api.put("/default-device-groups", ["Lobby", "Floor1"])).status == 200
    assert (await relay.curl("GET", f"/{MAC}.cfg")).status == 200
    device = (await relay.api.get(f"/devices/{MAC}")).body
    assert device["mac"] == MAC
    assert device["source"] == "auto"
    assert device["groups"] == ["Lobby", "Floor1"]


async def test_an_auto_added_phone_shows_model_firmware_and_online(relay: Relay) -> None:
    assert (await relay.curl("GET", f"/{MAC}.cfg")).status == 200
    device = (await relay.api.get(f"/devices/{MAC}")).body
    assert device["model"] == "VVX500"
    assert device["firmware"] == "5.9.7.4477"
    assert device["online"] is True
    assert device["user_agent"] == UA_APPLICATION


async def test_an_auto_added_phone_gets_the_site_of_its_source_address(relay: Relay) -> None:
    body = {"name": "Loopback", "public_subnets": [{"cidr": "127.0.0.0/8", "private_subnets": []}]}
    reply = await relay.api.post("/sites", body)
    assert reply.status == 201, reply.text
    assert (await relay.curl("GET", f"/{MAC}.cfg")).status == 200
    device = (await relay.api.get(f"/devices/{MAC}")).body
    assert device["site"] == "Loopback"
    assert device["public_ip"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("user_agent", "model", "firmware"),
    [
        (UA_APPLICATION, "VVX500", "5.9.7.4477"),
        (UA_SPIP_SERIAL, "SPIP550", "4.0.15.1047"),
        (UA_EDGE, "EdgeE450", "8.0.0.15602"),
        (UA_MICROBROWSER, "SPIP550", "4.0.15.1047"),
    ],
)
async def test_every_user_agent_of_phones_md_gives_model_and_firmware(
    relay: Relay, user_agent: str, model: str, firmware: str
) -> None:
    assert (await relay.curl("GET", f"/{MAC}.cfg", user_agent=user_agent)).status == 200
    device = (await relay.api.get(f"/devices/{MAC}")).body
    assert (device["model"], device["firmware"]) == (model, firmware)


async def test_with_auto_add_off_an_unknown_mac_gets_404_and_no_device(relay: Relay) -> None:
    assert (await relay.api.patch("/tenant", {"auto_add": False})).status == 200
    assert (await relay.curl("GET", f"/{MAC}.cfg")).status == 404
    assert (await relay.curl("GET", f"/{MAC}-profile.cfg")).status == 404
    assert (await relay.api.get(f"/devices/{MAC}")).status == 404


async def test_with_auto_add_off_a_known_phone_is_served(relay: Relay) -> None:
    assert (await relay.api.patch("/tenant", {"auto_add": False})).status == 200
    assert (await relay.api.post("/devices", {"mac": MAC})).status == 201
    assert (await relay.curl("GET", f"/{MAC}.cfg")).status == 200
    assert (await relay.api.get(f"/devices/{MAC}")).body["model"] == "VVX500"


async def test_a_mac_in_upper_case_is_the_same_phone(relay: Relay) -> None:
    reply = await relay.curl("GET", f"/{MAC.upper()}.cfg")
    assert reply.status == 200
    assert parse_master(reply.body).config_files[0] == f"{MAC}-profile.cfg"
    assert (await relay.curl("GET", f"/{MAC.upper()}-profile.cfg")).status == 200
    listing = (await relay.api.get("/devices")).body
    assert [d["mac"] for d in listing["devices"]] == [MAC]


@pytest.mark.parametrize(
    "path",
    [
        "/0004f2a1b2c.cfg",  # 11 hex digits
        "/0004f2a1b2c3d.cfg",  # 13
        "/0004f2a1b2cg.cfg",  # not hex
        "/0004f2-a1b2c3.cfg",
        "/0004f2:a1:b2:c3.cfg",
        "/0004f2a1b2c3.cfg.bak",
        "/0004f2a1b2c3-.cfg",
        "/0004f2a1b2c3..cfg",
        "/0004f2a1b2c3-profile.cfg/x",
        "/contacts/0004f2a1b2c3.cfg",
        "/0x04f2a1b2c3.cfg",
    ],
)
async def test_malformed_mac_like_paths_are_refused_or_not_found(relay: Relay, path: str) -> None:
    reply = await relay.curl("GET", path)
    assert reply.status in (400, 404)
    listing = (await relay.api.get("/devices")).body
    assert listing["devices"] == []


async def test_a_query_string_is_ignored(relay: Relay) -> None:
    assert (await relay.curl("GET", f"/{MAC}.cfg?model=x&../../etc=1")).status == 200


# -- X-Forwarded-For --------------------------------------------------------------


async def test_forwarded_for_from_a_trusted_proxy_is_the_private_ip(
    relay_up: RelayFactory,
) -> None:
    async with relay_up(trusted_proxies=("127.0.0.1",)) as relay:
        reply = await relay.curl("GET", f"/{MAC}.cfg", headers=["X-Forwarded-For: 10.1.2.3"])
        assert reply.status == 200
        device = (await relay.api.get(f"/devices/{MAC}")).body
        assert device["private_ip"] == "10.1.2.3"
        assert device["public_ip"] == "127.0.0.1"


async def test_forwarded_for_from_another_peer_is_ignored(relay_up: RelayFactory) -> None:
    async with relay_up(trusted_proxies=("127.0.0.1",)) as relay:
        reply = await relay.curl(
            "GET",
            f"/{MAC}.cfg",
            headers=["X-Forwarded-For: 10.1.2.3"],
            extra=["--interface", "127.0.0.2"],
        )
        assert reply.status == 200
        device = (await relay.api.get(f"/devices/{MAC}")).body
        assert device["private_ip"] is None
        assert device["public_ip"] == "127.0.0.2"


async def test_forwarded_for_is_ignored_without_trusted_proxies(relay: Relay) -> None:
    reply = await relay.curl("GET", f"/{MAC}.cfg", headers=["X-Forwarded-For: 10.1.2.3"])
    assert reply.status == 200
    assert (await relay.api.get(f"/devices/{MAC}")).body["private_ip"] is None


async def test_a_garbage_forwarded_for_from_a_trusted_proxy_is_dropped(
    relay_up: RelayFactory,
) -> None:
    async with relay_up(trusted_proxies=("127.0.0.1",)) as relay:
        reply = await relay.curl("GET", f"/{MAC}.cfg", headers=["X-Forwarded-For: <script>"])
        assert reply.status == 200
        assert (await relay.api.get(f"/devices/{MAC}")).body["private_ip"] is None


# -- the generated configuration file ---------------------------------------------


async def test_profile_cfg_sets_device_set_and_every_device_parameter_set(relay: Relay) -> None:
    params = await _profile_cfg(relay)
    assert params["device.set"] == "1"
    device_params = [
        n
        for n in params
        if n.startswith("device.") and n != "device.set" and not n.endswith(".set")
    ]
    assert device_params
    for name in device_params:
        assert params[f"{name}.set"] == "1", name


async def test_profile_cfg_enables_the_rest_api(relay: Relay) -> None:
    assert (await _profile_cfg(relay))["apps.restapi.enabled"] == "1"


async def test_profile_cfg_carries_the_tenant_device_admin_password(relay: Relay) -> None:
    password = (await relay.api.get("/device-admin-password")).body["password"]
    assert password
    assert (await _profile_cfg(relay))["device.auth.localAdminPassword"] == password


async def test_profile_cfg_polls_nightly_inside_the_polling_window(relay: Relay) -> None:
    window = (await relay.api.get("/tenant")).body["polling_window"]
    params = await _profile_cfg(relay)
    assert params["prov.polling.enabled"] == "1"
    assert params["prov.polling.mode"] == "random"
    assert params["prov.polling.period"] == "86400"
    assert params["prov.polling.time"] == window["start"]
    assert params["prov.polling.timeRandomEnd"] == window["end"]


async def test_fetching_the_profile_cfg_records_success(relay: Relay) -> None:
    assert (await relay.curl("GET", f"/{MAC}.cfg")).status == 200
    before = (await relay.api.get(f"/devices/{MAC}")).body
    assert before["last_result"] is None
    assert (await relay.curl("GET", f"/{MAC}-profile.cfg")).status == 200
    after = (await relay.api.get(f"/devices/{MAC}")).body
    assert after["last_result"] == "SUCCESS"
    assert after["last_provisioned"] is not None


# -- resource files ----------------------------------------------------------------


async def test_an_uploaded_resource_is_served_to_phones(relay: Relay) -> None:
    data = bytes(range(256)) * 40
    reply = await relay.api.put(
        "/resources/ring.wav", data=data, content_type="application/octet-stream"
    )
    assert reply.status == 201, reply.text
    served = await relay.curl("GET", "/ring.wav")
    assert served.status == 200
    assert served.body == data


async def test_a_resource_with_a_bad_extension_is_refused_with_422(relay: Relay) -> None:
    reply = await relay.api.put(
        "/resources/ring.exe", data=b"MZ", content_type="application/octet-stream"
    )
    assert reply.status == 422
    assert (await relay.curl("GET", "/ring.exe")).status == 404


def _sized_file(path: Path, size: int) -> Path:
    """A file of `size` bytes without holding them in memory (sparse: zeros)."""
    with path.open("wb") as fh:
        fh.truncate(size)
    return path


async def _put_file(relay: Relay, url_path: str, file: Path) -> int:
    """Stream a file to the REST API with curl (it reads the file as it sends)."""
    body, headers = relay.workdir / "rest-body", relay.workdir / "rest-headers"
    command = [
        relay.curl_binary,
        "--silent",
        "--max-time",
        "30",
        "-H",
        f"Authorization: Bearer {relay.api.token}",
        "-H",
        "Content-Type: application/octet-stream",
        "-T",
        str(file),
        "-o",
        str(body),
        "-w",
        "%{http_code}",
        relay.api.base + url_path,
    ]
    return (await run_curl(command, body, headers, check=False)).status


async def test_a_resource_of_50_mb_is_refused_with_413(relay: Relay, tmp_path: Path) -> None:
    big = _sized_file(tmp_path / "big.wav", 50 * 1024 * 1024)
    assert await _put_file(relay, "/resources/big.wav", big) == 413
    assert (await relay.api.get("/resources")).body == []


async def test_a_resource_just_below_50_mb_is_accepted(relay: Relay, tmp_path: Path) -> None:
    """cloud.md: resource files "below 50 MB" can be uploaded."""
    size = 50 * 1024 * 1024 - 1
    big = _sized_file(tmp_path / "big.wav", size)
    assert await _put_file(relay, "/resources/big.wav", big) == 201
    head = await relay.curl("HEAD", "/big.wav")
    assert int(head.headers["content-length"]) == size


# -- device files --------------------------------------------------------------------


async def _device_files(relay: Relay) -> None:
    """A global license file, and one for MAC (which must exist first)."""
    assert (await relay.curl("GET", f"/{MAC}.cfg")).status == 200
    for name, data in (
        ("000000000000-license.cfg", LICENSE_GLOBAL),
        (f"{MAC}-license.cfg", LICENSE_OWN),
    ):
        reply = await relay.api.put(
            f"/device-files/{name}", data=data, content_type="application/octet-stream"
        )
        assert reply.status == 201, reply.text


async def test_a_phone_gets_its_own_device_file(relay: Relay) -> None:
    await _device_files(relay)
    reply = await relay.curl("GET", f"/{MAC}-license.cfg")
    assert reply.status == 200
    assert reply.body == LICENSE_OWN


async def test_a_phone_gets_the_global_device_file(relay: Relay) -> None:
    await _device_files(relay)
    reply = await relay.curl("GET", "/000000000000-license.cfg")
    assert reply.status == 200
    assert reply.body == LICENSE_GLOBAL


async def test_device_cfg_files_follow_the_profile_own_one_first(relay: Relay) -> None:
    await _device_files(relay)
    assert (await _config_files(relay))[:3] == (
        f"{MAC}-profile.cfg",
        f"{MAC}-license.cfg",
        "000000000000-license.cfg",
    )


async def test_another_phone_lists_only_the_global_device_file(relay: Relay) -> None:
    await _device_files(relay)
    files = await _config_files(relay, OTHER_MAC)
    assert files == (f"{OTHER_MAC}-profile.cfg", "000000000000-license.cfg")


async def test_a_device_file_in_a_directory_is_listed_and_served_there(relay: Relay) -> None:
    data = b'<polycomConfig><dir dir.x="1"/></polycomConfig>\n'
    reply = await relay.api.put(
        "/device-files/000000000000-speed.cfg",
        data=data,
        content_type="application/octet-stream",
        params={"directory": "contacts"},
    )
    assert reply.status == 201, reply.text
    assert "contacts/000000000000-speed.cfg" in await _config_files(relay)
    served = await relay.curl("GET", "/contacts/000000000000-speed.cfg")
    assert served.status == 200
    assert served.body == data


async def test_a_global_contact_directory_is_served_to_phones(relay: Relay) -> None:
    data = b"<directory><item_list><item><fn>Desk</fn><ct>100</ct></item></item_list></directory>"
    reply = await relay.api.put(
        "/device-files/000000000000-directory.xml", data=data, content_type="application/xml"
    )
    assert reply.status == 201, reply.text
    served = await relay.curl("GET", "/000000000000-directory.xml")
    assert served.status == 200
    assert served.body == data


async def test_a_deleted_device_file_leaves_the_master_and_is_404(relay: Relay) -> None:
    await _device_files(relay)
    assert (await relay.api.delete("/device-files/000000000000-license.cfg")).status == 204
    assert "000000000000-license.cfg" not in await _config_files(relay)
    assert (await relay.curl("GET", "/000000000000-license.cfg")).status == 404


# -- optional files ------------------------------------------------------------------

OPTIONAL = (
    f"/{MAC}-phone.cfg",
    f"/{MAC}-web.cfg",
    "/000000000000-license.cfg",
    f"/{MAC}-license.cfg",
    f"/{MAC}-calls.xml",
    f"/{MAC}-directory.xml",
    "/000000000000-directory.xml",
    "/sip.ld",
    "/3111-44500-001.sip.ld",
)


async def test_missing_optional_files_are_404_without_an_error_log(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="cloud.provisioning")
    assert (await relay.curl("GET", f"/{MAC}.cfg")).status == 200
    for path in OPTIONAL:
        assert (await relay.curl("GET", path)).status == 404, path
    errors = [
        r
        for r in caplog.records
        if r.name.startswith("cloud.provisioning") and r.levelno >= logging.ERROR
    ]
    assert errors == []
