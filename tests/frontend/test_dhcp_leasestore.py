"""Compaction of the SQLite lease log: shorter, the same leases, and nothing lost to a crash.

The crash tests run the compaction in a child process that kills itself
(SIGKILL, as the OOM killer or a power cut would stop it) inside the
compaction's transaction, then reopen the log in this process.
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
from relay.frontend.leasestore import LeaseStore
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

where, steps = sys.argv[2], int(sys.argv[3])

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

store = filled(Path(sys.argv[1]))
store._db = Crashing(store._db)
store.compact(RESTART)
print("compaction finished without a crash")
"""


@pytest.mark.parametrize(
    ("where", "steps"), [("after-delete", 0), ("inserting", 50), ("inserting", 5000)]
)
def test_a_crash_inside_the_compaction_loses_no_granted_lease(
    tmp_path: Path, where: str, steps: int
) -> None:
    path = tmp_path / "leases.sqlite"
    child = subprocess.run(
        [sys.executable, "-c", CRASHING_CHILD, str(path), where, str(steps)],
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
