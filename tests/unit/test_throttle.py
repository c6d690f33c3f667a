"""Failed provisioning logins are throttled per source address."""

from __future__ import annotations

from relay.cloud.rules.throttle import FREE_FAILURES, MAX_DELAY, MAX_SOURCES, LoginThrottle


def test_first_failures_are_free() -> None:
    throttle = LoginThrottle()
    delays = [throttle.failure("192.0.2.1", 100.0) for _ in range(FREE_FAILURES - 1)]
    assert delays == [0.0] * (FREE_FAILURES - 1)
    assert throttle.retry_after("192.0.2.1", 100.0) == 0.0


def test_delay_doubles_after_the_free_failures() -> None:
    throttle = LoginThrottle()
    for _ in range(FREE_FAILURES - 1):
        throttle.failure("192.0.2.1", 100.0)
    assert throttle.failure("192.0.2.1", 100.0) == 2.0
    assert throttle.failure("192.0.2.1", 100.0) == 4.0
    assert throttle.retry_after("192.0.2.1", 101.0) == 3.0


def test_delay_is_capped() -> None:
    throttle = LoginThrottle()
    delays = [throttle.failure("192.0.2.1", 0.0) for _ in range(40)]
    assert max(delays) == MAX_DELAY


def test_other_sources_are_not_affected() -> None:
    throttle = LoginThrottle()
    for _ in range(10):
        throttle.failure("192.0.2.1", 0.0)
    assert throttle.retry_after("198.51.100.1", 0.0) == 0.0


def test_success_clears_the_source() -> None:
    throttle = LoginThrottle()
    for _ in range(10):
        throttle.failure("192.0.2.1", 0.0)
    throttle.success("192.0.2.1")
    assert throttle.retry_after("192.0.2.1", 0.0) == 0.0


def test_failures_outside_the_window_start_over() -> None:
    throttle = LoginThrottle()
    for _ in range(FREE_FAILURES - 1):
        throttle.failure("192.0.2.1", 0.0)
    assert throttle.failure("192.0.2.1", 10_000.0) == 0.0


def test_memory_is_bounded() -> None:
    throttle = LoginThrottle()
    for i in range(MAX_SOURCES + 50):
        throttle.failure(f"src{i}", 0.0)
    assert len(throttle._sources) == MAX_SOURCES
