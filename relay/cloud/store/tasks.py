"""The SQL of scheduled tasks and their per-device jobs (cloud.md "Scheduled tasks";
docs/agent-link.md "Jobs").

`task_jobs.seq` is one AUTOINCREMENT counter for all relays: it never goes back
nor is reused after a delete, so each relay sees its jobs numbered in
increasing order, which is what the agent acknowledges with `after=N`.
A device's task result is a row here too: Not Applicable rows are `done`
from the start and belong to no relay.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    type TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',
    targets TEXT NOT NULL,
    when_mode TEXT NOT NULL CHECK (when_mode IN ('now', 'at', 'skip')),
    run_at REAL NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('scheduled', 'executing', 'done')),
    created REAL NOT NULL,
    created_by TEXT NOT NULL DEFAULT '',
    started REAL,
    finished REAL
);
CREATE INDEX IF NOT EXISTS tasks_due ON tasks(status, run_at);
CREATE TABLE IF NOT EXISTS task_jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
    device_id TEXT NOT NULL,
    mac TEXT,
    relay_id TEXT,
    state TEXT NOT NULL CHECK (state IN ('queued', 'delivered', 'done')),
    result TEXT CHECK (result IN ('success', 'failure', 'not_applicable')),
    reason TEXT NOT NULL DEFAULT '',
    data TEXT NOT NULL DEFAULT '{}',
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS task_jobs_task ON task_jobs(task_id, seq);
CREATE INDEX IF NOT EXISTS task_jobs_task_state ON task_jobs(task_id, state);
CREATE INDEX IF NOT EXISTS task_jobs_relay ON task_jobs(relay_id, state, seq);
CREATE INDEX IF NOT EXISTS task_jobs_open ON task_jobs(relay_id) WHERE state != 'done';
"""

Row = dict[str, Any]


