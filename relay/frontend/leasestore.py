"""The durable lease log: an append-only SQLite record of the lease engine's events.

RFC 2131 section 3.1 step 4 has the server commit a binding to persistent
storage before it responds with the DHCPACK: a server that forgets a lease after a crash may
hand the address to a second client while the first still uses it. The
lease engine (relay.proto.dhcp.leases) reports every change as an event; the
adapter calls `append` with them before sending the reply, and at start
rebuilds its table from `load` with `LeaseTable.restore`.

Why an event log and not a table of current leases: `restore` replays
events oldest first, and an insert-only log never loses a committed row to
a half-done update. WAL with `synchronous=FULL` makes each committed
transaction durable once `append` returns (https://sqlite.org/pragma.html
#pragma_synchronous: FULL syncs the WAL at every commit), at the cost of one
fsync per acknowledged lease, which is far below a phone fleet's DHCP rate.

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

import sqlite3
from collections.abc import Iterable
from ipaddress import IPv4Address
from pathlib import Path
from types import TracebackType

from relay.proto.dhcp.leaselog import compact
from relay.proto.dhcp.leases import AddressDeclined, LeaseEvent, LeaseGranted, LeaseReleased

_SCHEMA = """
CREATE TABLE IF NOT EXISTS lease_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('granted', 'released', 'declined')),
    mac TEXT NOT NULL CHECK (length(mac) = 12),
    ip TEXT NOT NULL,
    at REAL NOT NULL,
    until REAL,
    CHECK ((kind = 'declined') = (until IS NOT NULL))
)
"""

_INSERT = "INSERT INTO lease_events (kind, mac, ip, at, until) VALUES (?, ?, ?, ?, ?)"
_SELECT = "SELECT kind, mac, ip, at, until FROM lease_events ORDER BY id"
# A log shorter than this is never worth rewriting (a few hundred kilobytes).
COMPACT_AFTER = 10_000

Row = tuple[str, str, str, float, float | None]


class LeaseStoreError(RuntimeError):
    """The log holds a row no event can come from (edited by hand, or another program's)."""


class LeaseStore:
    """One SQLite file of lease events; `with` or close(). Not shared between threads.

    `at` holds the lease end for a grant (`LeaseGranted.expires`) and the
    time of the change for a release or a decline.
    """

    def __init__(self, path: Path, *, compact_after: int = COMPACT_AFTER) -> None:
        # Autocommit mode: every transaction is opened explicitly.
        self._db = sqlite3.connect(path, isolation_level=None)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
            (rows,) = self._db.execute("SELECT count(*) FROM lease_events").fetchone()
        except BaseException:
            self._db.close()
            raise
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
        """Commit `events` in one transaction: all of them are durable on return, or none."""
        rows = [_row(event) for event in events]
        if not rows:
            return
        with self._db:
            # `with` commits on success and rolls back on error; in autocommit
            # mode it needs the explicit BEGIN to group the inserts.
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(_INSERT, rows)
        self._rows += len(rows)

    def load(self) -> list[LeaseEvent]:
        """Every event, oldest first, as `LeaseTable.restore` replays them."""
        return [_event(row) for row in self._db.execute(_SELECT)]

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
            events = [_event(row) for row in self._db.execute(_SELECT)]
            kept = compact(events, now)
            if len(kept) < len(events):
                self._db.execute("DELETE FROM lease_events")
                self._db.executemany(_INSERT, [_row(event) for event in kept])
        self._rows = self._kept = len(kept)
        return len(kept)


def _row(event: LeaseEvent) -> Row:
    ip = str(event.ip)
    if isinstance(event, LeaseGranted):
        return ("granted", event.mac, ip, event.expires, None)
    if isinstance(event, LeaseReleased):
        return ("released", event.mac, ip, event.at, None)
    return ("declined", event.mac, ip, event.at, event.until)


def _event(row: Row) -> LeaseEvent:
    kind, mac, text, at, until = row
    try:
        ip = IPv4Address(text)
    except ValueError as exc:
        raise LeaseStoreError(f"lease log row with address {text!r}: {exc}") from exc
    if kind == "granted":
        return LeaseGranted(mac, ip, at)
    if kind == "released":
        return LeaseReleased(mac, ip, at)
    if kind == "declined" and until is not None:
        return AddressDeclined(mac, ip, at, until)
    raise LeaseStoreError(f"lease log row of unknown kind {kind!r}")
