"""The registration PIN's reset rules (cloud.md "Tenant, relays and PIN")."""

from __future__ import annotations

import pytest

from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.pin import GRACE_SECONDS, PinState, next_reset_allowed, pin_matches, reset

T0 = 1_800_000_000.0


def test_the_current_pin_matches_and_another_does_not() -> None:
    state = PinState("12345678")
    assert pin_matches(state, "12345678", T0)
    assert not pin_matches(state, "12345679", T0)


def test_after_a_reset_both_pins_match_for_24_hours() -> None:
    state = reset(PinState("11111111"), "22222222", T0)
    assert pin_matches(state, "11111111", T0 + GRACE_SECONDS - 1)
    assert pin_matches(state, "22222222", T0 + GRACE_SECONDS - 1)
    assert not pin_matches(state, "11111111", T0 + GRACE_SECONDS)
    assert pin_matches(state, "22222222", T0 + GRACE_SECONDS)


def test_a_reset_within_24_hours_of_the_last_is_refused_with_409() -> None:
    state = reset(PinState("11111111"), "22222222", T0)
    with pytest.raises(RuleError) as refused:
        reset(state, "33333333", T0 + GRACE_SECONDS - 1)
    assert refused.value.status == 409
    assert "2027-01-16T08:00:00+00:00" in refused.value.message


def test_a_reset_is_allowed_again_after_24_hours() -> None:
    state = reset(PinState("11111111"), "22222222", T0)
    assert next_reset_allowed(state) == T0 + GRACE_SECONDS
    again = reset(state, "33333333", T0 + GRACE_SECONDS)
    assert again.previous == "22222222"
    assert not pin_matches(again, "11111111", T0 + GRACE_SECONDS)


def test_a_pin_never_reset_may_be_reset_at_once() -> None:
    assert next_reset_allowed(PinState("11111111")) is None
