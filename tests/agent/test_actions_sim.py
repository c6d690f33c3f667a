"""Every task type end to end on simulated phones (relay.sim), through execute()."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from typing import Any

import pytest

from management_agent.actions import NO_REST, PNG_SIGNATURE, execute
from management_agent.phone_client import PhoneClient
from management_agent.sip_notify import SipNotifier
from relay.sim.phone import SimPhone
from relay.sync.messages import Job, JobResult, Target, check_options

from .conftest import ADMIN_PASSWORD, Lab, phone_files, until

Client = Callable[..., PhoneClient]
CONFIG_GET = "/api/v1/mgmt/config/get"


def job(device: Target, task_type: str, **options: Any) -> Job:
    return Job(
        seq=7,
        task_id="task-1",
        type=task_type,
        options=check_options(task_type, options),
        device=device,
    )


async def run(
    lab: Lab, client: PhoneClient, sip: SipNotifier, phone: SimPhone, task_type: str, **options: Any
) -> JobResult:
    return await execute(job(lab.target(phone), task_type, **options), client, sip)


async def test_set_parameters_in_chunks_shows_in_config_get(
    lab: Lab, client_for: Client, sip_notifier: SipNotifier
) -> None:
    phone = await lab.phone()
    client = client_for(lab.rest_port)
    values = {f"feature.test.{n}": str(n) for n in range(45)}
    result = await run(lab, client, sip_notifier, phone, "set_parameters", parameters=values)
    assert (result.result, result.data) == ("success", {"applied": 45})
    sets = [r for r in phone.rest_requests if r.path.endswith("/config/set") and r.status]
    assert [r.status for r in sets] == ["2000", "2000", "2000"]
    got = await client.call(lab.target(phone), "POST", CONFIG_GET, ["feature.test.44"])
    assert got == {"feature.test.44": {"Value": "44", "Source": "local"}}


async def test_result_names_the_job_task_and_device(
    lab: Lab, client_for: Client, sip_notifier: SipNotifier
) -> None:
    phone = await lab.phone()
    result = await run(lab, client_for(lab.rest_port), sip_notifier, phone, "reboot")
    assert (result.job, result.task_id, result.device) == (7, "task-1", phone.mac)


async def test_basic_and_digest_models_both_work(
    lab: Lab, client_for: Client, sip_notifier: SipNotifier
) -> None:
    digest_phone = await lab.phone()
    basic_phone = await lab.phone(mac="0004f2000400", model="VVX400", ip="127.30.0.2")
    client = client_for(lab.rest_port)
    for phone in (digest_phone, basic_phone):
        result = await run(lab, client, sip_notifier, phone, "get_config", scope="provisioning")
        assert result.result == "success", result.reason
    assert client.auth_scheme(digest_phone.mac) == "digest"
    assert client.auth_scheme(basic_phone.mac) == "basic"


async def test_dial_creates_a_call_and_confirms_it(
    lab: Lab, client_for: Client, sip_notifier: SipNotifier
) -> None:
    phone = await lab.phone()
    client = client_for(lab.rest_port)
    result = await run(lab, client, sip_notifier, phone, "dial", dest="2002@pbx", line=1)
    assert result.result == "success", result.reason
    assert result.data["call"]["remote_number"] == "2002@pbx"
    assert [call.dest for call in phone.calls] == ["2002@pbx"]


async def test_dial_on_an_unregistered_line_fails_with_the_phone_reason(
    lab: Lab, client_for: Client, sip_notifier: SipNotifier
) -> None:
    phone = await lab.phone()
    phone.fail_line(1)
    result = await run(lab, client_for(lab.rest_port), sip_notifier, phone, "dial", dest="2002")
    assert (result.result, result.reason) == ("failure", "phone answered 4002 line not registered")
    assert phone.calls == ()


async def test_reboot_takes_the_phone_offline_then_back(
    lab: Lab, client_for: Client, sip_notifier: SipNotifier
) -> None:
    phone = await lab.phone(reboot_seconds=30.0)
    result = await run(lab, client_for(lab.rest_port), sip_notifier, phone, "reboot")
    assert result.result == "success", result.reason
    await until(lambda: not phone.online)
    await until(lambda: phone.online and phone.restarts == 1)
    assert phone.last_restart_reason == "REST reboot"


async def test_reset_local_drops_what_config_set_wrote(
    lab: Lab, client_for: Client, sip_notifier: SipNotifier
) -> None:
    phone = await lab.phone()
    client = client_for(lab.rest_port)
    await run(lab, client, sip_notifier, phone, "set_parameters", parameters={"voice.volume": "9"})
    assert phone.settings.lookup("voice.volume") == ("9", "local")
    result = await run(lab, client, sip_notifier, phone, "reset", scope="local")
    assert result.result == "success", result.reason
    assert phone.settings.lookup("voice.volume") == ("5", "config_files")


async def test_factory_reset_reboots_and_forgets_local_settings(
    lab: Lab, client_for: Client, sip_notifier: SipNotifier
) -> None:
    phone = await lab.phone()
    client = client_for(lab.rest_port)
    await run(lab, client, sip_notifier, phone, "set_parameters", parameters={"a.b": "1"})
    result = await run(lab, client, sip_notifier, phone, "reset", scope="factory")
    assert result.result == "success", result.reason
    await until(lambda: phone.restarts == 1 and phone.online)
    assert phone.settings.lookup("a.b") is None
    assert phone.last_restart_reason == "factory reset"


async def test_get_config_keeps_only_the_scope_sources(
    lab: Lab, client_for: Client, sip_notifier: SipNotifier
) -> None:
    phone = await lab.phone()
    client = client_for(lab.rest_port)
    await run(lab, client, sip_notifier, phone, "set_parameters", parameters={"a.b": "1"})
    provisioning = await run(lab, client, sip_notifier, phone, "get_config", scope="provisioning")
    local = await run(lab, client, sip_notifier, phone, "get_config", scope="local")
    every = await run(lab, client, sip_notifier, phone, "get_config", scope="all")
    assert provisioning.data["parameters"]["voice.volume"] == "5"
    assert "a.b" not in provisioning.data["parameters"]
    assert set(provisioning.data["sources"].values()) == {"config_files"}
    assert local.data == {"parameters": {"a.b": "1"}, "sources": {"a.b": "local"}}
    assert {"a.b", "voice.volume"} <= set(every.data["parameters"])
    assert "default" not in every.data["sources"].values()


async def test_ad_password_sets_the_line_password_and_never_reports_it(
    lab: Lab, client_for: Client, sip_notifier: SipNotifier
) -> None:
    phone = await lab.phone()
    result = await run(
        lab, client_for(lab.rest_port), sip_notifier, phone, "ad_password", password="Wint3r!"
    )
    assert (result.result, result.data) == ("success", {"line": 1})
    assert phone.settings.value("reg.1.auth.password") == "Wint3r!"
    assert "Wint3r!" not in repr(result.to_wire())


async def test_capture_screen_returns_a_png(
    lab: Lab, client_for: Client, sip_notifier: SipNotifier
) -> None:
    phone = await lab.phone()
    result = await run(lab, client_for(lab.rest_port), sip_notifier, phone, "capture_screen")
    assert result.result == "success", result.reason
    assert base64.b64decode(result.data["image_png"]).startswith(PNG_SIGNATURE)


async def test_capture_screen_switched_off_says_how_to_switch_it_on(
    lab: Lab, client_for: Client, sip_notifier: SipNotifier
) -> None:
    phone = await lab.phone(
        files=phone_files("0004f2a1b2c3", up__screenCapture__enabled="0"),
    )
    result = await run(lab, client_for(lab.rest_port), sip_notifier, phone, "capture_screen")
    assert result.result == "failure"
    assert "up.screenCapture.enabled" in result.reason


async def test_check_sync_by_rest_reprovisions(
    lab: Lab, client_for: Client, sip_notifier: SipNotifier
) -> None:
    phone = await lab.phone()
    result = await run(lab, client_for(lab.rest_port), sip_notifier, phone, "check_sync")
    assert (result.result, result.data) == ("success", {"via": "rest"})
    assert phone.check_syncs == 1


async def test_check_sync_by_sip_notify_on_a_model_without_rest(
    lab: Lab, client_for: Client, sip_notifier: SipNotifier
) -> None:
    phone = await lab.phone(model="SPIP650")
    result = await run(lab, client_for(lab.rest_port), sip_notifier, phone, "check_sync")
    assert (result.result, result.data) == ("success", {"via": "sip"})
    assert phone.check_syncs == 1


async def test_check_sync_falls_back_to_sip_when_the_rest_api_is_off(
    lab: Lab, client_for: Client, sip_notifier: SipNotifier
) -> None:
    phone = await lab.phone(files=phone_files("0004f2a1b2c3", apps__restapi__enabled="0"))
    result = await run(lab, client_for(lab.rest_port), sip_notifier, phone, "check_sync")
    assert (result.result, result.data) == ("success", {"via": "sip"})


async def test_rest_task_on_a_model_without_rest_is_not_applicable(
    lab: Lab, client_for: Client, sip_notifier: SipNotifier
) -> None:
    phone = await lab.phone(model="SPIP650")
    result = await run(lab, client_for(lab.rest_port), sip_notifier, phone, "reboot")
    assert (result.result, result.reason) == ("not_applicable", NO_REST)


async def test_factory_admin_password_fails_with_4010(
    lab: Lab, client_for: Client, sip_notifier: SipNotifier
) -> None:
    files = phone_files("0004f2a1b2c3")
    files["0004f2a1b2c3-site.cfg"] = files["0004f2a1b2c3-site.cfg"].replace(
        ADMIN_PASSWORD.encode(), b"456"
    )
    phone = await lab.phone(files=files)
    client = client_for(lab.rest_port)
    result = await execute(job(lab.target(phone, password="456"), "reboot"), client, sip_notifier)
    assert result.result == "failure"
    assert result.reason.startswith("phone answered 4010 default password not allowed")
    assert phone.restarts == 0


async def test_busy_phone_is_retried_until_it_answers(
    lab: Lab, client_for: Client, sip_notifier: SipNotifier
) -> None:
    phone = await lab.phone()
    client = client_for(lab.rest_port, backoff=0.05)
    phone.set_busy(5.0)
    result = await run(lab, client, sip_notifier, phone, "dial", dest="2002")
    assert result.result == "success", result.reason
    statuses = [r.status for r in phone.rest_requests if r.path.endswith("/dial") and r.status]
    assert statuses[0] == "4001" and statuses[-1] == "2000"


async def test_concurrent_jobs_on_one_phone_never_meet_its_403(
    lab: Lab, client_for: Client, sip_notifier: SipNotifier
) -> None:
    phone = await lab.phone(rest_processing=3.0)
    client = client_for(lab.rest_port)
    results = await asyncio.gather(
        *(
            run(lab, client, sip_notifier, phone, "set_parameters", parameters={f"x.{n}": "1"})
            for n in range(6)
        )
    )
    assert [r.result for r in results] == ["success"] * 6
    assert 403 not in {r.http_status for r in phone.rest_requests}


async def test_offline_phone_is_a_failure_not_an_exception(
    lab: Lab, client_for: Client, sip_notifier: SipNotifier
) -> None:
    phone = await lab.phone()
    await phone.aclose()
    result = await run(lab, client_for(lab.rest_port), sip_notifier, phone, "reboot")
    assert result.result == "failure"
    assert result.reason.startswith("device offline: ")


@pytest.mark.parametrize(
    ("scope", "path"),
    [
        ("web", "/api/v1/mgmt/configReset/web"),
        ("local", "/api/v1/mgmt/configReset/local"),
        ("device", "/api/v1/mgmt/configReset/device"),
        ("all", "/api/v1/mgmt/configReset"),
        ("factory", "/api/v1/mgmt/factoryReset"),
    ],
)
async def test_each_reset_option_calls_its_own_phone_endpoint(
    lab: Lab, client_for: Client, sip_notifier: SipNotifier, scope: str, path: str
) -> None:
    phone = await lab.phone()
    result = await run(lab, client_for(lab.rest_port), sip_notifier, phone, "reset", scope=scope)
    assert result.result == "success", result.reason
    assert [r.path for r in phone.rest_requests if r.status == "2000"][-1] == path
