"""The agent's durable queues: jobs stored once, run once, results sent once and in order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from management_agent.store import INTERRUPTED, AgentStore
from relay.sync.messages import DeviceStatus, Job, JobResult, Target

MAC = "0004f2000001"


def job(seq: int, mac: str = MAC, task: str = "t1") -> Job:
    target = Target(mac, "127.20.0.1", "VVX500", "6.4.3", True, "secret")
    return Job(seq, task, "reboot", {}, target)


def result(seq: int, outcome: str = "success") -> JobResult:
    return JobResult(seq, "t1", MAC, outcome)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[AgentStore]:
    s = AgentStore(tmp_path / "agent.db")
    yield s
    s.close()


def test_stored_jobs_advance_the_cursor(store: AgentStore) -> None:
    assert store.store_jobs([job(3), job(7)], 1.0) == 7
    assert store.cursor() == 7
    assert [j.seq for j in store.pending_jobs()] == [3, 7]


def test_a_job_delivered_again_is_stored_once(store: AgentStore) -> None:
    store.store_jobs([job(3)], 1.0)
    store.store_jobs([job(3), job(4)], 2.0)
    assert [j.seq for j in store.pending_jobs()] == [3, 4]


def test_a_job_at_or_below_the_cursor_is_never_stored_again(store: AgentStore) -> None:
    store.store_jobs([job(5)], 1.0)
    assert store.start_job(5)
    store.finish_job(result(5), 2.0)
    store.store_jobs([job(5)], 3.0)
    assert store.pending_jobs() == []


def test_a_job_starts_only_once(store: AgentStore) -> None:
    store.store_jobs([job(1)], 1.0)
    assert store.start_job(1)
    assert not store.start_job(1)


def test_finishing_a_job_queues_its_result(store: AgentStore) -> None:
    store.store_jobs([job(1)], 1.0)
    store.start_job(1)
    store.finish_job(result(1), 2.0)
    reports = store.reports(10)
    assert [r.result.job for r in reports if r.result] == [1]
    assert store.sizes().pending_jobs == 0


def test_a_job_running_at_a_crash_is_reported_failed_and_not_repeated(tmp_path: Path) -> None:
    first = AgentStore(tmp_path / "agent.db")
    first.store_jobs([job(1), job(2)], 1.0)
    first.start_job(1)
    first.close()
    second = AgentStore(tmp_path / "agent.db")
    try:
        assert second.interrupt_running(5.0) == 1
        assert [j.seq for j in second.pending_jobs()] == [2]
        (report,) = second.reports(10)
        assert report.result is not None
        assert (report.result.result, report.result.reason) == ("failure", INTERRUPTED)
    finally:
        second.close()


def test_reports_keep_their_order_across_kinds(store: AgentStore) -> None:
    store.queue_status(DeviceStatus(MAC, True, 1.0), 1.0)
    store.store_jobs([job(1)], 1.0)
    store.start_job(1)
    store.finish_job(result(1), 2.0)
    store.queue_status(DeviceStatus(MAC, False, 3.0), 3.0)
    kinds = ["status" if r.status else "result" for r in store.reports(10)]
    assert kinds == ["status", "result", "status"]
    seqs = [r.seq for r in store.reports(10)]
    assert seqs == sorted(seqs)


def test_acknowledged_reports_are_dropped_and_numbers_never_reused(store: AgentStore) -> None:
    for i in range(3):
        store.queue_status(DeviceStatus(MAC, True, float(i)), float(i))
    last = store.reports(10)[-1].seq
    assert store.acknowledge(last) == 3
    store.queue_status(DeviceStatus(MAC, True, 9.0), 9.0)
    (fresh,) = store.reports(10)
    assert fresh.seq > last


def test_reports_survive_a_restart(tmp_path: Path) -> None:
    first = AgentStore(tmp_path / "agent.db")
    first.queue_status(DeviceStatus(MAC, True, 1.0), 1.0)
    first.close()
    second = AgentStore(tmp_path / "agent.db")
    try:
        assert len(second.reports(10)) == 1
    finally:
        second.close()


def test_pending_jobs_after_a_number_are_only_the_newer_ones(store: AgentStore) -> None:
    store.store_jobs([job(1), job(2), job(3)], 1.0)
    assert [j.seq for j in store.pending_jobs(2)] == [3]
