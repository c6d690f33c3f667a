"""Scheduled tasks over the REST API, the scheduler that starts them, and the
agent's job long-poll (cloud.md "Scheduled tasks"; docs/agent-link.md "Jobs").

The scheduler is a background task of the API app: about once a second it asks
the control plane to start the tasks whose time has come. A relay's
`GET /api/v1/agent/jobs` answers at once when it has jobs, else waits on a
wake-up that every change which may queue jobs sets, so a job reaches an idle
relay without waiting for its next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, TypeVar

from aiohttp import web

from relay.cloud.api.auth import WORKER, actor, relay_of
from relay.cloud.api.bodies import int_query, json_body, ok
from relay.cloud.api.openapi import STR, STR_LIST, TASK_TARGETS, Route, Schema, obj, ref
from relay.cloud.controlplane import CloudWorker
from relay.logs import event
from relay.sync.messages import MAX_JOBS, TASK_TYPES, JobBatch

log = logging.getLogger("cloud.tasks")
T = TypeVar("T")

API = "/api/v1"
TICK_SECONDS = 1.0
MAX_WAIT = 60
DEFAULT_WAIT = 30
MAX_SEQ = 2**63 - 1


class JobSignal:
    """Wakes the waiting long-polls of the relays that were just given jobs."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self.closing = False

    def current(self, relay_id: str) -> asyncio.Event:
        """Take this before looking for jobs, so a wake-up during the look is not lost."""
        return self._events.setdefault(relay_id, asyncio.Event())

    def notify(self, relay_ids: Iterable[str]) -> None:
        for relay_id in relay_ids:
            waiting = self._events.pop(relay_id, None)
            if waiting is not None:
                waiting.set()

    def close(self) -> None:
        """Shutdown: answer the waiting polls now rather than hold the server open."""
        self.closing = True
        self.notify(list(self._events))


JOB_SIGNAL = web.AppKey("job_signal", JobSignal)


def _worker(request: web.Request) -> CloudWorker:
    return request.app[WORKER]


async def _waking(request: web.Request, change: Callable[[], T]) -> T:
    """Run a change that may queue jobs on the worker, then wake the relays given some."""
    worker = _worker(request)

    def work() -> tuple[T, frozenset[str]]:
        return change(), worker.plane.tasks.take_woken()

    out, woken = await worker.call(work)
    request.app[JOB_SIGNAL].notify(woken)
    return out


# -- tasks ---------------------------------------------------------------------


async def create_task(request: web.Request) -> web.Response:
    body = await json_body(request)
    tasks, who = _worker(request).plane.tasks, actor(request)
    return ok(await _waking(request, lambda: tasks.create(body, who)), 201)


async def list_tasks(request: web.Request) -> web.Response:
    worker = _worker(request)
    q = request.query
    return ok(await worker.call(worker.plane.tasks.listing, q.get("status"), q.get("type")))


async def get_task(request: web.Request) -> web.Response:
    worker = _worker(request)
    return ok(await worker.call(worker.plane.tasks.get, request.match_info["id"]))


async def patch_task(request: web.Request) -> web.Response:
    body = await json_body(request)
    tasks, who, task_id = _worker(request).plane.tasks, actor(request), request.match_info["id"]
    return ok(await _waking(request, lambda: tasks.update(task_id, body, who)))


async def delete_task(request: web.Request) -> web.Response:
    worker = _worker(request)
    await worker.call(worker.plane.tasks.delete, request.match_info["id"], actor(request))
    return web.Response(status=204)


async def get_task_screen(request: web.Request) -> web.Response:
    worker = _worker(request)
    m = request.match_info
    image = await worker.call(worker.plane.tasks.screen, m["id"], m["mac"])
    return web.Response(body=image, content_type="image/png")


async def with_offer(
    request: web.Request, change: Callable[[], tuple[dict[str, Any], list[str]]]
) -> web.Response:
    """Answer a saved change with the apply-provisioning-changes offer for the devices
    it affects (cloud.md "Scheduled tasks"); `?apply=now|skip|<ISO time>` creates the
    task at once. `change` runs on the worker and returns (answer, affected device ids);
    a bad `apply` is refused before anything changes."""
    worker = _worker(request)
    tasks = worker.plane.tasks
    apply = request.query.get("apply")
    who = actor(request)

    def work() -> dict[str, Any]:
        tasks.check_apply(apply)
        out, devices = change()
        return {**out, **tasks.offer(devices, apply, who)}

    return ok(await _waking(request, work))


