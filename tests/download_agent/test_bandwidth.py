"""The WAN rate limit's token bucket: pure, on virtual time."""

from __future__ import annotations

from download_agent.bandwidth import TokenBucket, bucket


def test_an_unlimited_bucket_never_asks_to_wait() -> None:
    limiter = bucket(0)
    assert [limiter.take(10**9, now=0.0) for _ in range(3)] == [0.0, 0.0, 0.0]


def test_the_burst_goes_out_at_once() -> None:
    limiter = TokenBucket(rate=1000.0, burst=500.0)
    assert limiter.take(500, now=0.0) == 0.0


def test_bytes_beyond_the_burst_wait_for_the_rate() -> None:
    limiter = TokenBucket(rate=1000.0, burst=500.0)
    assert limiter.take(1500, now=0.0) == 1.0


def test_waiting_refills_the_bucket() -> None:
    limiter = TokenBucket(rate=1000.0, burst=500.0)
    limiter.take(500, now=0.0)
    assert limiter.take(500, now=0.5) == 0.0


def test_idle_time_never_saves_more_than_the_burst() -> None:
    limiter = TokenBucket(rate=1000.0, burst=500.0)
    limiter.take(0, now=0.0)
    assert limiter.take(1500, now=100.0) == 1.0


def test_a_sender_that_obeys_the_delays_stays_under_the_rate() -> None:
    limiter = bucket(1_000_000)
    now, sent = 0.0, 0
    while now < 10.0:
        sent += 65536
        now += limiter.take(65536, now)
    assert sent <= 1_000_000 * now + limiter.burst + 65536
    assert sent >= 1_000_000 * now


def test_a_clock_going_backwards_adds_no_tokens() -> None:
    limiter = TokenBucket(rate=1000.0, burst=500.0)
    limiter.take(500, now=10.0)
    assert limiter.take(100, now=5.0) == 0.1
