"""The simulated phone's REST API and web server over real loopback HTTPS (phones.md section 4)."""

from __future__ import annotations

import asyncio
import json
import struct
import zlib
from collections.abc import Callable

import aiohttp
import pytest

from relay.sim.phone import PhoneSpec

from .conftest import MAC, ProvServer, config
from .restkit import ADMIN, base_url, call, client, curl, rest_files, serving_phone, wait_for

Spec = Callable[..., PhoneSpec]
INFO = "/api/v1/mgmt/device/info"


async def test_vvx300_answers_curl_with_basic_auth(prov: ProvServer, spec: Spec) -> None:
    rest_files(prov)
    async with serving_phone(spec, model="VVX300", source_ip="127.20.1.1") as phone:
        code, body = await curl("-u", f"Polycom:{ADMIN}", base_url(phone) + INFO)

    assert phone.rest_auth_scheme == "basic"
    assert code == 200
    reply = json.loads(body)
    assert reply["Status"] == "2000"
    assert reply["data"]["Model"] == "VVX300"
    assert reply["data"]["MACAddress"] == MAC


async def test_vvx500_answers_curl_with_digest_auth(prov: ProvServer, spec: Spec) -> None:
    rest_files(prov)
    async with serving_phone(spec, source_ip="127.20.1.2") as phone:
        code, body = await curl("--digest", "-u", f"Polycom:{ADMIN}", base_url(phone) + INFO)

    assert phone.rest_auth_scheme == "digest"
    assert code == 200
    assert json.loads(body)["data"]["IPV4Address"] == "127.20.1.2"


async def test_digest_model_refuses_basic_credentials_with_a_digest_challenge(
    prov: ProvServer, spec: Spec
) -> None:
    rest_files(prov)
    async with (
        serving_phone(spec, source_ip="127.20.1.3") as phone,
        aiohttp.ClientSession(
            headers={"Authorization": aiohttp.encode_basic_auth("Polycom", ADMIN)}
        ) as session,
        session.get(base_url(phone) + INFO, ssl=False) as response,
    ):
        challenge = response.headers["WWW-Authenticate"]

    assert response.status == 401
    assert challenge.startswith("Digest ")
    assert 'qop="auth"' in challenge


@pytest.mark.parametrize("model", ["VVX300", "VVX500"])
async def test_wrong_password_gets_401_with_the_models_challenge(
    prov: ProvServer, spec: Spec, model: str
) -> None:
    rest_files(prov)
    async with serving_phone(spec, model=model, source_ip="127.20.1.4") as phone:
        auth = ["--digest"] if model == "VVX500" else []
        code, _ = await curl(*auth, "-u", "Polycom:wrong", base_url(phone) + INFO)
        status, _ = await call(phone, "GET", INFO, password="wrong")

    assert code == 401
    assert status == 401


async def test_soundpoint_has_no_rest_server(prov: ProvServer, spec: Spec) -> None:
    rest_files(prov)
    async with serving_phone(spec, model="SPIP650", source_ip="127.20.1.5") as phone:
        assert phone.rest_auth_scheme is None
        assert phone.rest_address is None
        assert phone.sip_address is not None
        assert phone.online


async def test_factory_admin_password_answers_4010(prov: ProvServer, spec: Spec) -> None:
    prov.files["site.cfg"] = config(apps__restapi__enabled="1")
    async with serving_phone(spec, source_ip="127.20.1.6") as phone:
        status, reply = await call(phone, "GET", INFO, password="456")

    assert (status, reply) == (200, {"Status": "4010"})


async def test_rest_api_switched_off_answers_404(prov: ProvServer, spec: Spec) -> None:
    rest_files(prov, apps__restapi__enabled="0")
    async with serving_phone(spec, source_ip="127.20.1.7") as phone:
        status, _ = await call(phone, "GET", INFO)

    assert status == 404


async def test_a_second_concurrent_request_gets_403(prov: ProvServer, spec: Spec) -> None:
    rest_files(prov)
    # 150 phone seconds of processing: 1.5 s real.
    async with serving_phone(
        spec, model="VVX300", source_ip="127.20.1.8", rest_processing=150.0
    ) as phone:
        first = asyncio.create_task(call(phone, "GET", INFO))
        await wait_for(lambda: phone._web is not None and phone._web._in_flight)
        second = await call(phone, "GET", INFO)
        first_reply = await first

    assert second[0] == 403
    assert first_reply[0] == 200
    assert first_reply[1]["Status"] == "2000"


