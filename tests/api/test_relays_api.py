"""Relays, the registration PIN and link status (cloud.md "Tenant, relays and PIN";
docs/agent-link.md "Authentication", "Heartbeat")."""

from __future__ import annotations

import datetime as dt

from tests.api.conftest import (
    Api,
    Clock,
    error_of,
    heartbeat_body,
    register_relay,
    registration,
    relay_auth,
)

DAY = 24 * 3600.0


def _day(clock: Clock) -> dict[str, str]:
    return {"date": dt.datetime.fromtimestamp(clock.now, dt.UTC).date().isoformat()}


async def test_tenant_pin_is_eight_digits(api: Api) -> None:
    pin = (await api.get("/tenant/pin")).body
    assert len(pin["pin"]) == 8 and pin["pin"].isdigit()
    assert pin["previous_pin_valid_until"] is None
    assert pin["next_reset_allowed"] is None


async def test_register_with_the_right_pin_answers_201_with_a_credential(api: Api) -> None:
    reply = await api.post("/agent/register", await registration(api))
    assert reply.status == 201
    assert set(reply.body) == {"relay_id", "secret", "heartbeat_seconds"}
    assert reply.body["heartbeat_seconds"] == 120.0
    assert len(reply.body["secret"]) >= 40


async def test_wrong_pin_and_wrong_tenant_get_one_and_the_same_401(api: Api) -> None:
    good = await registration(api)
    wrong_pin = await api.post("/agent/register", {**good, "pin": "00000000"})
    wrong_tenant = await api.post("/agent/register", {**good, "tenant": "nope"})
    assert wrong_pin.status == wrong_tenant.status == 401
    assert error_of(wrong_pin) == error_of(wrong_tenant)


async def test_every_registration_attempt_is_audited_without_pin_or_secret(api: Api) -> None:
    good = await registration(api)
    await api.post("/agent/register", {**good, "pin": "00000000"})
    credential = (await api.post("/agent/register", good)).body
    entries = (await api.get("/activity")).body["entries"]
    attempts = [e for e in entries if e["op"] == "register"]
    assert [e["detail"]["outcome"] for e in attempts] == ["refused", "registered"]
    assert attempts[1]["detail"]["relay"] == credential["relay_id"]
    assert good["pin"] not in str(entries) and credential["secret"] not in str(entries)


async def test_wrong_pins_lock_the_source_out_with_a_growing_retry_after(
    clocked_api: Api, clock: Clock
) -> None:
    bad = {**(await registration(clocked_api)), "pin": "00000000"}
    for _ in range(5):
        assert (await clocked_api.post("/agent/register", bad)).status == 401
    first = await clocked_api.post("/agent/register", bad)
    assert first.status == 429
    clock.advance(float(first.headers["Retry-After"]))
    assert (await clocked_api.post("/agent/register", bad)).status == 401
    second = await clocked_api.post("/agent/register", bad)
    assert second.status == 429
    assert int(second.headers["Retry-After"]) > int(first.headers["Retry-After"])


async def test_a_locked_out_source_is_refused_even_with_the_right_pin(
    clocked_api: Api, clock: Clock
) -> None:
    good = await registration(clocked_api)
    for _ in range(5):
        await clocked_api.post("/agent/register", {**good, "pin": "00000000"})
    assert (await clocked_api.post("/agent/register", good)).status == 429
    clock.advance(60)
    assert (await clocked_api.post("/agent/register", good)).status == 201


async def test_after_a_pin_reset_the_old_and_the_new_pin_both_register(
    clocked_api: Api,
) -> None:
    old = await registration(clocked_api)
    reset = await clocked_api.post("/tenant/pin/reset")
    assert reset.status == 200
    assert reset.body["pin"] != old["pin"] and reset.body["previous_pin_valid_until"]
    assert (await clocked_api.post("/agent/register", old)).status == 201
    new = {**old, "pin": reset.body["pin"]}
    assert (await clocked_api.post("/agent/register", new)).status == 201


async def test_a_second_pin_reset_within_24_hours_is_409_saying_when(
    clocked_api: Api, clock: Clock
) -> None:
    first = (await clocked_api.post("/tenant/pin/reset")).body
    clock.advance(DAY - 60)
    refused = await clocked_api.post("/tenant/pin/reset")
    assert refused.status == 409
    assert first["next_reset_allowed"] in error_of(refused)["message"]
    clock.advance(60)
    assert (await clocked_api.post("/tenant/pin/reset")).status == 200


