"""Scheduled tasks: create, edit, delete, run when due, hand jobs to relays, record
results (cloud.md "Scheduled tasks"; docs/agent-link.md "Jobs", "Reports").

A task is `scheduled` until its time, then `executing` while any device's job
is open, then `done`. Running it turns the targets into one job per device,
each assigned to the relay that serves the device, or Not Applicable at once
with the reason (relay.cloud.rules.tasks.decide). Relays fetch their jobs with
`jobs_for`, which also takes the agent's acknowledgement.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from relay.cloud.context import Context, conflict, not_found
from relay.cloud.files import write_atomically
from relay.cloud.rules.assignment import RelayPlace
from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.tasks import (
    GONE,
    NO_ADDRESS,
    SKIPPED,
    STATUSES,
    DeviceFacts,
    Targets,
    check_options,
    check_targets,
    check_task_name,
    check_type,
    decide,
    decode_screen,
    iso,
    masked_options,
    parse_when,
    resolve_targets,
    tally,
    when_out,
)
from relay.cloud.store.store import dumps
from relay.cloud.tenancy import Tenancy
from relay.proto.polycom.models import has_rest_api
from relay.sync.messages import MAX_JOBS, TASK_TYPES, Job, JobResult, Target, check_mac

APPLY_NAME = "Apply provisioning changes"
RELAY_GONE = "its relay was deleted before reporting a result"
EDITABLE = ("name", "targets", "when")
SCREEN_KEY = "image_png"
# Profile fields that change what phones are given (a new name or description does not).
CONFIG_FIELDS = ("parameters", "add_parameters", "files", "software")

Places = Callable[[float], Sequence[RelayPlace]]


class Tasks:
    def __init__(self, ctx: Context, tenancy: Tenancy, places: Places, screens: Path) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.tenancy = tenancy
        self.places = places
        self.screens = screens
        self._woken: set[str] = set()

    # -- reading -------------------------------------------------------------

    def _row(self, task_id: str) -> dict[str, Any]:
        row = self.store.task(task_id)
        if row is None:
            raise not_found("task", task_id)
        return row

    def _summary(self, row: Mapping[str, Any], results: Sequence[str | None]) -> dict[str, Any]:
        return {
            "id": row["id"],
            "name": row["name"],
            "type": row["type"],
            "status": row["status"],
            "options": masked_options(row["type"], json.loads(row["options"])),
            "targets": json.loads(row["targets"]),
            "when": when_out(row["when_mode"], row["run_at"]),
            "run_at": iso(row["run_at"]) if row["when_mode"] != "skip" else None,
            "created": iso(row["created"]),
            "created_by": row["created_by"],
            "started": iso(row["started"]),
            "finished": iso(row["finished"]),
            **tally(results).to_wire(),
        }

    def get(self, task_id: str) -> dict[str, Any]:
        """The task, its counts, and each device's result (still-open jobs under `pending`)."""
        row = self._row(task_id)
        jobs = self.store.task_jobs(task_id)
        out = self._summary(row, [j["result"] for j in jobs])
        results: list[dict[str, Any]] = []
        pending: list[dict[str, Any]] = []
        for job in jobs:
            device = job["mac"] or job["device_id"]
            if job["state"] != "done":
                pending.append({"device": device, "relay": job["relay_id"], "state": job["state"]})
                continue
            data = json.loads(job["data"])
            result: dict[str, Any] = {
                "device": device,
                "result": job["result"],
                "reason": job["reason"],
                "data": data,
                "finished": iso(job["updated"]),
            }
            if data.pop("screen", False):
                result["screen"] = f"/api/v1/tasks/{task_id}/screens/{device}"
            results.append(result)
        out["results"] = results
        out["pending"] = pending
        return out

    def listing(
        self, status: str | None = None, task_type: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first, optionally only one status and/or type."""
        if status is not None and status not in STATUSES:
            raise RuleError(
                "invalid_status", f"status must be one of {', '.join(STATUSES)}", "status", 400
            )
        if task_type is not None and task_type not in TASK_TYPES:
            raise RuleError(
                "invalid_type", f"type must be one of {', '.join(TASK_TYPES)}", "type", 400
            )
        rows = self.store.tasks(status, task_type)
        results = self.store.task_results([r["id"] for r in rows])
        return [self._summary(r, results[r["id"]]) for r in rows]

    def screen(self, task_id: str, mac: str) -> bytes:
        """A capture_screen result's PNG."""
        self._row(task_id)
        try:
            key = check_mac(mac.lower(), "mac")
        except ValueError as exc:
            raise not_found("screen capture", mac) from exc
        path = self.screens / task_id / f"{key}.png"
        if not path.is_file():
            raise not_found("screen capture", mac)
        return path.read_bytes()

    # -- writing -----------------------------------------------------------------

    def _check_targets(self, raw: object) -> Targets:
        """Every name must exist now (422 naming the first unknown one)."""
        targets = check_targets(raw)
        found = self.store.devices_by_ids(list(targets.devices))
        for key in targets.devices:
            if key not in found:
                raise RuleError(
                    "unknown_device", f"device {key!r} does not exist", "targets.devices"
                )
        groups = self.store.group_names()
        for name in targets.groups:
            if name not in groups:
                raise RuleError(
                    "unknown_group", f"device group {name!r} does not exist", "targets.groups"
                )
        sites = self.store.site_names()
        for name in targets.sites:
            if name not in sites:
                raise RuleError("unknown_site", f"site {name!r} does not exist", "targets.sites")
        return targets

    def create(self, body: Mapping[str, Any], actor: str) -> dict[str, Any]:
        """A task due now runs at once; one due later waits for `tick`; `skip` is done at once."""
        task_type = check_type(body.get("type"))
        options = check_options(task_type, body.get("options"))
        name = check_task_name(body.get("name"), task_type)
        targets = self._check_targets(body.get("targets"))
        now = self.ctx.now()
        when = parse_when(body.get("when", "now"), now)
        task_id = uuid.uuid4().hex
        row = {
            "id": task_id,
            "name": name,
            "type": task_type,
            "options": dumps(options),
            "targets": dumps(targets.to_wire()),
            "when_mode": when.mode,
            "run_at": when.run_at,
            "status": "scheduled",
            "created": now,
            "created_by": actor,
        }
        with self.store.transaction():
            self.store.insert_task(row)
            self._begin(row, now)
        self.ctx.log(actor, "add", f"task/{task_id}", type=task_type, name=name, when=when.mode)
        return self.get(task_id)

    def update(self, task_id: str, body: Mapping[str, Any], actor: str) -> dict[str, Any]:
        """cloud.md: only unexecuted tasks can be edited (name, targets, time)."""
        row = self._row(task_id)
        if row["status"] != "scheduled":
            raise conflict(
                "not_editable",
                f"task {task_id} is {row['status']}; only scheduled tasks can be edited",
            )
        unknown = sorted(set(body) - set(EDITABLE))
        if unknown:
            raise RuleError(
                "not_editable",
                f"{unknown[0]} cannot be edited (editable: {', '.join(EDITABLE)})",
                unknown[0],
            )
        now = self.ctx.now()
        changes: dict[str, Any] = {}
        if "name" in body:
            changes["name"] = check_task_name(body["name"], row["type"])
        if "targets" in body:
            changes["targets"] = dumps(self._check_targets(body["targets"]).to_wire())
        if "when" in body:
            when = parse_when(body["when"], now)
            changes.update(when_mode=when.mode, run_at=when.run_at)
        with self.store.transaction():
            self.store.update_task(task_id, changes)
            self._begin({**row, **changes}, now)
        self.ctx.log(actor, "edit", f"task/{task_id}", fields=sorted(body))
        return self.get(task_id)

    def delete(self, task_id: str, actor: str) -> None:
        """cloud.md: before or after execution, never during. A deleted unexecuted task's
        change reaches the phones at their next poll; its jobs are never handed out."""
        row = self._row(task_id)
        if row["status"] == "executing":
            raise conflict("executing", f"task {task_id} is executing; delete it when it is done")
        with self.store.transaction():
            self.store.delete_task(task_id)
        shutil.rmtree(self.screens / task_id, ignore_errors=True)
        self.ctx.log(actor, "delete", f"task/{task_id}")

    # -- running -------------------------------------------------------------------

    def _begin(self, row: Mapping[str, Any], now: float) -> int:
        """Run a task created or edited to `now`, or finish a skipped one."""
        if row["when_mode"] == "skip":
            self._skip(row, now)
            return 0
        if row["when_mode"] == "now":
            return self._start(row, now)
        return 0

    def _device_ids(self, targets: Targets) -> tuple[list[str], list[str]]:
        """(ids of the targets' devices, device keys named that no longer exist)."""
        found = self.store.devices_by_ids(list(targets.devices))
        groups = {g: self.store.devices_in("group", g) for g in targets.groups}
        sites = {s: self.store.devices_in("site", s) for s in targets.sites}
        named = [d for d in targets.devices if d in found]
        gone = [d for d in targets.devices if d not in found]
        return resolve_targets(targets, named, groups, sites), gone

    def _skip(self, row: Mapping[str, Any], now: float) -> None:
        ids, gone = self._device_ids(Targets.from_stored(json.loads(row["targets"])))
        devices = self.store.devices_by_ids(ids)
        jobs = [self._closed(row["id"], d, devices[d]["mac"], SKIPPED, now) for d in ids]
        jobs += [self._closed(row["id"], d, None, GONE, now) for d in gone]
        self.store.insert_jobs(jobs)
        self.store.update_task(row["id"], {"status": "done", "started": now, "finished": now})

    @staticmethod
    def _closed(
        task_id: str, device_id: str, mac: str | None, reason: str, now: float
    ) -> dict[str, Any]:
        return {
            "task_id": task_id,
            "device_id": device_id,
            "mac": mac,
            "relay_id": None,
            "state": "done",
            "result": "not_applicable",
            "reason": reason,
            "updated": now,
        }

    def _start(self, row: Mapping[str, Any], now: float) -> int:
        """Make the jobs; returns how many were queued for relays."""
        ids, gone = self._device_ids(Targets.from_stored(json.loads(row["targets"])))
        devices = self.store.devices_by_ids(ids)
        relays = self.places(now)
        site_specific = self.store.site_specific_sites()
        jobs: list[dict[str, Any]] = []
        for device_id in ids:
            d = devices[device_id]
            facts = DeviceFacts(
                d["id"],
                d["mac"],
                d["model"],
                d["type"],
                d["firmware"],
                d["private_ip"],
                d["public_ip"],
                d["site"],
            )
            decision = decide(row["type"], facts, relays, site_specific)
            if decision.relay_id is None:
                jobs.append(self._closed(row["id"], device_id, d["mac"], decision.reason, now))
                continue
            jobs.append(
                {
                    "task_id": row["id"],
                    "device_id": device_id,
                    "mac": d["mac"],
                    "relay_id": decision.relay_id,
                    "state": "queued",
                    "result": None,
                    "reason": "",
                    "updated": now,
                }
            )
        jobs += [self._closed(row["id"], d, None, GONE, now) for d in gone]
        self.store.insert_jobs(jobs)
        self._woken.update(j["relay_id"] for j in jobs if j["state"] == "queued")
        queued = sum(1 for j in jobs if j["state"] == "queued")
        changes: dict[str, Any] = {"status": "executing", "started": now}
        if not queued:
            changes.update(status="done", finished=now)
        self.store.update_task(row["id"], changes)
        return queued

    def take_woken(self) -> frozenset[str]:
        """The relays given jobs since the last call: only their long-polls need waking
        (waking all of them cost 2.1 s per task with 1,000 relays, bench/RESULTS.md)."""
        woken, self._woken = frozenset(self._woken), set()
        return woken

    def tick(self, now: float) -> int:
        """Start every scheduled task whose time has come; returns the jobs queued. Jobs of
        a deleted relay fail, so their tasks can finish (and then be deleted)."""
        with self.store.transaction():
            for task_id in self.store.close_orphan_jobs(RELAY_GONE, now):
                self._close_if_finished(task_id, now)
        queued = 0
        for row in self.store.due_tasks(now):
            with self.store.transaction():
                jobs = self._start(row, now)
            queued += jobs
            self.ctx.log("scheduler", "execute", f"task/{row['id']}", jobs=jobs)
        return queued

    def _close_if_finished(self, task_id: str, now: float) -> None:
        if not self.store.has_open_jobs(task_id):
            self.store.update_task(task_id, {"status": "done", "finished": now})

    def jobs_for(self, relay_id: str, after: int, limit: int = MAX_JOBS) -> list[Job]:
        """docs/agent-link.md "Jobs": `after` acknowledges every job up to it; the jobs
        above it that were never acknowledged come (again), in seq order. A job whose
        device was deleted since is closed Not Applicable instead of handed out."""
        now = self.ctx.now()
        jobs: list[Job] = []
        with self.store.transaction():
            self.store.acknowledge_jobs(relay_id, after)
            rows = self.store.queued_jobs(relay_id, after, limit)
            password = self.tenancy.device_admin_password() if rows else ""
            for r in rows:
                address = r["private_ip"] or r["public_ip"]
                if r["known"] is None or address is None:
                    self.store.finish_job(
                        r["seq"],
                        "not_applicable",
                        GONE if r["known"] is None else NO_ADDRESS,
                        "{}",
                        now,
                    )
                    self._close_if_finished(r["task_id"], now)
                    continue
                target = Target(
                    mac=r["mac"],
                    address=address,
                    model=r["model"] or "",
                    firmware=r["firmware"] or "",
                    rest=has_rest_api(r["model"] or "", r["firmware"]),
                    password=password,
                )
                jobs.append(
                    Job(r["seq"], r["task_id"], r["type"], json.loads(r["options"]), target)
                )
        return jobs

    def record_result(self, relay_id: str, result: JobResult) -> bool:
        """Store one job's result (docs/agent-link.md "Reports"); runs inside the caller's
        transaction. Results for another relay's job, a job already done, or a deleted
        task are ignored (False). A screen capture is kept as a PNG file, not in the data."""
        job = self.store.job(result.job)
        if (
            job is None
            or job["relay_id"] != relay_id
            or job["state"] == "done"
            or job["task_id"] != result.task_id
            or job["mac"] != result.device
        ):
            return False
        now = self.ctx.now()
        data = dict(result.data)
        outcome, reason = result.result, result.reason
        if SCREEN_KEY in data:
            try:
                image = decode_screen(data)
            except ValueError as exc:
                outcome, reason = "failure", f"screen capture unusable: {exc}"
            else:
                write_atomically(self.screens / job["task_id"] / f"{job['mac']}.png", image)
                data["screen"] = True
            del data[SCREEN_KEY]
        self.store.finish_job(job["seq"], outcome, reason, dumps(data), now)
        self._close_if_finished(job["task_id"], now)
        return True

    # -- offering to apply a provisioning change --------------------------------------

    def check_apply(self, value: str | None) -> None:
        """`?apply=now|skip|<ISO time>` is checked before the change it belongs to is made."""
        if value is None:
            return
        try:
            parse_when(value, self.ctx.now())
        except RuleError as exc:
            raise RuleError(exc.code, exc.message.replace("when", "apply", 1), "apply") from exc

    def offer(self, devices: Sequence[str], apply: str | None, actor: str) -> dict[str, Any]:
        """cloud.md "Scheduled tasks": a saved change that affects devices offers an
        apply-provisioning-changes task for exactly those devices; with `apply` it is
        created at once."""
        affected = sorted(set(devices))
        body: dict[str, Any] | None = None
        if affected:
            body = {
                "type": "check_sync",
                "name": APPLY_NAME,
                "targets": {"devices": affected},
                "when": "now",
            }
        out: dict[str, Any] = {"affected_devices": affected, "apply_task": body}
        if apply is not None:
            out["task_id"] = None
            if body is not None:
                out["task_id"] = self.create({**body, "when": apply}, actor)["id"]
        return out

    def reached_by_profile(self, name: str) -> list[str]:
        """Devices whose configuration the profile is part of: every container it is
        bound in, and the owner of a CSV profile."""
        out: set[str] = set()
        for container, key in self.store.bindings_of_profile(name):
            out.update(self.store.devices_in(container, key))
        row = self.store.profile(name)
        if row is not None and row["owner_device"]:
            out.add(row["owner_device"])
        return sorted(out)
