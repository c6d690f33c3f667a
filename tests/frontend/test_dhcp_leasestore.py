"""The SQLite lease log: durable once appended, compacted without loss, upgraded in place.

The crash tests run a child process that kills itself (SIGKILL, as the OOM
killer would stop it) right after an append returned, or inside the
compaction's transaction, then reopen the log in this process; they run at
both durability levels, which both promise to survive a process crash.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

import pytest

from relay.frontend.dhcp import DhcpServer
from relay.frontend.leasestore import ROWS_PER_INSERT, LeaseStore
from relay.proto.dhcp.leases import (
    AddressDeclined,
    Lease,
    LeaseConfig,
    LeaseEvent,
    LeaseGranted,
    LeaseReleased,
    LeaseTable,
    Pool,
)
from tests.frontend.netns import unavailable

NOW = 1_700_000_000.0
SUBNET = IPv4Network("127.0.0.0/8")
CONFIG = LeaseConfig(
    IPv4Address("127.0.0.1"),
    (Pool(SUBNET, IPv4Address("127.0.1.1"), IPv4Address("127.0.1.250"), lease_seconds=3600),),
)
PHONES = 200
REPO = Path(__file__).resolve().parents[2]
RENEWALS = 10


def mac(n: int) -> str:
    return f"0004f2{n:06x}"


def busy_log() -> list[LeaseEvent]:
    """200 phones renewing 10 times each, one release and one decline: 2,002 events."""
    events: list[LeaseEvent] = [
        LeaseGranted(mac(n), IPv4Address(f"127.0.1.{n + 1}"), NOW + 1800 * round_ + 3600)
        for round_ in range(RENEWALS)
        for n in range(PHONES)
    ]
    events.append(LeaseReleased(mac(0), IPv4Address("127.0.1.1"), NOW + 1800 * RENEWALS))
    events.append(AddressDeclined(mac(1), IPv4Address("127.0.1.2"), NOW, NOW + 1e9))
    return events


RESTART = NOW + 1800 * RENEWALS + 1


def active(events: list[LeaseEvent]) -> tuple[Lease, ...]:
    return LeaseTable.restore(CONFIG, events, RESTART).leases(RESTART)


def filled(path: Path, **options: Any) -> LeaseStore:
    store = LeaseStore(path, **options)
    store.append(busy_log())
    return store


def test_compaction_keeps_one_row_per_lease_and_the_same_active_leases(tmp_path: Path) -> None:
    with filled(tmp_path / "leases.sqlite") as store:
        kept = store.compact(RESTART)
        events = store.load()

    assert kept == len(events) == PHONES + 2
    assert active(events) == active(busy_log())
    assert len(active(events)) == PHONES - 2


def test_the_compacted_log_survives_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "leases.sqlite"
    with filled(path) as store:
        store.compact(RESTART)
    with LeaseStore(path) as store:
        assert store.rows == PHONES + 2
        assert active(store.load()) == active(busy_log())


def test_compaction_is_due_once_the_log_has_doubled_since_the_last_one(tmp_path: Path) -> None:
    with filled(tmp_path / "leases.sqlite", compact_after=100) as store:
        assert store.compaction_due
        store.compact(RESTART)
        assert not store.compaction_due
        store.append([LeaseGranted(mac(0), IPv4Address("127.0.1.1"), RESTART + 3600)] * PHONES)
        assert not store.compaction_due
        store.append([LeaseGranted(mac(0), IPv4Address("127.0.1.1"), RESTART + 3600)] * 2)
        assert store.compaction_due


def test_a_short_log_is_not_due_for_compaction(tmp_path: Path) -> None:
    with filled(tmp_path / "leases.sqlite") as store:
        assert not store.compaction_due


class FailingConnection:
    """A connection that fails on the compaction's INSERTs, after its DELETE."""

    def __init__(self, real: sqlite3.Connection) -> None:
        self.real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def __enter__(self) -> Any:
        return self.real.__enter__()

    def __exit__(self, *exc: Any) -> Any:
        return self.real.__exit__(*exc)

    def executemany(self, *_args: Any) -> Any:
        raise sqlite3.OperationalError("disk I/O error")


def test_a_compaction_that_fails_midway_leaves_the_whole_old_log(tmp_path: Path) -> None:
    with filled(tmp_path / "leases.sqlite") as store:
        real = store._db
        store._db = FailingConnection(real)  # type: ignore[assignment]
        with pytest.raises(sqlite3.OperationalError):
            store.compact(RESTART)
        store._db = real

        assert store.load() == busy_log()


# The child fills the log, then compacts it with a connection that SIGKILLs the
# process inside the transaction: right after the DELETE, or after `steps` SQLite
# VM steps into the INSERTs. It prints nothing: any output means it was not killed.
CRASHING_CHILD = """
import os, signal, sqlite3, sys
from pathlib import Path
from tests.frontend.test_dhcp_leasestore import RESTART, filled

where, steps, durability = sys.argv[2], int(sys.argv[3]), sys.argv[4]

def die(*_):
    os.kill(os.getpid(), signal.SIGKILL)

class Crashing:
    def __init__(self, real):
        self.real = real
    def __getattr__(self, name):
        return getattr(self.real, name)
    def __enter__(self):
        return self.real.__enter__()
    def __exit__(self, *exc):
        return self.real.__exit__(*exc)
    def execute(self, sql, *args):
        cursor = self.real.execute(sql, *args)
        if where == "after-delete" and sql.startswith("DELETE"):
            die()
        return cursor
    def executemany(self, sql, rows):
        if where == "inserting":
            self.real.set_progress_handler(die, steps)
        return self.real.executemany(sql, rows)

store = filled(Path(sys.argv[1]), durability=durability)
store._db = Crashing(store._db)
store.compact(RESTART)
print("compaction finished without a crash")
"""


