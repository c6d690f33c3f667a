"""The durable lease log: an append-only SQLite record of the lease engine's events.

RFC 2131 section 3.1 step 4 has the server commit a binding to persistent
storage before it responds with the DHCPACK: a server that forgets a lease after a crash may
hand the address to a second client while the first still uses it. The
lease engine (relay.proto.dhcp.leases) reports every change as an event; the
adapter has them appended before sending the reply, and at start rebuilds
its table from `load` with `LeaseTable.restore`.

Why an event log and not a table of current leases: `restore` replays
events oldest first, and an insert-only log never loses a committed row to
a half-done update.

Durability (`dhcp_durability`), both in WAL mode
(https://sqlite.org/pragma.html#pragma_synchronous, https://sqlite.org/wal.html):
- "fsync" (the default), `synchronous=FULL`: the WAL is synced at every
  commit, so a committed lease survives a power cut too. A power cut is
  the very event after which a whole fleet boots at once, and the phones
  on a battery-backed switch keep using their leases meanwhile;
- "process", `synchronous=NORMAL`: a commit is written to the WAL file but
  not synced; it survives the process being killed (kill -9, the OOM
  killer), since the data is in the kernel's page cache, but not a power
  cut or a kernel crash. This is what Kea's memfile back end gives (it
  appends to its CSV file without fsync).
Either way the server commits a whole pass's lease changes in one
transaction (relay/frontend/dhcp.py), so one fsync covers all of them.

Schema: the CHECK constraints keep rows no event can come from out of the
log. They are written as comparisons: an `IN (...)` list made SQLite build
a temporary b-tree for every row inserted, tripling the cost of an insert.
A log created with the older schema (that `IN` list, AUTOINCREMENT) is
rebuilt in the current one when opened, in one transaction.

Compaction keeps the log from growing forever (phones renew twice per lease
time, each renewal one row): `compact` replaces the log by the events that
still matter (relay.proto.dhcp.leaselog) in ONE transaction, DELETE and
INSERTs together, so a crash in the middle leaves the whole old log (the
transaction never committed) or the whole new one, and never loses a granted
lease. It runs at start and then whenever the log has doubled since the last
compaction (and holds at least `compact_after` rows): the rewrite costs time
in proportion to the log, so doubling keeps its cost per appended event
constant, and the hot path only ever appends.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Iterable
from ipaddress import IPv4Address
from pathlib import Path
from types import TracebackType
from typing import Literal, get_args

from relay.proto.dhcp.leaselog import compact
from relay.proto.dhcp.leases import AddressDeclined, LeaseEvent, LeaseGranted, LeaseReleased

# As stored in sqlite_master (which keeps the statement without IF NOT EXISTS).
_TABLE = """CREATE TABLE lease_events (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind = 'granted' OR kind = 'released' OR kind = 'declined'),
    mac TEXT NOT NULL CHECK (length(mac) = 12),
    ip TEXT NOT NULL,
    at REAL NOT NULL,
    until REAL,
    CHECK ((kind = 'declined') = (until IS NOT NULL))
)"""
_INSERT = "INSERT INTO lease_events (kind, mac, ip, at, until) VALUES (?, ?, ?, ?, ?)"
# Rows per INSERT statement when appending: one statement of many rows costs
# SQLite and sqlite3 less than as many statements of one row. Every size up
# to this one is a distinct statement kept in sqlite3's statement cache (128
# by default).
ROWS_PER_INSERT = 64
_SELECT = "SELECT kind, mac, ip, at, until FROM lease_events ORDER BY id"
_COPY_OLD = (
    "INSERT INTO lease_events (kind, mac, ip, at, until) "
    "SELECT kind, mac, ip, at, until FROM lease_events_old ORDER BY id"
)
# A log shorter than this is never worth rewriting (a few hundred kilobytes).
COMPACT_AFTER = 10_000

Row = tuple[str, str, str, float, float | None]
Durability = Literal["fsync", "process"]
_LEVELS: dict[str, Durability] = {level: level for level in get_args(Durability)}
_SYNCHRONOUS: dict[Durability, str] = {"fsync": "FULL", "process": "NORMAL"}


class LeaseStoreError(RuntimeError):
    """The log holds a row no event can come from (edited by hand, or another program's)."""


class LeaseStore:
    """One SQLite file of lease events; `with` or close(). Not shared between threads.

    `at` holds the lease end for a grant (`LeaseGranted.expires`) and the
    time of the change for a release or a decline.
    """

    def __init__(
        self,
        path: Path,
        *,
        compact_after: int = COMPACT_AFTER,
        durability: Durability = "fsync",
    ) -> None:
        durability = durability_level(durability)
        # Autocommit mode: every transaction is opened explicitly.
        self._db = sqlite3.connect(path, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={_SYNCHRONOUS[durability]}")
            _create_or_upgrade(self._db)
            (rows,) = self._db.execute("SELECT count(*) FROM lease_events").fetchone()
        except BaseException:
            self._db.close()
            raise
        self.durability = durability
        self._compact_after = compact_after
        self._rows = int(rows)
        self._kept = 0

    def __enter__(self) -> LeaseStore:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the database; committed events are already on disk."""
        self._db.close()

    def append(self, events: Iterable[LeaseEvent]) -> None:
        """Commit `events` in one transaction: all of them are durable on return, or none.

        Durable as `durability` says: against a process crash always, and
        against a power cut with "fsync".
        """
        rows = [_row(event) for event in events]
        if not rows:
            return
        with self._db:
            # `with` commits on success and rolls back on error; in autocommit
            # mode it needs the explicit BEGIN to group the inserts.
            self._db.execute("BEGIN IMMEDIATE")
            for start in range(0, len(rows), ROWS_PER_INSERT):
                chunk = rows[start : start + ROWS_PER_INSERT]
                self._db.execute(_insert_rows(len(chunk)), [v for row in chunk for v in row])
        self._rows += len(rows)

    def load(self) -> list[LeaseEvent]:
        """Every event, oldest first, as `LeaseTable.restore` replays them."""
        return _events(self._db.execute(_SELECT))

    @property
    def rows(self) -> int:
        """The events in the log now."""
        return self._rows

    @property
    def compaction_due(self) -> bool:
        """Whether the log has doubled since it was last compacted (and is long enough)."""
        return self._rows >= max(self._compact_after, 2 * self._kept)

    def compact(self, now: float) -> int:
        """Replace the log by the events that still matter at `now`; the rows kept.

        One transaction: the read, the DELETE and the INSERTs commit together
        or not at all, and BEGIN IMMEDIATE keeps any other writer out between
        the read and the rewrite.
        """
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            events = _events(self._db.execute(_SELECT))
            kept = compact(events, now)
            if len(kept) < len(events):
                self._db.execute("DELETE FROM lease_events")
                self._db.executemany(_INSERT, [_row(event) for event in kept])
        self._rows = self._kept = len(kept)
        return len(kept)


@functools.cache
def _insert_rows(count: int) -> str:
    """One INSERT of `count` rows (1 to ROWS_PER_INSERT), placeholders only."""
    return _INSERT + ", (?, ?, ?, ?, ?)" * (count - 1)


def _create_or_upgrade(db: sqlite3.Connection) -> None:
    """Create the table, or rebuild one of an older schema with its rows in their order."""
    found = db.execute("SELECT sql FROM sqlite_master WHERE name = 'lease_events'").fetchone()
    if found is None:
        db.execute(_TABLE)
        return
    if found[0] == _TABLE:
        return
    with db:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ALTER TABLE lease_events RENAME TO lease_events_old")
        db.execute(_TABLE)
        db.execute(_COPY_OLD)
        db.execute("DROP TABLE lease_events_old")


def durability_level(name: str) -> Durability:
    """The durability level called `name` ("fsync" or "process"); ValueError for any other."""
    try:
        return _LEVELS[name]
    except KeyError:
        raise ValueError(f"lease log durability {name!r} is not one of {sorted(_LEVELS)}") from None


def _row(event: LeaseEvent) -> Row:
    ip = str(event.ip)
    if isinstance(event, LeaseGranted):
        return ("granted", event.mac, ip, event.expires, None)
    if isinstance(event, LeaseReleased):
        return ("released", event.mac, ip, event.at, None)
    return ("declined", event.mac, ip, event.at, event.until)


def _events(rows: Iterable[Row]) -> list[LeaseEvent]:
    """The events of `rows`, oldest first.

    A log holds the few addresses of its pools many times over: each is
    parsed once per call, not once per row (parsing one costs more than the
    rest of the row).
    """
    addresses: dict[str, IPv4Address] = {}
    events: list[LeaseEvent] = []
    for kind, mac, text, at, until in rows:
        ip = addresses.get(text)
        if ip is None:
            try:
                ip = addresses[text] = IPv4Address(text)
            except ValueError as exc:
                raise LeaseStoreError(f"lease log row with address {text!r}: {exc}") from exc
        if kind == "granted":
            events.append(LeaseGranted(mac, ip, at))
        elif kind == "released":
            events.append(LeaseReleased(mac, ip, at))
        elif kind == "declined" and until is not None:
            events.append(AddressDeclined(mac, ip, at, until))
        else:
            raise LeaseStoreError(f"lease log row of unknown kind {kind!r}")
    return events
