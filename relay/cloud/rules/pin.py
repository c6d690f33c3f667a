"""The tenant's relay-registration PIN (cloud.md "Tenant, relays and PIN").

After a reset the old and the new PIN both work for 24 hours, and another
reset is refused for 24 hours. Pure: `now` is an argument, the caller draws
the random digits.
"""

from __future__ import annotations

import datetime as dt
import hmac
from dataclasses import dataclass, replace

from relay.cloud.rules.errors import RuleError

PIN_DIGITS = 8
GRACE_SECONDS = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class PinState:
    pin: str
    previous: str | None = None
    previous_valid_until: float | None = None
    last_reset: float | None = None


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def pin_matches(state: PinState, candidate: str, now: float) -> bool:
    """The current PIN always works; the previous one until its 24 hours are over.
    Both are compared in constant time, so timing tells nothing about either."""
    current = _same(state.pin, candidate)
    previous = (
        state.previous is not None
        and state.previous_valid_until is not None
        and _same(state.previous, candidate)
        and now < state.previous_valid_until
    )
    return current or previous


def next_reset_allowed(state: PinState) -> float | None:
    """When the next reset is allowed (None: now)."""
    return None if state.last_reset is None else state.last_reset + GRACE_SECONDS


def reset(state: PinState, new_pin: str, now: float) -> PinState:
    """The state after a reset, or a 409 that says when a reset is allowed again."""
    allowed = next_reset_allowed(state)
    if allowed is not None and now < allowed:
        when = dt.datetime.fromtimestamp(allowed, dt.UTC).isoformat(timespec="seconds")
        raise RuleError(
            "pin_reset_too_soon",
            f"the PIN was reset less than 24 hours ago; the next reset is allowed at {when}",
            status=409,
        )
    return replace(
        state,
        pin=new_pin,
        previous=state.pin,
        previous_valid_until=now + GRACE_SECONDS,
        last_reset=now,
    )
