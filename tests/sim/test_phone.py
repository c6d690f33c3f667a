"""One simulated phone against the test provisioning server (phones.md section 2)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from aiohttp import web

from relay.proto.polycom.cfgfile import parse_config
from relay.sim.clock import ScaledClock
from relay.sim.firmware import make_image, read_header
from relay.sim.phone import PhoneSpec, SimPhone

from .conftest import (
    FIRMWARE,
    MAC,
    PASSWORD,
    USER,
    ProvServer,
    config,
    firmware_image,
    lab_ca,
    master,
    refused_url,
    standard_files,
)

Spec = Callable[..., PhoneSpec]
FIRMWARE_FILE = "3111-44500-001.sip.ld"

OPTIONAL_404 = [
    ("GET", f"{MAC}-phone.cfg", 404),
    ("GET", f"{MAC}-web.cfg", 404),
    ("GET", "000000000000-license.cfg", 404),
    ("GET", f"{MAC}-license.cfg", 404),
    ("GET", f"{MAC}-calls.xml", 404),
    ("GET", f"{MAC}-directory.xml", 404),
    ("GET", "000000000000-directory.xml", 404),
]


async def boot(spec: PhoneSpec, clock: ScaledClock | None = None) -> SimPhone:
    """Boot a phone and return it closed (its report stays readable)."""
    async with SimPhone(spec, clock=clock) as phone:
        await phone.boot()
    return phone


async def test_boot_without_upgrade_sends_the_vvx500_sequence_of_phones_md(
    prov: ProvServer, spec: Spec
) -> None:
    phone = await boot(spec())

    assert phone.report().requests == (
        ("PUT", f"{MAC}-boot.log", 204),
        ("GET", f"{MAC}.cfg", 200),  # Updater: master file for APP_FILE_PATH
        ("GET", f"{MAC}.cfg", 200),  # Application: master file for CONFIG_FILES
        ("GET", f"{MAC}-profile.cfg", 200),
        ("GET", "site.cfg", 200),
        *OPTIONAL_404,
        ("HEAD", f"{MAC}-app.log", 404),
        ("PUT", f"{MAC}-app.log", 204),
    )
    assert prov.requests_from("127.20.0.1") == list(phone.report().requests)


async def test_phones_md_capture_is_a_subsequence_of_the_boot(prov: ProvServer, spec: Spec) -> None:
    phone = await boot(spec())
    capture = [
        ("PUT", f"{MAC}-boot.log"),
        ("GET", f"{MAC}.cfg"),
        ("GET", f"{MAC}-phone.cfg"),
        ("GET", f"{MAC}-web.cfg"),
        ("GET", "000000000000-license.cfg"),
        ("GET", f"{MAC}-license.cfg"),
        ("GET", f"{MAC}-calls.xml"),
        ("GET", f"{MAC}-directory.xml"),
        ("GET", "000000000000-directory.xml"),
        ("HEAD", f"{MAC}-app.log"),
        ("PUT", f"{MAC}-app.log"),
    ]
    sent = iter((method, path) for method, path, _status in phone.report().requests)

    assert all(request in sent for request in capture)


async def test_user_agents_carry_model_firmware_and_stage(prov: ProvServer, spec: Spec) -> None:
    await boot(spec())
    updater = f"FileTransport PolycomVVX-VVX_500-UA/{FIRMWARE} Type/Updater"
    application = f"FileTransport PolycomVVX-VVX_500-UA/{FIRMWARE} Type/Application"

    assert [seen.user_agent for seen in prov.seen] == [updater] * 2 + [application] * 12


async def test_master_falls_back_to_000000000000_cfg_on_404(prov: ProvServer, spec: Spec) -> None:
    prov.files["000000000000.cfg"] = prov.files.pop(f"{MAC}.cfg")
    phone = await boot(spec())

    assert phone.report().requests[1:3] == (
        ("GET", f"{MAC}.cfg", 404),
        ("GET", "000000000000.cfg", 200),
    )
    assert phone.state == "provisioned"


async def test_master_named_in_the_server_url_is_the_only_one_fetched(
    prov: ProvServer, spec: Spec
) -> None:
    prov.files["prov/lab.cfg"] = prov.files.pop(f"{MAC}.cfg")
    prov.files["prov/site.cfg"] = prov.files.pop("site.cfg")
    prov.files[f"prov/{MAC}-profile.cfg"] = prov.files.pop(f"{MAC}-profile.cfg")
    phone = await boot(spec(servers=(prov.url + "prov/lab.cfg",)))

    masters = [path for method, path, _ in phone.report().requests if path.endswith("lab.cfg")]
    assert masters == ["lab.cfg", "lab.cfg"]
    assert phone.state == "provisioned"


async def test_config_files_first_file_that_sets_a_parameter_wins(
    prov: ProvServer, spec: Spec
) -> None:
    phone = await boot(spec())

    assert phone.parameters["reg.1.address"] == "1001"
    assert phone.parameters["tcpIpApp.sntp.address"] == "pool.ntp.org"


async def test_override_files_win_over_config_files(prov: ProvServer, spec: Spec) -> None:
    prov.files[f"{MAC}-phone.cfg"] = config(voice__volume="9")
    prov.files[f"{MAC}-web.cfg"] = config(voice__volume="7", reg__1__address="2002")
    phone = await boot(spec())

    assert phone.parameters["voice.volume"] == "9"
    assert phone.parameters["reg.1.address"] == "2002"


async def test_legacy_phone_config_root_is_read(prov: ProvServer, spec: Spec) -> None:
    prov.files["site.cfg"] = b'<PHONE_CONFIG><ALL up.backlight.idleIntensity="1"/></PHONE_CONFIG>'
    phone = await boot(spec())

    assert phone.parameters["up.backlight.idleIntensity"] == "1"


async def test_macros_in_config_files_are_expanded(prov: ProvServer, spec: Spec) -> None:
    prov.files[f"{MAC}.cfg"] = master(("[PHONE_MAC_ADDRESS]-profile.cfg", "[PHONE_MODEL].cfg"))
    prov.files["VVX500.cfg"] = config(up__model="vvx500")
    phone = await boot(spec())

    assert ("GET", "VVX500.cfg", 200) in phone.report().requests
    assert phone.parameters["up.model"] == "vvx500"


async def test_device_parameter_without_set_companion_is_applied_and_recorded(
    prov: ProvServer, spec: Spec
) -> None:
    prov.files["site.cfg"] = (
        b'<polycomConfig><device device.prov.serverName="relay.example"/></polycomConfig>'
    )
    phone = await boot(spec())

    assert phone.parameters["device.prov.serverName"] == "relay.example"
    assert phone.report().missing_set_companions == ("device.prov.serverName",)


async def test_device_parameter_with_set_companions_is_not_recorded(
    prov: ProvServer, spec: Spec
) -> None:
    prov.files["site.cfg"] = config(device__prov__serverName="relay.example")
    phone = await boot(spec())

    assert phone.parameters["device.prov.serverName"] == "relay.example"
    assert phone.report().missing_set_companions == ()


async def test_firmware_of_the_same_version_is_probed_not_downloaded(
    prov: ProvServer, spec: Spec
) -> None:
    prov.files[f"{MAC}.cfg"] = master(app_file_path="sip.ld")
    prov.files[FIRMWARE_FILE] = firmware_image(FIRMWARE, size=200_000)
    phone = await boot(spec())

    firmware = [seen for seen in prov.seen if seen.path == FIRMWARE_FILE]
    assert [(seen.status, seen.range) for seen in firmware] == [(206, "bytes=0-511")]
    assert phone.report().reboots == 0
    assert phone.report().bytes_down < 100_000


async def test_firmware_of_another_version_is_installed_and_the_phone_reboots(
    prov: ProvServer, spec: Spec
) -> None:
    prov.files[f"{MAC}.cfg"] = master(app_file_path="sip.ld")
    prov.files[FIRMWARE_FILE] = firmware_image("6.4.3.1234")
    phone = await boot(spec())

    assert phone.report().requests[:8] == (
        ("PUT", f"{MAC}-boot.log", 204),
        ("GET", f"{MAC}.cfg", 200),
        ("GET", FIRMWARE_FILE, 206),
        ("GET", FIRMWARE_FILE, 200),
        ("PUT", f"{MAC}-boot.log", 204),
        ("GET", f"{MAC}.cfg", 200),
        ("GET", FIRMWARE_FILE, 206),
        ("GET", f"{MAC}.cfg", 200),
    )
    assert (phone.firmware, phone.report().reboots, phone.state) == ("6.4.3.1234", 1, "provisioned")


async def test_application_stage_after_upgrade_announces_the_new_firmware(
    prov: ProvServer, spec: Spec
) -> None:
    prov.files[f"{MAC}.cfg"] = master(app_file_path="sip.ld")
    prov.files[FIRMWARE_FILE] = firmware_image("6.4.3.1234")
    await boot(spec())

    assert prov.seen[-1].user_agent == (
        "FileTransport PolycomVVX-VVX_500-UA/6.4.3.1234 Type/Application"
    )


async def test_server_ignoring_range_has_only_the_header_read(prov: ProvServer, spec: Spec) -> None:
    prov.honour_range = False
    prov.files[f"{MAC}.cfg"] = master(app_file_path="sip.ld")
    prov.files[FIRMWARE_FILE] = firmware_image(FIRMWARE, size=2_000_000)
    phone = await boot(spec())

    assert ("GET", FIRMWARE_FILE, 200) in phone.report().requests
    assert phone.report().bytes_down < 100_000
    assert phone.state == "provisioned"


async def test_firmware_failing_verification_is_an_error_and_keeps_the_version(
    prov: ProvServer, spec: Spec
) -> None:
    image = bytearray(firmware_image("6.4.3.1234"))
    image[-1] ^= 0xFF
    prov.files[f"{MAC}.cfg"] = master(app_file_path="sip.ld")
    prov.files[FIRMWARE_FILE] = bytes(image)
    phone = await boot(spec())

    assert phone.firmware == FIRMWARE
    assert phone.state == "failed"
    assert phone.report().errors[0].startswith(f"GET {FIRMWARE_FILE}: firmware verification")


async def test_firmware_offered_after_three_reboots_is_refused(
    prov: ProvServer, spec: Spec
) -> None:
    downloads = 0

    async def ever_newer(request: web.Request) -> web.Response:
        nonlocal downloads
        image = make_image("PolycomVVX", f"7.0.0.{downloads}", 64)
        if "Range" in request.headers:
            return web.Response(status=206, body=image[:512])
        downloads += 1
        return web.Response(body=image)

    prov.handlers[FIRMWARE_FILE] = ever_newer
    prov.files[f"{MAC}.cfg"] = master(app_file_path="sip.ld")
    phone = await boot(spec())

    assert (phone.report().reboots, phone.firmware) == (3, "7.0.0.2")
    assert "after 3 reboots" in phone.report().errors[0]


async def test_firmware_at_an_absolute_url_uses_the_credentials_in_the_url(
    prov: ProvServer, spec: Spec
) -> None:
    images = ProvServer(user="fw", password="fw-pass")
    await images.start()
    try:
        images.files[f"sw/{FIRMWARE_FILE}"] = firmware_image("6.4.3.1234")
        url = images.url.replace("http://", "http://fw:fw-pass@") + "sw/sip.ld"
        prov.files[f"{MAC}.cfg"] = master(app_file_path=url)
        phone = await boot(spec())
    finally:
        await images.close()

    assert (phone.firmware, phone.state) == ("6.4.3.1234", "provisioned")
    assert ("GET", images.url + f"sw/{FIRMWARE_FILE}", 200) in phone.report().requests


async def test_missing_optional_files_are_not_errors(prov: ProvServer, spec: Spec) -> None:
    phone = await boot(spec())

    assert phone.report().requests[5:12] == tuple(OPTIONAL_404)
    assert (phone.state, phone.report().errors) == ("provisioned", ())


async def test_missing_config_files_entry_is_an_error(prov: ProvServer, spec: Spec) -> None:
    del prov.files["site.cfg"]
    phone = await boot(spec())

    assert phone.state == "failed"
    assert phone.report().errors == ("GET site.cfg: HTTP 404 for a file listed in CONFIG_FILES",)


async def test_wrong_credentials_fail_with_a_clear_error(prov: ProvServer, spec: Spec) -> None:
    phone = await boot(spec(password="wrong"))

    assert phone.state == "failed"
    assert phone.report().requests == (("PUT", f"{MAC}-boot.log", 401),)
    assert phone.report().errors == (
        f"PUT {MAC}-boot.log: HTTP 401, the server refused the credentials of user "
        f"{USER!r}; check the user name and password",
    )


async def test_each_phone_uses_its_own_source_address(prov: ProvServer, spec: Spec) -> None:
    first = spec(source_ip="127.20.0.7")
    second = spec(mac="64167f000001", source_ip="127.20.0.8")
    async with SimPhone(first) as one, SimPhone(second) as two:
        await asyncio.gather(one.boot(), two.boot())

    by_address = {seen.source_ip for seen in prov.seen if MAC in seen.path}
    assert by_address == {"127.20.0.7"}
    assert {seen.source_ip for seen in prov.seen} == {"127.20.0.7", "127.20.0.8"}


async def test_cx5100_fetches_system_cfg_instead_of_phone_cfg(prov: ProvServer, spec: Spec) -> None:
    phone = await boot(spec(model="CX5100", part_number="3111-65290-001"))

    paths = [path for _method, path, _status in phone.report().requests]
    assert f"{MAC}-system.cfg" in paths
    assert f"{MAC}-phone.cfg" not in paths


async def test_directory_attributes_are_honoured(prov: ProvServer, spec: Spec) -> None:
    prov.files[f"{MAC}.cfg"] = master(
        LOG_FILE_DIRECTORY="logs",
        OVERRIDES_DIRECTORY="overrides",
        CONTACTS_DIRECTORY="contacts",
        LICENSE_DIRECTORY="license",
        CALL_LISTS_DIRECTORY="calllists",
    )
    phone = await boot(spec())

    assert phone.report().requests[5:14] == (
        ("GET", f"overrides/{MAC}-phone.cfg", 404),
        ("GET", f"overrides/{MAC}-web.cfg", 404),
        ("GET", "license/000000000000-license.cfg", 404),
        ("GET", f"license/{MAC}-license.cfg", 404),
        ("GET", f"calllists/{MAC}-calls.xml", 404),
        ("GET", f"contacts/{MAC}-directory.xml", 404),
        ("GET", "contacts/000000000000-directory.xml", 404),
        ("HEAD", f"logs/{MAC}-app.log", 404),
        ("PUT", f"logs/{MAC}-app.log", 204),
    )


async def test_next_boot_writes_the_boot_log_to_the_log_directory(
    prov: ProvServer, spec: Spec
) -> None:
    prov.files[f"{MAC}.cfg"] = master(LOG_FILE_DIRECTORY="logs")
    async with SimPhone(spec()) as phone:
        await phone.boot()
        await phone.boot()

    assert phone.report().requests[0] == ("PUT", f"logs/{MAC}-boot.log", 204)


async def test_local_overrides_are_uploaded_as_phone_cfg(prov: ProvServer, spec: Spec) -> None:
    phone = await boot(spec(local_overrides={"voice.volume": "3"}))

    assert phone.report().requests[-1] == ("PUT", f"{MAC}-phone.cfg", 204)
    assert parse_config(prov.uploads[f"{MAC}-phone.cfg"]) == {"voice.volume": "3"}
    assert phone.parameters["voice.volume"] == "3"


async def test_logs_are_uploaded(prov: ProvServer, spec: Spec) -> None:
    await boot(spec())

    assert b"Updater" in prov.uploads[f"{MAC}-boot.log"]
    assert b"Application" in prov.uploads[f"{MAC}-app.log"]


async def test_failover_to_the_second_server_when_the_first_refuses_connections(
    prov: ProvServer, spec: Spec
) -> None:
    phone = await boot(spec(servers=(refused_url(), prov.url)))

    assert (phone.state, phone.report().failovers) == ("provisioned", 1)
    assert phone.report().requests[0] == ("PUT", f"{MAC}-boot.log", 204)


async def test_http_error_does_not_fail_over(prov: ProvServer, spec: Spec) -> None:
    other = ProvServer(files=dict(prov.files))
    await other.start()
    try:
        del prov.files[f"{MAC}.cfg"]
        phone = await boot(spec(servers=(prov.url, other.url)))
    finally:
        await other.close()

    assert (phone.state, phone.report().failovers, other.seen) == ("failed", 0, [])


async def test_unreachable_servers_fail_the_boot_naming_the_request(spec: Spec) -> None:
    phone = await boot(spec(servers=(refused_url(),)))

    assert phone.state == "failed"
    assert phone.report().errors[0].startswith(f"PUT {MAC}-boot.log: cannot connect")


async def test_https_with_a_ca_file(tmp_path: Path, spec: Spec) -> None:
    context, ca_file = lab_ca(tmp_path)
    secure = ProvServer(files=standard_files())
    await secure.start(ssl_context=context)
    try:
        phone = await boot(spec(servers=(secure.url,), cacert=ca_file))
    finally:
        await secure.close()

    assert secure.url.startswith("https://")
    assert (phone.state, phone.report().errors) == ("provisioned", ())


async def test_https_server_the_ca_file_does_not_vouch_for_fails_the_boot(
    tmp_path: Path, spec: Spec
) -> None:
    context, _ca_file = lab_ca(tmp_path / "server")
    _other_context, other_ca = lab_ca(tmp_path / "other")
    secure = ProvServer(files=standard_files())
    await secure.start(ssl_context=context)
    try:
        phone = await boot(spec(servers=(secure.url,), cacert=other_ca))
    finally:
        await secure.close()

    assert phone.state == "failed"
    assert "certificate verify failed" in phone.report().errors[0]


async def test_polling_refetches_the_configuration(
    prov: ProvServer, spec: Spec, fast_clock: ScaledClock
) -> None:
    prov.files["site.cfg"] = config(
        prov__polling__enabled="1", prov__polling__mode="rel", prov__polling__period="3600"
    )
    app_logs: list[web.Request] = []
    third_app_log = asyncio.Event()

    async def app_log(request: web.Request) -> web.Response:
        if request.method == "PUT":
            app_logs.append(request)
        if len(app_logs) == 3:
            third_app_log.set()
        return web.Response(status=204 if request.method == "PUT" else 404)

    prov.handlers[f"{MAC}-app.log"] = app_log
    async with SimPhone(spec(), clock=fast_clock) as phone:
        await phone.boot()
        async with asyncio.timeout(10):
            await third_app_log.wait()

    masters = [s for s in prov.seen if s.path == f"{MAC}.cfg" and "Application" in s.user_agent]
    assert len(masters) == 3


async def test_poll_now_runs_the_application_stage_once(prov: ProvServer, spec: Spec) -> None:
    async with SimPhone(spec()) as phone:
        await phone.boot()
        booted = len(phone.report().requests)
        await phone.poll_now()

    sent = [(method, path) for method, path, _status in phone.report().requests]
    assert sent[booted:] == sent[2:booted]
    assert phone.report().polls == 1


async def test_poll_now_picks_up_changed_configuration(prov: ProvServer, spec: Spec) -> None:
    async with SimPhone(spec()) as phone:
        await phone.boot()
        prov.files["site.cfg"] = config(voice__volume="1", up__theme="dark")
        await phone.poll_now()

    assert phone.parameters["up.theme"] == "dark"


async def test_polling_off_schedules_nothing(prov: ProvServer, spec: Spec) -> None:
    async with SimPhone(spec()) as phone:
        await phone.boot()

        assert phone.next_poll_delay() is None


async def test_polling_period_below_an_hour_falls_back_to_a_day(
    prov: ProvServer, spec: Spec
) -> None:
    prov.files["site.cfg"] = config(prov__polling__enabled="1", prov__polling__period="60")
    async with SimPhone(spec()) as phone:
        await phone.boot()

        assert phone.next_poll_delay() == 86400


class MidnightClock:
    """Phone time stuck at 00:00 UTC; sleeping never ends (the test closes the phone)."""

    def time(self) -> float:
        return 1_700_000_000 - 1_700_000_000 % 86400

    def monotonic(self) -> float:
        return 0.0

    async def sleep(self, seconds: float) -> None:
        await asyncio.Event().wait()


async def test_random_polling_falls_inside_the_window(prov: ProvServer, spec: Spec) -> None:
    prov.files["site.cfg"] = config(
        prov__polling__enabled="1",
        prov__polling__mode="random",
        prov__polling__time="02:00",
        prov__polling__timeRandomEnd="04:00",
    )
    async with SimPhone(spec(), clock=MidnightClock()) as phone:
        await phone.boot()
        delays = [phone.next_poll_delay() for _ in range(50)]

    assert all(delay is not None and 7200 <= delay <= 14400 for delay in delays)
    assert len(set(delays)) > 1


async def test_tag_serial_number_adds_the_serial_to_the_user_agent(
    prov: ProvServer, spec: Spec
) -> None:
    prov.files["site.cfg"] = config(device__prov__tagSerialNo="1")
    async with SimPhone(spec()) as phone:
        await phone.boot()
        await phone.poll_now()

    assert prov.seen[-1].user_agent == (
        f"FileTransport PolycomVVX-VVX_500-UA/{FIRMWARE} (SN:{MAC}) Type/Application"
    )


def test_spec_refuses_a_model_without_a_part_number() -> None:
    with pytest.raises(ValueError, match="part number"):
        PhoneSpec(
            mac=MAC,
            model="CX5100",
            firmware=FIRMWARE,
            source_ip="127.20.0.1",
            servers=("http://127.0.0.1/",),
            user=USER,
            password=PASSWORD,
        )


def test_firmware_header_names_family_version_and_size() -> None:
    header = read_header(make_image("PolycomVVX", "6.4.3.1234", 1000)[:512])

    assert header is not None
    assert (header.family, header.version, header.size) == ("PolycomVVX", "6.4.3.1234", 1000)


def test_firmware_images_are_deterministic() -> None:
    assert make_image("PolycomVVX", "6.4.3.1234", 300) == make_image(
        "PolycomVVX", "6.4.3.1234", 300
    )


def test_bytes_that_are_not_an_image_have_no_header() -> None:
    assert read_header(b"<?xml version='1.0'?><APPLICATION/>") is None
