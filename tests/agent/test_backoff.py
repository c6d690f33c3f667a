"""Reconnect backoff: grows exponentially, jittered, capped, reset by a success."""

from __future__ import annotations

import random

from management_agent.backoff import Backoff


def test_delays_grow_until_the_cap() -> None:
    backoff = Backoff(base=1.0, cap=60.0, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(12)]
    ceilings = [min(60.0, 2.0**i) for i in range(12)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))


def test_delays_are_jittered() -> None:
    runs = {Backoff(base=1.0, cap=60.0, rng=random.Random(seed)).next_delay() for seed in range(20)}
    assert len(runs) > 1


def test_a_success_starts_again_from_the_base() -> None:
    backoff = Backoff(base=2.0, cap=60.0, rng=random.Random(3))
    for _ in range(8):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() <= 2.0


def test_many_failures_never_overflow() -> None:
    backoff = Backoff(base=1.0, cap=300.0, rng=random.Random(4))
    for _ in range(10_000):
        assert backoff.next_delay() <= 300.0
