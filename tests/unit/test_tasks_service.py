"""Scheduled tasks in the control plane: running, job hand-out and results
(cloud.md "Scheduled tasks"; docs/agent-link.md "Jobs", "Reports")."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from relay.cloud.controlplane import ControlPlane
from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.tasks import PNG_SIGNATURE, SKIPPED
from relay.sync.messages import JobResult, Registration

MAC = "0004f2000001"
OTHER = "0004f2000002"
START = 1_800_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def plane(tmp_path: Path, clock: Clock) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path / "cloud", clock=clock)
    plane.bootstrap()
    for mac in (MAC, OTHER):
        plane.devices.create({"mac": mac, "model": "VVX450", "private_ip": "10.0.0.5"}, "admin")
    yield plane
    plane.close()


def relay(plane: ControlPlane) -> str:
    tenant = plane.tenancy.tenant()["id"]
    reg = Registration(tenant, plane.relays.pin()["pin"], "r", "1.0")
    return plane.relays.register(reg, "127.0.0.1").relay_id


def task(plane: ControlPlane, **body: Any) -> dict[str, Any]:
    return plane.tasks.create(
        {"type": "reboot", "targets": {"devices": [MAC, OTHER]}, **body}, "admin"
    )


def result(job: int, task_id: str, device: str = MAC, **extra: Any) -> JobResult:
    return JobResult(job, task_id, device, extra.pop("result", "success"), **extra)


def test_a_task_due_now_runs_at_once_with_a_job_per_device(plane: ControlPlane) -> None:
    relay_id = relay(plane)
    out = task(plane)
    assert out["status"] == "executing" and out["in_progress"] == 2
    jobs = plane.tasks.jobs_for(relay_id, 0)
    assert [j.device.mac for j in jobs] == [MAC, OTHER]
    job = jobs[0]
    assert (job.type, job.task_id, job.device.address) == ("reboot", out["id"], "10.0.0.5")
    assert job.device.rest and job.device.password == plane.tenancy.device_admin_password()


def test_a_task_at_a_time_waits_for_the_tick_that_passes_it(
    plane: ControlPlane, clock: Clock
) -> None:
    relay(plane)
    at = dt.datetime.fromtimestamp(START + 3600, dt.UTC).isoformat()
    out = task(plane, when=at)
    assert out["status"] == "scheduled"
    assert plane.tasks.tick(START + 3599) == 0
    assert plane.tasks.get(out["id"])["status"] == "scheduled"
    assert plane.tasks.tick(START + 3600) == 2
    assert plane.tasks.get(out["id"])["status"] == "executing"


def test_jobs_above_after_come_again_until_acknowledged(plane: ControlPlane) -> None:
    relay_id = relay(plane)
    task(plane)
    first, second = plane.tasks.jobs_for(relay_id, 0)
    assert [j.seq for j in plane.tasks.jobs_for(relay_id, 0)] == [first.seq, second.seq]
    assert [j.seq for j in plane.tasks.jobs_for(relay_id, first.seq)] == [second.seq]
    assert [j.seq for j in plane.tasks.jobs_for(relay_id, 0)] == [second.seq]
    assert plane.tasks.jobs_for(relay_id, second.seq) == []


def test_jobs_of_another_relay_are_not_handed_out(plane: ControlPlane) -> None:
    relay(plane)
    task(plane)
    assert plane.tasks.jobs_for("r-not-this-one", 0) == []


def test_a_deleted_tasks_jobs_are_not_handed_out(plane: ControlPlane) -> None:
    relay_id = relay(plane)
    out = task(plane)
    with plane.store.transaction():
        plane.store.delete_task(out["id"])
    assert plane.tasks.jobs_for(relay_id, 0) == []


def test_results_give_totals_and_the_last_one_finishes_the_task(plane: ControlPlane) -> None:
    relay_id = relay(plane)
    out = task(plane)
    first, second = plane.tasks.jobs_for(relay_id, 0)
    assert plane.tasks.record_result(relay_id, result(first.seq, out["id"]))
    assert plane.tasks.get(out["id"])["status"] == "executing"
    failed = result(second.seq, out["id"], OTHER, result="failure", reason="unreachable")
    assert plane.tasks.record_result(relay_id, failed)
    done = plane.tasks.get(out["id"])
    assert (done["status"], done["success"], done["failure"], done["in_progress"]) == (
        "done",
        1,
        1,
        0,
    )
    assert done["results"][1]["reason"] == "unreachable"


def test_a_duplicate_result_is_ignored(plane: ControlPlane) -> None:
    relay_id = relay(plane)
    out = task(plane)
    job = plane.tasks.jobs_for(relay_id, 0)[0]
    assert plane.tasks.record_result(relay_id, result(job.seq, out["id"]))
    again = result(job.seq, out["id"], result="failure", reason="late")
    assert not plane.tasks.record_result(relay_id, again)
    assert plane.tasks.get(out["id"])["results"][0]["result"] == "success"


def test_a_result_from_another_relay_is_ignored(plane: ControlPlane) -> None:
    relay_id = relay(plane)
    out = task(plane)
    job = plane.tasks.jobs_for(relay_id, 0)[0]
    assert not plane.tasks.record_result("r-someone-else", result(job.seq, out["id"]))


def test_a_screen_capture_is_kept_as_a_file_not_in_the_data(plane: ControlPlane) -> None:
    relay_id = relay(plane)
    out = task(plane, type="capture_screen", targets={"devices": [MAC]})
    job = plane.tasks.jobs_for(relay_id, 0)[0]
    image = PNG_SIGNATURE + b"pixels"
    data = {"image_png": base64.b64encode(image).decode()}
    plane.tasks.record_result(relay_id, result(job.seq, out["id"], data=data))
    row = plane.tasks.get(out["id"])["results"][0]
    assert row["data"] == {} and row["screen"] == f"/api/v1/tasks/{out['id']}/screens/{MAC}"
    assert plane.tasks.screen(out["id"], MAC) == image


def test_a_screen_capture_that_is_no_png_is_a_failure(plane: ControlPlane) -> None:
    relay_id = relay(plane)
    out = task(plane, type="capture_screen", targets={"devices": [MAC]})
    job = plane.tasks.jobs_for(relay_id, 0)[0]
    data = {"image_png": base64.b64encode(b"not a png").decode()}
    plane.tasks.record_result(relay_id, result(job.seq, out["id"], data=data))
    row = plane.tasks.get(out["id"])["results"][0]
    assert row["result"] == "failure" and "not a PNG" in row["reason"]


def test_skip_finishes_the_task_with_every_device_not_applicable(plane: ControlPlane) -> None:
    out = task(plane, when="skip")
    assert out["status"] == "done" and out["not_applicable"] == 2
    assert {r["reason"] for r in out["results"]} == {SKIPPED}


def test_without_a_relay_every_device_is_not_applicable(plane: ControlPlane) -> None:
    out = task(plane)
    assert out["status"] == "done"
    assert out["results"][0]["reason"] == "no relay serves site Internet"


def test_a_video_bar_is_not_applicable_for_check_sync(plane: ControlPlane) -> None:
    relay(plane)
    plane.devices.create({"mac": "0004f2000003", "model": "G7500", "private_ip": "10.0.0.9"}, "a")
    out = task(plane, type="check_sync", targets={"devices": ["0004f2000003", MAC]})
    assert (out["not_applicable"], out["in_progress"]) == (1, 1)
    assert out["results"][0]["reason"].startswith("video bar cannot take")


def test_a_phone_without_rest_is_not_applicable_for_device_control(plane: ControlPlane) -> None:
    relay(plane)
    plane.devices.create({"mac": "0004f2000004", "model": "SPIP650", "private_ip": "10.0.0.9"}, "a")
    out = task(plane, targets={"devices": ["0004f2000004"]})
    assert out["status"] == "done"
    assert out["results"][0]["reason"] == "no REST API on this device (SPIP650, unknown firmware)"


def test_only_a_scheduled_task_can_be_edited(plane: ControlPlane) -> None:
    relay(plane)
    later = task(plane, when="2030-01-01T00:00:00Z")
    edited = plane.tasks.update(later["id"], {"name": "later", "targets": {"devices": [MAC]}}, "a")
    assert (edited["name"], edited["targets"]["devices"]) == ("later", [MAC])
    running = task(plane)
    with pytest.raises(RuleError) as exc:
        plane.tasks.update(running["id"], {"name": "x"}, "a")
    assert exc.value.status == 409


def test_an_executing_task_cannot_be_deleted(plane: ControlPlane) -> None:
    relay(plane)
    running = task(plane)
    with pytest.raises(RuleError) as exc:
        plane.tasks.delete(running["id"], "a")
    assert exc.value.status == 409


def test_a_scheduled_task_can_be_deleted(plane: ControlPlane) -> None:
    later = task(plane, when="2030-01-01T00:00:00Z")
    plane.tasks.delete(later["id"], "a")
    assert plane.tasks.listing() == []


def test_jobs_of_a_deleted_relay_fail_so_the_task_finishes(plane: ControlPlane) -> None:
    relay_id = relay(plane)
    out = task(plane)
    plane.relays.delete(relay_id, "admin")
    plane.tasks.tick(START)
    done = plane.tasks.get(out["id"])
    assert (done["status"], done["failure"]) == ("done", 2)


def test_only_the_relays_given_jobs_are_woken(plane: ControlPlane, clock: Clock) -> None:
    relay_id = relay(plane)
    plane.tasks.take_woken()
    at = dt.datetime.fromtimestamp(START + 60, dt.UTC).isoformat()
    task(plane, when=at)
    assert plane.tasks.take_woken() == frozenset()
    plane.tasks.tick(START + 60)
    assert plane.tasks.take_woken() == {relay_id}
    assert plane.tasks.take_woken() == frozenset()