@pytest.mark.parametrize("durability", ["fsync", "process"])
@pytest.mark.parametrize(
    ("where", "steps"), [("after-delete", 0), ("inserting", 50), ("inserting", 5000)]
)
def test_a_crash_inside_the_compaction_loses_no_granted_lease(
    tmp_path: Path, where: str, steps: int, durability: str
) -> None:
    path = tmp_path / "leases.sqlite"
    child = subprocess.run(
        [sys.executable, "-c", CRASHING_CHILD, str(path), where, str(steps), durability],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )

    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr
    with LeaseStore(path) as store:
        assert store.load() == busy_log()
        assert active(store.load()) == active(busy_log())


# The child appends one batch, says so, and SIGKILLs itself before closing anything.
KILLED_AFTER_APPEND = """
import os, signal, sys
from ipaddress import IPv4Address
from pathlib import Path
from relay.frontend.leasestore import LeaseStore
from relay.proto.dhcp.leases import LeaseGranted

store = LeaseStore(Path(sys.argv[1]), durability=sys.argv[2])
store.append([LeaseGranted("0004f2000001", IPv4Address("127.0.1.1"), 5000.0)])
print("appended", flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("durability", ["fsync", "process"])
def test_an_appended_lease_survives_kill_9_of_the_process(tmp_path: Path, durability: str) -> None:
    path = tmp_path / "leases.sqlite"
    child = subprocess.run(
        [sys.executable, "-c", KILLED_AFTER_APPEND, str(path), durability],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=REPO,
    )

    assert child.returncode == -signal.SIGKILL, child.stdout + child.stderr
    assert child.stdout == "appended\n"
    with LeaseStore(path) as store:
        assert store.load() == [LeaseGranted(mac(1), IPv4Address("127.0.1.1"), 5000.0)]


@pytest.mark.parametrize(("durability", "synchronous"), [("fsync", 2), ("process", 1)])
def test_the_durability_level_sets_how_sqlite_syncs_the_wal(
    tmp_path: Path, durability: str, synchronous: int
) -> None:
    # https://sqlite.org/pragma.html#pragma_synchronous: 2 = FULL, 1 = NORMAL.
    with LeaseStore(tmp_path / "leases.sqlite", durability=durability) as store:  # type: ignore[arg-type]
        assert store._db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert store._db.execute("PRAGMA synchronous").fetchone() == (synchronous,)


def test_an_unknown_durability_level_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'never' is not one of"):
        LeaseStore(tmp_path / "leases.sqlite", durability="never")  # type: ignore[arg-type]


def test_a_batch_larger_than_one_insert_is_stored_whole_and_in_order(tmp_path: Path) -> None:
    events: list[LeaseEvent] = [
        LeaseGranted(mac(n), IPv4Address(f"127.0.1.{n % 250 + 1}"), NOW + n)
        for n in range(2 * ROWS_PER_INSERT + 3)
    ]
    with LeaseStore(tmp_path / "leases.sqlite") as store:
        store.append(events)

        assert store.load() == events
        assert store.rows == len(events)


# How the log was created before its CHECK constraints were rewritten as comparisons.
OLD_SCHEMA = """CREATE TABLE lease_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('granted', 'released', 'declined')),
    mac TEXT NOT NULL CHECK (length(mac) = 12),
    ip TEXT NOT NULL,
    at REAL NOT NULL,
    until REAL,
    CHECK ((kind = 'declined') = (until IS NOT NULL))
)"""


def test_a_log_of_the_older_schema_is_rebuilt_with_its_events_in_order(tmp_path: Path) -> None:
    path = tmp_path / "leases.sqlite"
    db = sqlite3.connect(path)
    with db:
        db.execute(OLD_SCHEMA)
        db.executemany(
            "INSERT INTO lease_events (kind, mac, ip, at, until) VALUES (?, ?, ?, ?, ?)",
            [
                ("granted", mac(2), "127.0.1.2", 5000.0, None),
                ("declined", mac(1), "127.0.1.1", 1000.0, 2000.0),
                ("released", mac(2), "127.0.1.2", 1500.0, None),
            ],
        )
    db.close()

    with LeaseStore(path) as store:
        events = store.load()
        (schema,) = store._db.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'lease_events'"
        ).fetchone()

    assert events == [
        LeaseGranted(mac(2), IPv4Address("127.0.1.2"), 5000.0),
        AddressDeclined(mac(1), IPv4Address("127.0.1.1"), 1000.0, 2000.0),
        LeaseReleased(mac(2), IPv4Address("127.0.1.2"), 1500.0),
    ]
    assert "AUTOINCREMENT" not in schema
    assert " IN (" not in schema


def test_the_log_refuses_a_row_no_event_can_come_from(tmp_path: Path) -> None:
    path = tmp_path / "leases.sqlite"
    LeaseStore(path).close()
    db = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="CHECK"), db:
        db.execute(
            "INSERT INTO lease_events (kind, mac, ip, at) VALUES ('stolen', ?, '127.0.1.1', 1)",
            (mac(1),),
        )
    db.close()


@pytest.mark.skipif(unavailable() is not None, reason="SO_BINDTODEVICE tests run as root")
async def test_starting_the_server_compacts_the_log(tmp_path: Path) -> None:
    path = tmp_path / "leases.sqlite"
    filled(path).close()
    store = LeaseStore(path)
    server = DhcpServer(
        "lo", "lease", CONFIG, store, host="127.0.0.1", port=0, clock=lambda: RESTART,
        owns_store=True,
    )  # fmt: skip
    await server.start()
    try:
        assert store.rows == PHONES + 2
    finally:
        await server.close()
