"""The agent's durable queues (docs/agent-link.md): every SQL statement of the agent.

- the inbox holds jobs fetched from the cloud; `cursor` is the highest job
  number stored, which the next fetch acknowledges;
- the outbox holds reports (job results, device statuses) numbered by
  SQLite's AUTOINCREMENT, which never reuses a number, so the cloud can
  drop repeats by number;
- finishing a job and queuing its result is one transaction, so a crash
  leaves either a job to run or a result to send, never both and never
  neither.

SQLite in WAL mode with synchronous=FULL: a result the agent has accepted
survives a power cut.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from relay.sync.messages import DeviceStatus, Job, JobResult, Report

INTERRUPTED = "interrupted by a relay restart; not repeated"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS inbox (
    seq INTEGER PRIMARY KEY,
    job TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'running')),
    received REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('result', 'status')),
    body TEXT NOT NULL,
    queued REAL NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class QueueSizes:
    pending_jobs: int
    running_jobs: int
    reports: int
    cursor: int


class AgentStore:
    """One SQLite file; calls are short and serialized by a lock, safe from any thread."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.executescript(_SCHEMA)
        self._lock = threading.Lock()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # -- inbox ---------------------------------------------------------------

    def cursor(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'cursor'").fetchone()
        return int(row[0]) if row else 0

    def store_jobs(self, jobs: Sequence[Job], now: float) -> int:
        """Keep the jobs not seen before; returns the new cursor."""
        with self._tx() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'cursor'").fetchone()
            cursor = int(row[0]) if row else 0
            for job in jobs:
                if job.seq <= cursor:
                    continue
                db.execute(
                    "INSERT OR IGNORE INTO inbox (seq, job, state, received) "
                    "VALUES (?, ?, 'pending', ?)",
                    (job.seq, json.dumps(job.to_wire()), now),
                )
                cursor = job.seq
            db.execute(
                "INSERT INTO meta (key, value) VALUES ('cursor', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(cursor),),
            )
        return cursor

    def pending_jobs(self, after: int = 0) -> list[Job]:
        """Jobs not yet started numbered above `after`, oldest first."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT job FROM inbox WHERE state = 'pending' AND seq > ? ORDER BY seq", (after,)
            ).fetchall()
        return [Job.from_wire(json.loads(r[0])) for r in rows]

    def start_job(self, seq: int) -> bool:
        """Mark a job running before the phone is touched; False if it is not pending."""
        with self._tx() as db:
            changed = db.execute(
                "UPDATE inbox SET state = 'running' WHERE seq = ? AND state = 'pending'", (seq,)
            ).rowcount
        return changed == 1

    def finish_job(self, result: JobResult, now: float) -> None:
        """Remove the job and queue its result, atomically."""
        with self._tx() as db:
            db.execute("DELETE FROM inbox WHERE seq = ?", (result.job,))
            self._queue(db, "result", result.to_wire(), now)

    def interrupt_running(self, now: float) -> int:
        """After a restart: jobs left running are reported failed, never run again."""
        with self._tx() as db:
            rows = db.execute("SELECT job FROM inbox WHERE state = 'running'").fetchall()
            for (raw,) in rows:
                job = Job.from_wire(json.loads(raw))
                result = JobResult(job.seq, job.task_id, job.device.mac, "failure", INTERRUPTED)
                db.execute("DELETE FROM inbox WHERE seq = ?", (job.seq,))
                self._queue(db, "result", result.to_wire(), now)
        return len(rows)

    # -- outbox --------------------------------------------------------------

    def queue_status(self, status: DeviceStatus, now: float) -> None:
        with self._tx() as db:
            self._queue(db, "status", status.to_wire(), now)

    @staticmethod
    def _queue(db: sqlite3.Connection, kind: str, body: object, now: float) -> None:
        db.execute(
            "INSERT INTO outbox (kind, body, queued) VALUES (?, ?, ?)",
            (kind, json.dumps(body), now),
        )

    def reports(self, limit: int) -> list[Report]:
        """The oldest `limit` reports not yet acknowledged, in order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, kind, body FROM outbox ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
        return [
            Report.from_wire({"seq": seq, "kind": kind, "body": json.loads(body)})
            for seq, kind, body in rows
        ]

    def acknowledge(self, seq: int) -> int:
        """The cloud holds every report up to `seq`: drop them. Returns how many went."""
        with self._tx() as db:
            return db.execute("DELETE FROM outbox WHERE seq <= ?", (seq,)).rowcount

    def sizes(self) -> QueueSizes:
        with self._lock:
            counts = dict(
                self._conn.execute("SELECT state, count(*) FROM inbox GROUP BY state").fetchall()
            )
            reports = self._conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
            row = self._conn.execute("SELECT value FROM meta WHERE key = 'cursor'").fetchone()
        return QueueSizes(
            pending_jobs=int(counts.get("pending", 0)),
            running_jobs=int(counts.get("running", 0)),
            reports=int(reports),
            cursor=int(row[0]) if row else 0,
        )
