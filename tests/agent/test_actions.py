"""execute() against a scripted phone: partial chunks, wrong answers, no REST."""

from __future__ import annotations

import json
from collections.abc import Callable

from aiohttp import web

from management_agent.actions import execute
from management_agent.phone_client import PhoneClient
from management_agent.sip_notify import SipNotifier

from .conftest import FakePhone, rest_reply, target
from .test_actions_sim import job

Client = Callable[..., PhoneClient]


def _sip() -> SipNotifier:
    return SipNotifier(local_host="127.0.0.1", sip_port=9, t1=0.01)


async def test_a_failed_later_chunk_says_which_and_how_many_were_applied(
    fake_phone: FakePhone, client_for: Client
) -> None:
    async def second_chunk_too_big(request: web.Request) -> web.Response:
        names = json.loads(await request.read())["data"]
        return rest_reply(status="4009" if "p.25" in names else "2000")

    fake_phone.handler = second_chunk_too_big
    values = {f"p.{n}": "1" for n in range(45)}
    result = await execute(
        job(target(), "set_parameters", parameters=values), client_for(fake_phone.port), _sip()
    )
    assert result.result == "failure"
    assert result.reason == (
        "chunk 2 of 3 failed (20 of 45 parameters applied): "
        "phone answered 4009 input size limit exceeded"
    )
    assert result.data == {"applied": 20, "failed_chunk": 2}
    assert len(fake_phone.seen) == 2


async def test_a_screen_capture_that_is_not_a_png_is_refused(
    fake_phone: FakePhone, client_for: Client
) -> None:
    async def jpeg(_request: web.Request) -> web.Response:
        return web.Response(body=b"\xff\xd8\xff\xe0 not a png")

    fake_phone.handler = jpeg
    result = await execute(job(target(), "capture_screen"), client_for(fake_phone.port), _sip())
    assert (result.result, result.reason) == (
        "failure",
        "bad answer from the phone: the screen capture is not a PNG",
    )


async def test_dial_without_a_call_in_call_status_fails(
    fake_phone: FakePhone, client_for: Client
) -> None:
    async def no_call(request: web.Request) -> web.Response:
        return rest_reply([] if request.method == "GET" else {"CallHandle": "0x1"})

    fake_phone.handler = no_call
    result = await execute(job(target(), "dial", dest="2002"), client_for(fake_phone.port), _sip())
    assert (result.result, result.reason) == (
        "failure",
        "the phone accepted the dial but shows no call",
    )
    assert fake_phone.bodies[0] == b'{"data": {"Dest": "2002", "Line": "1", "Type": "SIP"}}'


async def test_reset_scopes_use_their_paths(fake_phone: FakePhone, client_for: Client) -> None:
    client = client_for(fake_phone.port)
    for scope in ("web", "local", "device", "all", "factory"):
        result = await execute(job(target(), "reset", scope=scope), client, _sip())
        assert result.result == "success"
    assert [path for _m, path, _a in fake_phone.seen] == [
        "/api/v1/mgmt/configReset/web",
        "/api/v1/mgmt/configReset/local",
        "/api/v1/mgmt/configReset/device",
        "/api/v1/mgmt/configReset",
        "/api/v1/mgmt/factoryReset",
    ]


async def test_check_sync_with_reboot_on_rest_is_a_safe_reboot(
    fake_phone: FakePhone, client_for: Client
) -> None:
    result = await execute(
        job(target(), "check_sync", reboot=True), client_for(fake_phone.port), _sip()
    )
    assert result.result == "success"
    assert fake_phone.seen[0][:2] == ("POST", "/api/v1/mgmt/safeReboot")


async def test_a_bad_answer_becomes_a_failure_result(
    fake_phone: FakePhone, client_for: Client
) -> None:
    async def garbage(_request: web.Request) -> web.Response:
        return rest_reply({"voice.volume": "not an entry"})

    fake_phone.handler = garbage
    result = await execute(
        job(target(), "get_config", scope="all"), client_for(fake_phone.port), _sip()
    )
    assert result.result == "failure"
    assert result.reason.startswith("bad answer from the phone")
