"""poll() and poll_all() against simulated phones: lines, calls, uptime, offline, bounds."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiohttp import web

from management_agent.monitoring import poll, poll_all
from management_agent.phone_client import PhoneClient
from relay.sync.messages import DeviceStatus

from .conftest import FakePhone, Lab, phone_files, rest_reply, target, until

Client = Callable[..., PhoneClient]
NOW = 1.9e9


async def test_poll_reports_registration_calls_uptime_and_firmware(
    lab: Lab, client_for: Client
) -> None:
    phone = await lab.phone()
    client = client_for(lab.rest_port)
    await client.call(lab.target(phone), "POST", "/api/v1/callctrl/dial", {"Dest": "2002@pbx"})
    status = await poll(lab.target(phone), client, NOW)
    assert status is not None and status.online
    assert [(line.number, line.registration) for line in status.lines] == [(1, "registered")]
    assert status.sip_registration == "registered"
    assert [c.remote_number for c in status.calls] == ["2002@pbx"]
    assert status.calls[0].state in ("RingBack", "Connected")
    assert status.call_status == "in_call"
    assert status.uptime is not None and status.uptime >= 0
    assert status.last_restart is not None and status.last_restart <= NOW
    assert status.firmware == "5.9.7.4477"
    DeviceStatus.from_wire(status.to_wire())


async def test_poll_sees_a_line_that_fails_to_register(lab: Lab, client_for: Client) -> None:
    phone = await lab.phone(
        files=phone_files("0004f2a1b2c3", reg__2__address="1002"),
    )
    phone.fail_line(2)
    status = await poll(lab.target(phone), client_for(lab.rest_port), NOW)
    assert status is not None
    assert status.sip_registration == "partial"


async def test_unreachable_phone_is_offline(lab: Lab, client_for: Client) -> None:
    status = await poll(target("127.30.0.99"), client_for(lab.rest_port, timeout=1.0), NOW)
    assert status is not None
    assert (status.online, status.checked) == (False, NOW)
    assert status.reason.startswith("device offline: ")


async def test_phone_that_answers_with_an_error_is_online_with_the_reason(
    lab: Lab, client_for: Client
) -> None:
    phone = await lab.phone()
    status = await poll(lab.target(phone, password="wrong"), client_for(lab.rest_port), NOW)
    assert status is not None and status.online
    assert status.reason.startswith("authentication failed")
    assert status.sip_registration == "unknown"


async def test_phone_without_rest_is_not_polled(lab: Lab, client_for: Client) -> None:
    phone = await lab.phone(model="SPIP650")
    assert await poll(lab.target(phone), client_for(lab.rest_port), NOW) is None


async def test_poll_all_reports_every_phone_within_the_concurrency_bound(
    lab: Lab, client_for: Client
) -> None:
    phones = await asyncio.gather(
        *(
            lab.phone(mac=f"0004f2{n:06x}", ip=f"127.31.0.{n}", rest_processing=2.0)
            for n in range(1, 51)
        )
    )
    client = client_for(lab.rest_port, concurrency=8)
    seen: list[DeviceStatus] = []

    async def on_status(status: DeviceStatus) -> None:
        seen.append(status)

    await poll_all([lab.target(p) for p in phones], client, NOW, on_status)
    assert sorted(s.device for s in seen) == sorted(p.mac for p in phones)
    assert all(s.online for s in seen)
    assert client.peak_in_flight == 8


async def test_poll_all_can_be_cancelled_mid_request(
    fake_phone: FakePhone, client_for: Client
) -> None:
    release = asyncio.Event()

    async def hang(_request: web.Request) -> web.Response:
        await release.wait()
        return rest_reply({})

    fake_phone.handler = hang
    client = client_for(fake_phone.port)

    async def on_status(_status: DeviceStatus) -> None:
        raise AssertionError("cancelled before any answer")

    task = asyncio.create_task(poll_all([target()] * 3, client, NOW, on_status))
    await until(lambda: fake_phone.in_progress == 1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert client.in_flight == 0
    release.set()
    await until(lambda: fake_phone.in_progress == 0)


async def test_an_on_status_error_stops_the_poll_and_is_raised(
    lab: Lab, client_for: Client
) -> None:
    phone = await lab.phone()

    async def on_status(_status: DeviceStatus) -> None:
        raise RuntimeError("outbox full")

    with pytest.raises(RuntimeError, match="outbox full"):
        await poll_all([lab.target(phone)], client_for(lab.rest_port), NOW, on_status)