class TaskQueries:
    """Mixed into `Store`, whose connection and helpers it uses."""

    if TYPE_CHECKING:
        _conn: sqlite3.Connection

        def _insert(self, table: str, row: Row) -> None: ...
        def _update(self, table: str, key: str, changes: Row) -> None: ...
        def _rows(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Row]: ...
        def _one(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Row | None: ...
        def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
        def _exec(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> int: ...

    # -- tasks ---------------------------------------------------------------

    def task(self, task_id: str) -> Row | None:
        return self._one("SELECT * FROM tasks WHERE id = ?", (task_id,))

    def tasks(self, status: str | None = None, task_type: str | None = None) -> list[Row]:
        """Newest first."""
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if task_type is not None:
            where.append("type = ?")
            params.append(task_type)
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        return self._rows(
            f"SELECT * FROM tasks{clause} ORDER BY created DESC, rowid DESC",  # noqa: S608
            params,
        )

    def insert_task(self, row: Row) -> None:
        self._insert("tasks", row)

    def update_task(self, task_id: str, changes: Row) -> None:
        self._update("tasks", task_id, changes)

    def delete_task(self, task_id: str) -> int:
        return self._exec("DELETE FROM tasks WHERE id = ?", (task_id,))

    def due_tasks(self, now: float) -> list[Row]:
        return self._rows(
            "SELECT * FROM tasks WHERE status = 'scheduled' AND run_at <= ? ORDER BY run_at, rowid",
            (now,),
        )

    def task_results(self, task_ids: Sequence[str]) -> dict[str, list[str | None]]:
        """Every job's result (None while in progress) per task, for the counts."""
        out: dict[str, list[str | None]] = {t: [] for t in task_ids}
        for start in range(0, len(task_ids), 500):
            chunk = list(task_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for task_id, result in self._conn.execute(
                f"SELECT task_id, result FROM task_jobs WHERE task_id IN ({marks})",  # noqa: S608
                chunk,
            ):
                out[task_id].append(result)
        return out

    # -- what targets and relay assignment read ------------------------------------

    def site_names(self) -> set[str]:
        return {r[0] for r in self._conn.execute("SELECT name FROM sites")}

    def site_specific_sites(self) -> set[str]:
        return {r[0] for r in self._conn.execute("SELECT name FROM sites WHERE site_specific = 1")}

    def devices_in(self, container: str, key: str) -> list[str]:
        """Ids of the devices a binding container reaches (cloud.md "Deployment")."""
        params: tuple[str, ...] = (key,)
        if container == "device":
            sql = "SELECT id FROM devices WHERE id = ?"
        elif container == "site":
            sql = "SELECT id FROM devices WHERE site = ? ORDER BY id"
        elif container == "model":
            sql = "SELECT id FROM devices WHERE model = ? ORDER BY id"
        elif container == "group":
            sql = "SELECT device_id FROM device_groups WHERE group_name = ? ORDER BY device_id"
        else:
            sql, params = "SELECT id FROM devices ORDER BY id", ()
        return [r[0] for r in self._conn.execute(sql, params)]

    # -- jobs ------------------------------------------------------------------

    def insert_jobs(self, rows: Sequence[Row]) -> None:
        self._conn.executemany(
            "INSERT INTO task_jobs(task_id, device_id, mac, relay_id, state, result, reason, "
            "updated) VALUES (:task_id, :device_id, :mac, :relay_id, :state, :result, :reason, "
            ":updated)",
            rows,
        )

    def task_jobs(self, task_id: str) -> list[Row]:
        return self._rows("SELECT * FROM task_jobs WHERE task_id = ? ORDER BY seq", (task_id,))

    def has_open_jobs(self, task_id: str) -> bool:
        """Asked after every result: an index probe, not a scan of the task's jobs
        (a count here made a 10,000-phone task quadratic)."""
        return (
            self._one(
                "SELECT 1 AS open FROM task_jobs INDEXED BY task_jobs_task_state "
                "WHERE task_id = ? AND state IN ('queued', 'delivered') LIMIT 1",
                (task_id,),
            )
            is not None
        )

    def job(self, seq: int) -> Row | None:
        return self._one("SELECT * FROM task_jobs WHERE seq = ?", (seq,))

    def acknowledge_jobs(self, relay_id: str, after: int) -> int:
        """The agent stored every job up to `after`: never hand those out again."""
        return self._exec(
            "UPDATE task_jobs SET state = 'delivered' "
            "WHERE relay_id = ? AND state = 'queued' AND seq <= ?",
            (relay_id, after),
        )

    def queued_jobs(self, relay_id: str, after: int, limit: int) -> list[Row]:
        """Unacknowledged jobs above `after`, in seq order, with their task and device."""
        return self._rows(
            "SELECT j.seq, j.task_id, j.device_id, j.mac, t.type, t.options, d.model, "
            "d.firmware, d.private_ip, d.public_ip, d.id AS known "
            "FROM task_jobs j JOIN tasks t ON t.id = j.task_id "
            "LEFT JOIN devices d ON d.id = j.device_id "
            "WHERE j.relay_id = ? AND j.state = 'queued' AND j.seq > ? ORDER BY j.seq LIMIT ?",
            (relay_id, after, limit),
        )

    def close_orphan_jobs(self, reason: str, now: float) -> list[str]:
        """Fail the open jobs of relays that were deleted (their results can never come);
        returns the tasks touched."""
        tasks = [
            r[0]
            for r in self._conn.execute(
                "SELECT task_id FROM task_jobs INDEXED BY task_jobs_open WHERE state != 'done' "
                "AND relay_id IS NOT NULL AND relay_id NOT IN (SELECT id FROM relays)"
            )
        ]
        tasks = list(dict.fromkeys(tasks))
        if tasks:
            self._exec(
                "UPDATE task_jobs SET state = 'done', result = 'failure', reason = ?, "
                "updated = ? WHERE state != 'done' AND relay_id IS NOT NULL "
                "AND relay_id NOT IN (SELECT id FROM relays)",
                (reason, now),
            )
        return tasks

    def finish_job(self, seq: int, result: str, reason: str, data: str, now: float) -> None:
        self._exec(
            "UPDATE task_jobs SET state = 'done', result = ?, reason = ?, data = ?, updated = ? "
            "WHERE seq = ?",
            (result, reason, data, now, seq),
        )