async def test_busy_phone_answers_4001(prov: ProvServer, spec: Spec) -> None:
    rest_files(prov)
    async with serving_phone(spec, source_ip="127.20.1.9") as phone:
        phone.set_busy(3600)
        busy = await call(phone, "GET", INFO)
        phone.set_busy(0)
        idle = await call(phone, "GET", INFO)

    assert busy == (200, {"Status": "4001"})
    assert idle[1]["Status"] == "2000"


async def test_phone_is_busy_right_after_boot(prov: ProvServer, spec: Spec) -> None:
    rest_files(prov)
    async with serving_phone(spec, source_ip="127.20.1.10", busy_after_boot=3600.0) as phone:
        status, reply = await call(phone, "GET", INFO)

    assert (status, reply) == (200, {"Status": "4001"})


async def test_config_set_then_get_shows_the_local_source(prov: ProvServer, spec: Spec) -> None:
    rest_files(prov)
    async with serving_phone(spec, source_ip="127.20.1.11") as phone:
        set_reply = await call(phone, "POST", "/api/v1/mgmt/config/set", {"voice.volume": "9"})
        _, got = await call(
            phone, "POST", "/api/v1/mgmt/config/get", ["voice.volume", "reg.1.label"]
        )

    assert set_reply == (200, {"Status": "2000"})
    assert got["data"] == {
        "voice.volume": {"Value": "9", "Source": "local"},
        "reg.1.label": {"Value": "Reception", "Source": "config_files"},
    }
    assert phone.parameters["voice.volume"] == "9"


async def test_config_get_gives_defaults_and_omits_unknown_names(
    prov: ProvServer, spec: Spec
) -> None:
    rest_files(prov)
    async with serving_phone(spec, source_ip="127.20.1.12") as phone:
        _, got = await call(
            phone,
            "POST",
            "/api/v1/mgmt/config/get",
            ["up.screenCapture.enabled", "no.such.parameter"],
        )

    assert got == {
        "Status": "2000",
        "data": {"up.screenCapture.enabled": {"Value": "0", "Source": "default"}},
    }


async def test_config_set_of_more_than_20_names_is_4009(prov: ProvServer, spec: Spec) -> None:
    rest_files(prov)
    async with serving_phone(spec, source_ip="127.20.1.13") as phone:
        values = {f"feature.x{i}.enabled": "1" for i in range(21)}
        reply = await call(phone, "POST", "/api/v1/mgmt/config/set", values)

    assert reply == (200, {"Status": "4009"})
    assert "feature.x0.enabled" not in phone.parameters


async def test_safe_reboot_goes_offline_then_provisions_again(prov: ProvServer, spec: Spec) -> None:
    rest_files(prov)
    # 10 phone seconds per real second: up 10 s, then 10 s offline; a boot is well under 1 s.
    async with serving_phone(
        spec, source_ip="127.20.1.14", reboot_seconds=10.0, time_scale=0.1
    ) as phone:
        await asyncio.sleep(1.0)
        uptime_before, restart_before = phone.uptime, phone.last_restart
        reply = await call(phone, "POST", "/api/v1/mgmt/safeReboot")
        await wait_for(lambda: not phone.online)
        with pytest.raises(aiohttp.ClientConnectionError):
            await call(phone, "GET", INFO)
        await wait_for(lambda: phone.online)
        _, info = await call(phone, "GET", INFO)

    assert reply == (200, {"Status": "2000"})
    assert phone.restarts == 1
    assert phone.last_restart_reason == "REST reboot"
    assert restart_before is not None and phone.last_restart is not None
    assert phone.last_restart > restart_before
    assert int(info["data"]["UpTime"]) < uptime_before
    boot_logs = [r for r in prov.requests_from("127.20.1.14") if r[1] == f"{MAC}-boot.log"]
    assert len(boot_logs) == 2