async def test_the_old_pin_stops_working_24_hours_after_the_reset(
    clocked_api: Api, clock: Clock
) -> None:
    old = await registration(clocked_api)
    await clocked_api.post("/tenant/pin/reset")
    clock.advance(DAY)
    assert (await clocked_api.post("/agent/register", old)).status == 401
    assert (await clocked_api.get("/tenant/pin")).body["previous_pin_valid_until"] is None


async def test_pin_reset_is_in_the_activity_log(clocked_api: Api, clock: Clock) -> None:
    await clocked_api.post("/tenant/pin/reset")
    entries = (await clocked_api.get("/activity", params=_day(clock))).body["entries"]
    assert any(e["op"] == "reset" and e["target"] == "tenant/pin" for e in entries)


async def test_heartbeat_sets_the_site_by_address_and_shows_the_relay_active(api: Api) -> None:
    site = {
        "name": "HQ",
        "public_subnets": [{"cidr": "127.0.0.0/8", "private_subnets": ["10.1.0.0/16"]}],
    }
    assert (await api.post("/sites", site)).status == 201
    credential = await register_relay(api)
    beat = await api.post(
        "/agent/heartbeat", heartbeat_body("10.1.0.5"), auth=relay_auth(credential)
    )
    assert beat.status == 200
    assert beat.body == {
        "relay_id": credential.relay_id,
        "site": "HQ",
        "heartbeat_seconds": 120.0,
        "monitor_seconds": 7200.0,
    }
    [relay] = (await api.get("/relays")).body
    assert relay["id"] == credential.relay_id and relay["name"] == "relay-1"
    assert relay["site"] == "HQ" and relay["status"] == "active"
    assert relay["addresses"] == ["10.1.0.5"] and relay["version"] == "1.0"
    assert relay["download_agent_status"] == "absent"
    assert relay["last_heartbeat"].endswith("+00:00") and relay["registered"]


async def test_a_relay_is_inactive_after_ten_minutes_without_a_heartbeat(
    clocked_api: Api, clock: Clock
) -> None:
    credential = await register_relay(clocked_api)
    [relay] = (await clocked_api.get("/relays")).body
    assert relay["status"] == "inactive" and relay["last_heartbeat"] is None
    await clocked_api.post("/agent/heartbeat", heartbeat_body(), auth=relay_auth(credential))
    clock.advance(599)
    assert (await clocked_api.get("/relays")).body[0]["status"] == "active"
    clock.advance(1)
    assert (await clocked_api.get("/relays")).body[0]["status"] == "inactive"


async def test_the_download_agent_status_follows_running_heartbeats_separately(
    clocked_api: Api, clock: Clock
) -> None:
    auth = relay_auth(await register_relay(clocked_api))
    await clocked_api.post("/agent/heartbeat", heartbeat_body(download_agent="running"), auth=auth)
    assert (await clocked_api.get("/relays")).body[0]["download_agent_status"] == "active"
    clock.advance(300)
    await clocked_api.post("/agent/heartbeat", heartbeat_body(download_agent="stopped"), auth=auth)
    clock.advance(301)
    [relay] = (await clocked_api.get("/relays")).body
    assert relay["status"] == "active" and relay["download_agent_status"] == "inactive"


async def test_a_deleted_relay_can_no_longer_authenticate(api: Api) -> None:
    credential = await register_relay(api)
    assert (await api.delete(f"/relays/{credential.relay_id}")).status == 204
    reply = await api.post("/agent/heartbeat", heartbeat_body(), auth=relay_auth(credential))
    assert reply.status == 401
    assert "run relay agent register" in error_of(reply)["message"]
    assert (await api.get("/relays")).body == []


async def test_deleting_an_unknown_relay_is_404(api: Api) -> None:
    assert (await api.delete("/relays/rnope")).status == 404


async def test_a_readonly_token_can_neither_see_nor_reset_the_pin(api: Api) -> None:
    viewer = (await api.post("/tokens", {"name": "viewer", "role": "readonly"})).body["token"]
    assert (await api.get("/tenant/pin", token=viewer)).status == 403
    assert (await api.post("/tenant/pin/reset", token=viewer)).status == 403
