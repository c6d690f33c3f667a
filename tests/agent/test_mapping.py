"""Phone answers -> agent values, without sockets: the REST envelope and each endpoint."""

from __future__ import annotations

import json

import pytest

from management_agent.actions import running_config
from management_agent.monitoring import (
    DeviceInfo,
    call_status,
    device_info,
    last_restart,
    line_info,
)
from management_agent.phone_client import PhoneError, rest_data
from relay.sync.messages import Call, Line


def _body(document: object) -> bytes:
    return json.dumps(document).encode()


def test_rest_data_returns_the_data_of_a_2000_answer() -> None:
    assert rest_data(200, _body({"Status": "2000", "data": {"a": "1"}})) == {"a": "1"}


def test_rest_data_without_data_is_none() -> None:
    assert rest_data(200, _body({"Status": "2000"})) is None


def test_rest_data_names_the_4010_meaning() -> None:
    with pytest.raises(PhoneError) as caught:
        rest_data(200, _body({"Status": "4010"}))
    assert caught.value.status == "4010"
    assert caught.value.reason == (
        "phone answered 4010 default password not allowed: "
        "the phone still has its factory admin password"
    )


def test_rest_data_status_wins_over_the_http_status() -> None:
    with pytest.raises(PhoneError) as caught:
        rest_data(404, _body({"Status": "4004"}))
    assert (caught.value.status, caught.value.http) == ("4004", 404)
    assert "4004 not supported" in caught.value.reason


def test_rest_data_accepts_a_numeric_status() -> None:
    assert rest_data(200, _body({"Status": 2000, "data": []})) == []


@pytest.mark.parametrize("payload", [b"<html>", b"[1, 2]", b'{"data": 1}', b"\xff\xfe"])
def test_rest_data_refuses_answers_that_are_not_the_envelope(payload: bytes) -> None:
    with pytest.raises(PhoneError, match="bad answer from the phone"):
        rest_data(200, payload)


def test_rest_data_404_without_status_hints_at_the_disabled_api() -> None:
    with pytest.raises(PhoneError, match=r"apps\.restapi\.enabled") as caught:
        rest_data(404, b"REST API disabled\n")
    assert caught.value.http == 404


def test_rest_data_401_is_an_authentication_failure() -> None:
    with pytest.raises(PhoneError, match="authentication failed"):
        rest_data(401, b"")


def test_phone_error_knows_offline_from_answered() -> None:
    assert PhoneError("device offline: no answer within 10 s").offline
    assert not PhoneError("phone answered 4001 device busy", status="4001").offline


SIM_INFO = {
    "FirmwareRelease": "5.9.7.4477",
    "UpTime": "734",
    "UpTimeSinceLastReboot": "0 Day 0:12:14",
    "LastRestart": "2024-05-01T12:00:00Z",
}


def test_device_info_reads_firmware_uptime_and_last_restart() -> None:
    info = device_info(SIM_INFO)
    assert info == DeviceInfo(firmware="5.9.7.4477", uptime=734.0, last_restart=1714564800.0)


def test_device_info_falls_back_to_the_days_clock() -> None:
    info = device_info({"Firmware": "6.4.0", "UpTimeSinceLastReboot": "1 Day 20:40:36"})
    assert info.uptime == 86400 + 20 * 3600 + 40 * 60 + 36
    assert info.firmware == "6.4.0"
    assert info.last_restart is None


@pytest.mark.parametrize(
    "data",
    [
        [],
        {"UpTime": "-5"},
        {"UpTime": "soon"},
        {"UpTime": True},
        {"UpTimeSinceLastReboot": "yesterday"},
        {"LastRestart": "not a time"},
        {"FirmwareRelease": "x" * 2000},
        {"FirmwareRelease": {"nested": "1"}},
    ],
)
def test_device_info_refuses_malformed_answers(data: object) -> None:
    with pytest.raises(PhoneError, match="bad answer from the phone"):
        device_info(data)


def test_last_restart_prefers_a_plausible_phone_value() -> None:
    info = DeviceInfo(firmware="", uptime=100.0, last_restart=1714564800.0)
    assert last_restart(info, now=1714600000.0) == 1714564800.0


@pytest.mark.parametrize("phone_value", [86400.0, 1714600000.0 + 3600])
def test_last_restart_ignores_an_unset_or_future_phone_clock(phone_value: float) -> None:
    info = DeviceInfo(firmware="", uptime=100.0, last_restart=phone_value)
    assert last_restart(info, now=1714600000.0) == 1714600000.0 - 100.0


def test_last_restart_is_unknown_without_uptime_or_phone_value() -> None:
    assert last_restart(DeviceInfo(firmware="", uptime=None, last_restart=None), 5.0) is None


def test_line_info_maps_registration_case_insensitively() -> None:
    lines = line_info(
        [
            {
                "LineNumber": "1",
                "RegistrationStatus": "Registered",
                "SIPAddress": "1001@pbx",
                "UserID": "1001",
                "ProxyAddress": "pbx",
            },
            {"LineNumber": "2", "RegistrationStatus": "unregistered"},
        ]
    )
    assert lines == (
        Line(1, "registered", "1001@pbx", "1001", "pbx"),
        Line(2, "unregistered"),
    )


def test_line_info_takes_one_object_as_one_line() -> None:
    assert line_info({"LineNumber": "3", "RegistrationStatus": "registered"}) == (
        Line(3, "registered"),
    )


@pytest.mark.parametrize(
    "data",
    [
        "lines",
        [{"LineNumber": "0"}],
        [{"LineNumber": "x"}],
        [{"RegistrationStatus": "registered"}],
        [{"LineNumber": str(n)} for n in range(1, 66)],
        ["not an object"],
    ],
)
def test_line_info_refuses_malformed_answers(data: object) -> None:
    with pytest.raises(PhoneError, match="bad answer from the phone"):
        line_info(data)


def test_call_status_maps_state_party_and_duration() -> None:
    calls = call_status(
        [
            {
                "CallState": "Connected",
                "RemotePartyName": "Alice",
                "RemotePartyNumber": "alice@pbx",
                "DurationInSeconds": "42",
            }
        ]
    )
    assert calls == (Call("Connected", "Alice", "alice@pbx", 42.0),)


@pytest.mark.parametrize("data", [None, [], ""])
def test_call_status_without_calls_is_empty(data: object) -> None:
    assert call_status(data) == ()


@pytest.mark.parametrize(
    "data",
    [
        [{"RemotePartyName": "no state"}],
        [{"CallState": "Connected"}] * 17,
        [{"CallState": "Connected", "DurationInSeconds": "long"}],
        7,
    ],
)
def test_call_status_refuses_malformed_answers(data: object) -> None:
    with pytest.raises(PhoneError, match="bad answer from the phone"):
        call_status(data)


def test_running_config_reads_the_config_get_shape() -> None:
    data = {"voice.volume": {"Value": "5", "Source": "config_files"}}
    assert running_config(data) == {"voice.volume": ("5", "config_files")}


def test_running_config_reads_a_list_of_entries() -> None:
    data = [{"Name": "voice.volume", "Value": "5", "Source": "local"}]
    assert running_config(data) == {"voice.volume": ("5", "local")}


@pytest.mark.parametrize(
    "data", ["x", {"a": "not an object"}, {"a": {"Value": ["x"]}}, [{"Value": "1"}]]
)
def test_running_config_refuses_malformed_answers(data: object) -> None:
    with pytest.raises(PhoneError, match="bad answer from the phone"):
        running_config(data)
