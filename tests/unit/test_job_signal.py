"""The jobs long-poll wake-up: only the relays given jobs wake; shutdown wakes all."""

from __future__ import annotations

from relay.cloud.api.tasks import JobSignal


async def test_a_relay_given_jobs_is_woken_and_the_others_sleep_on() -> None:
    signal = JobSignal()
    a, b = signal.current("ra"), signal.current("rb")
    signal.notify({"ra"})
    assert a.is_set() and not b.is_set()


async def test_a_wake_up_is_not_lost_between_looking_and_waiting() -> None:
    signal = JobSignal()
    taken = signal.current("ra")
    signal.notify({"ra"})
    assert taken.is_set()
    assert not signal.current("ra").is_set()


async def test_shutdown_wakes_every_waiting_relay() -> None:
    signal = JobSignal()
    waiting = [signal.current(r) for r in ("ra", "rb", "rc")]
    signal.close()
    assert signal.closing and all(e.is_set() for e in waiting)