APPLY_QUERY = (
    (
        "apply",
        "string",
        "now, skip or an ISO 8601 time: create the apply-provisioning-changes task for the "
        "affected devices at once (its id is returned as task_id)",
    ),
)
OFFER: dict[str, Schema] = {
    "affected_devices": STR_LIST,
    "apply_task": {"oneOf": [ref("TaskBody"), {"type": "null"}]},
    "task_id": {"type": ["string", "null"]},
}


# -- the agent's jobs ----------------------------------------------------------------


async def agent_jobs(request: web.Request) -> web.Response:
    """docs/agent-link.md "Jobs": `after` acknowledges; jobs above it come until it does."""
    relay_id = relay_of(request)
    after = int_query(request, "after", 0, 0, MAX_SEQ)
    wait = int_query(request, "wait", DEFAULT_WAIT, 0, MAX_WAIT)
    worker = _worker(request)
    signal = request.app[JOB_SIGNAL]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        wake = signal.current(relay_id)
        jobs = await worker.call(worker.plane.tasks.jobs_for, relay_id, after, MAX_JOBS)
        remaining = deadline - loop.time()
        if jobs or remaining <= 0 or signal.closing:
            return ok(JobBatch(tuple(jobs)).to_wire())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(remaining):
                await wake.wait()


# -- the scheduler -------------------------------------------------------------------


async def _schedule(worker: CloudWorker, signal: JobSignal) -> None:
    plane = worker.plane

    def start_due() -> frozenset[str]:
        plane.tasks.tick(plane.ctx.now())
        return plane.tasks.take_woken()

    while True:
        try:
            woken = await worker.call(start_due)
        except Exception:
            event(log, "tick_failed", logging.ERROR)
            log.exception("starting due tasks failed; trying again")
            woken = frozenset()
        signal.notify(woken)
        await asyncio.sleep(TICK_SECONDS)


async def _scheduler(app: web.Application) -> AsyncIterator[None]:
    """Runs with the app: started at startup, cancelled (and awaited) at cleanup."""
    task = asyncio.create_task(_schedule(app[WORKER], app[JOB_SIGNAL]))
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def _release_polls(app: web.Application) -> None:
    app[JOB_SIGNAL].close()


def install(app: web.Application) -> None:
    """Give the API app its job wake-up, the scheduler, and the shutdown of long-polls."""
    app[JOB_SIGNAL] = JobSignal()
    app.cleanup_ctx.append(_scheduler)
    app.on_shutdown.append(_release_polls)


# -- the table -------------------------------------------------------------------------

ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        f"{API}/tasks",
        create_task,
        "Schedule a task on devices, groups and/or sites: now, at a time, or skip",
        "tasks",
        request=ref("TaskBody"),
        response=ref("Task"),
        status=201,
    ),
    Route(
        "GET",
        f"{API}/tasks",
        list_tasks,
        "Tasks, newest first",
        "tasks",
        response={"type": "array", "items": ref("Task")},
        query=(
            ("status", "string", "scheduled, executing or done"),
            ("type", "string", ", ".join(TASK_TYPES)),
        ),
    ),
    Route(
        "GET",
        f"{API}/tasks/{{id}}",
        get_task,
        "A task with per-device results",
        "tasks",
        response=ref("Task"),
    ),
    Route(
        "PATCH",
        f"{API}/tasks/{{id}}",
        patch_task,
        "Edit a scheduled task's name, targets or time (409 once it has run)",
        "tasks",
        request=obj(name=STR, targets=TASK_TARGETS, when=STR),
        response=ref("Task"),
    ),
    Route(
        "DELETE",
        f"{API}/tasks/{{id}}",
        delete_task,
        "Delete a scheduled or done task (409 while executing)",
        "tasks",
        status=204,
    ),
    Route(
        "GET",
        f"{API}/tasks/{{id}}/screens/{{mac}}",
        get_task_screen,
        "A capture_screen result",
        "tasks",
        response={"type": "string", "format": "binary"},
        response_type="image/png",
    ),
    Route(
        "GET",
        f"{API}/agent/jobs",
        agent_jobs,
        "The relay's jobs above `after` (which acknowledges), waiting up to `wait` seconds",
        "agent",
        response=ref("JobBatch"),
        query=(
            ("after", "integer", "the highest job seq the agent has stored"),
            (
                "wait",
                "integer",
                f"seconds to wait for a job, 0-{MAX_WAIT} (default {DEFAULT_WAIT})",
            ),
        ),
        security="relay",
    ),
)