async def test_factory_reset_wipes_local_settings_and_reprovisions(
    prov: ProvServer, spec: Spec
) -> None:
    rest_files(prov)
    async with serving_phone(
        spec,
        source_ip="127.20.1.15",
        reboot_seconds=10.0,
        local_overrides={"up.backlight.idleIntensity": "1"},
    ) as phone:
        await call(phone, "POST", "/api/v1/mgmt/config/set", {"voice.volume": "9"})
        # The server would hand the uploaded handset settings back; an admin deleted them.
        del prov.uploads[f"{MAC}-phone.cfg"]
        reply = await call(phone, "POST", "/api/v1/mgmt/factoryReset")
        await wait_for(lambda: phone.restarts == 1 and phone.online)
        _, got = await call(phone, "POST", "/api/v1/mgmt/config/get", ["voice.volume"])

    assert reply == (200, {"Status": "2000"})
    assert "up.backlight.idleIntensity" not in phone.parameters
    assert got["data"]["voice.volume"] == {"Value": "5", "Source": "config_files"}
    assert phone.last_restart_reason == "factory reset"


async def test_config_reset_local_clears_only_the_local_layer(prov: ProvServer, spec: Spec) -> None:
    rest_files(prov)
    async with serving_phone(spec, source_ip="127.20.1.16") as phone:
        phone.settings.device["device.net.vlanId"] = "20"
        await call(phone, "POST", "/api/v1/mgmt/config/set", {"voice.volume": "9"})
        reply = await call(phone, "POST", "/api/v1/mgmt/configReset/local")

    assert reply == (200, {"Status": "2000"})
    assert phone.parameters["voice.volume"] == "5"
    assert phone.parameters["device.net.vlanId"] == "20"


async def test_update_configuration_reprovisions(prov: ProvServer, spec: Spec) -> None:
    rest_files(prov)
    async with serving_phone(spec, source_ip="127.20.1.17") as phone:
        prov.files["site.cfg"] += b""
        prov.files[f"{MAC}-web.cfg"] = config(voice__volume="7")
        reply = await call(phone, "POST", "/api/v1/mgmt/updateConfiguration")
        await wait_for(lambda: phone.report().polls == 1)

    assert reply == (200, {"Status": "2000"})
    assert phone.check_syncs == 1
    assert phone.parameters["voice.volume"] == "7"


async def test_dial_creates_a_call_that_end_call_removes(prov: ProvServer, spec: Spec) -> None:
    rest_files(prov)
    async with serving_phone(spec, source_ip="127.20.1.18") as phone:
        dialed = await call(
            phone, "POST", "/api/v1/callctrl/dial", {"Dest": "2002", "Line": "1", "Type": "TEL"}
        )
        await asyncio.sleep(0.06)  # 6 phone seconds
        _, connected = await call(phone, "GET", "/api/v2/webCallControl/callStatus")
        handle = dialed[1]["data"]["CallHandle"]
        ended = await call(phone, "POST", "/api/v1/callctrl/endCall", {"Ref": handle})
        again = await call(phone, "POST", "/api/v1/callctrl/endCall", {"Ref": handle})

    assert dialed[1]["Status"] == "2000"
    [live] = connected["data"]
    assert live["CallState"] == "Connected"
    assert live["RemotePartyNumber"] == "2002"
    assert live["Protocol"] == "TEL"
    assert int(live["DurationInSeconds"]) >= 5
    assert ended == (200, {"Status": "2000"})
    assert again == (200, {"Status": "4007"})
    assert phone.calls == ()


async def test_line_info_shows_registered_and_failing_lines(prov: ProvServer, spec: Spec) -> None:
    rest_files(prov, reg__2__address="fail-2002", reg__3__address="3003")
    async with serving_phone(spec, source_ip="127.20.1.19") as phone:
        phone.fail_line(3)
        _, lines = await call(phone, "GET", "/api/v1/mgmt/lineInfo")
        not_registered = await call(
            phone, "POST", "/api/v1/callctrl/dial", {"Dest": "1", "Line": 3}
        )
        no_line = await call(phone, "POST", "/api/v1/callctrl/dial", {"Dest": "1", "Line": "9"})

    assert [(line["LineNumber"], line["RegistrationStatus"]) for line in lines["data"]] == [
        ("1", "registered"),
        ("2", "unregistered"),
        ("3", "unregistered"),
    ]
    first = lines["data"][0]
    assert first["SIPAddress"] == "1001@pbx.example"
    assert first["ProxyAddress"] == "pbx.example"
    assert first["Label"] == "Reception"
    assert first["Protocol"] == "SIP"
    assert not_registered[1] == {"Status": "4002"}
    assert no_line[1] == {"Status": "4005"}


