"""The pure rules of scheduled tasks (cloud.md "Scheduled tasks")."""

from __future__ import annotations

import base64

import pytest

from relay.cloud.rules.assignment import RelayPlace
from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.tasks import (
    MASK,
    NO_ADDRESS,
    PNG_SIGNATURE,
    VIDEO_BAR,
    DeviceFacts,
    Targets,
    check_options,
    check_targets,
    check_task_name,
    decide,
    decode_screen,
    masked_options,
    parse_when,
    resolve_targets,
    tally,
    when_out,
)
from relay.proto.polycom.models import has_rest_api, is_video_bar

NOW = 1_800_000_000.0
RELAY = RelayPlace("r1", "Internet", active=True)


def phone(**changes: object) -> DeviceFacts:
    base: dict[str, object] = {
        "id": "0004f2000001",
        "mac": "0004f2000001",
        "model": "VVX450",
        "type": "VVX",
        "firmware": "6.4.3.1234",
        "private_ip": "10.0.0.5",
        "public_ip": None,
        "site": "Internet",
    }
    base.update(changes)
    return DeviceFacts(**base)  # type: ignore[arg-type]


def test_when_now_and_skip_are_due_at_once() -> None:
    assert parse_when("now", NOW).mode == "now"
    assert parse_when(None, NOW).run_at == NOW
    assert parse_when("skip", NOW).mode == "skip"


def test_when_time_is_kept_as_utc() -> None:
    when = parse_when("2027-01-15T10:00:00+02:00", NOW)
    assert when.mode == "at"
    assert when_out(when.mode, when.run_at) == "2027-01-15T08:00:00Z"


def test_when_without_time_zone_is_refused() -> None:
    with pytest.raises(RuleError, match="time zone") as exc:
        parse_when("2027-01-15T10:00:00", NOW)
    assert exc.value.field == "when"


def test_when_that_is_not_a_time_is_refused() -> None:
    with pytest.raises(RuleError, match="ISO 8601"):
        parse_when("tomorrow", NOW)


def test_targets_must_name_something() -> None:
    with pytest.raises(RuleError) as exc:
        check_targets({"devices": [], "groups": []})
    assert exc.value.code == "no_targets"


def test_targets_refuse_unknown_kinds() -> None:
    with pytest.raises(RuleError, match=r"targets\.phones"):
        check_targets({"phones": ["x"]})


def test_target_macs_are_lower_cased_and_deduplicated() -> None:
    targets = check_targets({"devices": ["0004F2000001", "0004f2000001"], "sites": ["HQ"]})
    assert targets == Targets(("0004f2000001",), (), ("HQ",))


def test_unnamed_task_is_named_after_its_type() -> None:
    assert check_task_name(None, "check_sync") == "Apply provisioning changes"
    assert check_task_name("Night reboot", "reboot") == "Night reboot"


def test_bad_options_are_refused_with_the_agent_link_message() -> None:
    with pytest.raises(RuleError, match=r"options\.scope must be one of") as exc:
        check_options("reset", {"scope": "everything"})
    assert exc.value.status == 422 and exc.value.field == "options"


def test_ad_password_is_masked_when_shown() -> None:
    options = check_options("ad_password", {"password": "s3cret"})
    assert masked_options("ad_password", options) == {"password": MASK, "line": 1}


def test_targets_resolve_to_a_union_without_repeats() -> None:
    targets = Targets(("a",), ("g",), ("s",))
    ids = resolve_targets(targets, ["a"], {"g": ["b", "a"]}, {"s": ["c", "b"]})
    assert ids == ["a", "b", "c"]


def test_a_phone_with_rest_and_an_address_gets_a_job_on_its_relay() -> None:
    assert decide("reboot", phone(), [RELAY], set()).relay_id == "r1"


def test_video_bar_cannot_take_check_sync() -> None:
    bar = phone(model="StudioX50", type="Polycom Studio")
    decision = decide("check_sync", bar, [RELAY], set())
    assert decision.relay_id is None and decision.reason == VIDEO_BAR


def test_device_control_needs_the_rest_api() -> None:
    old = phone(model="SPIP650", firmware="4.0.1")
    decision = decide("reboot", old, [RELAY], set())
    assert decision.reason == "no REST API on this device (SPIP650, 4.0.1)"


def test_check_sync_needs_no_rest_api() -> None:
    assert decide("check_sync", phone(model="SPIP650"), [RELAY], set()).relay_id == "r1"


def test_a_device_never_seen_has_no_address() -> None:
    decision = decide("reboot", phone(private_ip=None), [RELAY], set())
    assert decision.reason == NO_ADDRESS


def test_a_site_specific_site_without_a_relay_is_not_served() -> None:
    decision = decide("reboot", phone(site="HQ"), [RELAY], {"HQ"})
    assert decision.reason == "no relay serves site HQ"


def test_tally_counts_open_jobs_as_in_progress() -> None:
    counts = tally(["success", None, "failure", "not_applicable", None])
    assert counts.to_wire() == {
        "total": 5,
        "success": 1,
        "failure": 1,
        "in_progress": 2,
        "not_applicable": 1,
    }


def test_screen_capture_is_decoded() -> None:
    image = PNG_SIGNATURE + b"rest"
    assert decode_screen({"image_png": base64.b64encode(image).decode()}) == image


def test_screen_capture_must_be_a_png() -> None:
    with pytest.raises(ValueError, match="not a PNG"):
        decode_screen({"image_png": base64.b64encode(b"GIF89a").decode()})


def test_screen_capture_over_4_mib_is_refused() -> None:
    with pytest.raises(ValueError, match="larger than"):
        decode_screen({"image_png": "A" * (6 * 1024 * 1024)})


@pytest.mark.parametrize(
    ("model", "firmware", "expected"),
    [
        ("VVX450", "5.4.0.1", True),
        ("VVX410", "5.3.9", False),
        ("VVX410", None, True),
        ("PolycomTrio8800", "5.8.0", True),
        ("Trio8500", "5.7.2", False),
        ("SSIP7000", "4.0.15", False),
        ("unknown", "9.9", False),
    ],
)
def test_rest_api_by_model_and_firmware(model: str, firmware: str | None, expected: bool) -> None:
    assert has_rest_api(model, firmware) is expected


def test_video_bars_are_known_by_model_or_type() -> None:
    assert is_video_bar("G7500", None)
    assert is_video_bar("Poly Studio X30", None)
    assert is_video_bar("X", "video conferencing")
    assert not is_video_bar("VVX450", "VVX")
