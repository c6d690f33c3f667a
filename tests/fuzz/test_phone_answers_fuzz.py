"""What phones answer never crashes the agent: every mapper of a phone's REST answer
returns a value or raises PhoneError, whatever JSON (or bytes) arrives."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from management_agent.actions import running_config
from management_agent.monitoring import call_status, device_info, line_info
from management_agent.phone_client import PhoneError, rest_data


def _encoded(value: object) -> bytes:
    return json.dumps(value).encode()


FUZZ = settings(max_examples=300, deadline=None)

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(
            st.sampled_from(
                [
                    "Status",
                    "data",
                    "LineNumber",
                    "RegistrationStatus",
                    "SIPAddress",
                    "CallState",
                    "RemotePartyName",
                    "DurationInSeconds",
                    "UpTime",
                    "LastRestart",
                    "Firmware",
                    "Value",
                    "Source",
                ]
            )
            | st.text(max_size=8),
            inner,
            max_size=6,
        )
    ),
    max_leaves=30,
)


def _mapped(fn: Any, data: object) -> None:
    with contextlib.suppress(PhoneError):
        fn(data)


@FUZZ
@given(json_values)
def test_device_info_maps_or_raises_phone_error(data: object) -> None:
    _mapped(device_info, data)


@FUZZ
@given(json_values)
def test_line_info_maps_or_raises_phone_error(data: object) -> None:
    _mapped(line_info, data)


@FUZZ
@given(json_values)
def test_call_status_maps_or_raises_phone_error(data: object) -> None:
    _mapped(call_status, data)


@FUZZ
@given(json_values)
def test_running_config_maps_or_raises_phone_error(data: object) -> None:
    _mapped(running_config, data)


@FUZZ
@given(
    st.integers(100, 599),
    st.binary(max_size=512) | json_values.map(_encoded),
)
def test_any_answer_body_is_data_or_phone_error(http: int, payload: bytes) -> None:
    with contextlib.suppress(PhoneError):
        rest_data(http, payload)


@pytest.mark.parametrize("depth", [10_000, 200_000])
def test_deeply_nested_json_is_a_phone_error_not_a_crash(depth: int) -> None:
    with pytest.raises(PhoneError):
        rest_data(200, b"[" * depth + b"]" * depth)