async def test_capture_screen_returns_a_png_only_when_enabled(prov: ProvServer, spec: Spec) -> None:
    rest_files(prov)
    async with serving_phone(spec, source_ip="127.20.1.20") as phone, client(phone) as session:
        async with session.get(base_url(phone) + "/captureScreen") as response:
            off = response.status
        phone.settings.web["up.screenCapture.enabled"] = "1"
        async with session.get(base_url(phone) + "/captureScreen") as response:
            on = response.status
            png = await response.read()

    assert off == 403
    assert on == 200
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", png[16:24])
    idat_length = struct.unpack(">I", png[33:37])[0]
    assert len(zlib.decompress(png[41 : 41 + idat_length])) == height * (width + 1)


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[1, 2]", b'{"nodata": 1}', b"\xff\xfe", b"[" * 5000 + b"]" * 5000],
    ids=["syntax", "not-an-object", "no-data", "not-utf8", "deeply-nested"],
)
async def test_malformed_bodies_get_4000_and_the_phone_keeps_serving(
    prov: ProvServer, spec: Spec, raw: bytes
) -> None:
    rest_files(prov)
    async with serving_phone(spec, model="VVX300", source_ip="127.20.1.21") as phone:
        bad = await call(phone, "POST", "/api/v1/mgmt/config/set", raw=raw)
        good = await call(phone, "GET", INFO)

    assert bad == (200, {"Status": "4000"})
    assert good[1]["Status"] == "2000"


async def test_a_body_over_64_kib_gets_413(prov: ProvServer, spec: Spec) -> None:
    rest_files(prov)
    async with serving_phone(spec, model="VVX300", source_ip="127.20.1.22") as phone:
        status, _ = await call(phone, "POST", "/api/v1/mgmt/config/set", raw=b" " * 70_000)

    assert status == 413


@pytest.mark.parametrize(
    "path",
    [
        "/api/v2/mgmt/device/info",
        "/api/v1/mgmt/device/stats",
        "/api/v1/mgmt/network/info",
        "/api/v1/mgmt/network/stats",
        "/api/v2/mgmt/lineInfo",
    ],
)
async def test_health_endpoints_answer_2000_with_data(
    prov: ProvServer, spec: Spec, path: str
) -> None:
    rest_files(prov)
    async with serving_phone(spec, model="VVX300", source_ip="127.20.1.23") as phone:
        status, reply = await call(phone, "GET", path)

    assert status == 200
    assert reply["Status"] == "2000"
    assert reply["data"]


async def test_running_config_names_each_parameters_source(prov: ProvServer, spec: Spec) -> None:
    rest_files(prov)
    async with serving_phone(spec, source_ip="127.20.1.24") as phone:
        await call(phone, "POST", "/api/v1/mgmt/config/set", {"voice.volume": 3})
        _, running = await call(phone, "GET", "/api/v1/mgmt/device/runningConfig")

    data = running["data"]
    assert data["voice.volume"] == {"Value": "3", "Source": "local"}
    assert data["apps.restapi.enabled"] == {"Value": "1", "Source": "config_files"}
    assert data["diags.pcap.enabled"] == {"Value": "0", "Source": "default"}


async def test_unknown_path_is_404_and_wrong_method_405(prov: ProvServer, spec: Spec) -> None:
    rest_files(prov)
    async with serving_phone(spec, model="VVX300", source_ip="127.20.1.25") as phone:
        unknown = await call(phone, "GET", "/api/v1/mgmt/nothing")
        wrong = await call(phone, "GET", "/api/v1/mgmt/safeReboot")

    assert unknown == (404, {"Status": "4004"})
    assert wrong == (405, {"Status": "4004"})
    assert [r.http_status for r in phone.rest_requests] == [404, 405]
