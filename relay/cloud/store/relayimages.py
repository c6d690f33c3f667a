"""SQL of the tenant's relay image set and each relay's report on it (cloud.md
"Software"; docs/agent-link.md "Images"); mixed into `Store`.

Rows follow their image and their relay: deleting either deletes them (foreign
keys), so a set never names a deleted image and a revoked relay leaves nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS relay_image_set (
    position INTEGER PRIMARY KEY,
    image_id TEXT NOT NULL UNIQUE REFERENCES images(id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS relay_image_states (
    relay_id TEXT NOT NULL REFERENCES relays(id) ON DELETE CASCADE,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    progress REAL NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    updated REAL NOT NULL,
    PRIMARY KEY (relay_id, image_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS relay_image_sync (
    relay_id TEXT PRIMARY KEY REFERENCES relays(id) ON DELETE CASCADE,
    sync INTEGER NOT NULL DEFAULT 0,
    free_bytes INTEGER,
    reserve_bytes INTEGER,
    reported REAL
) WITHOUT ROWID;
"""

Row = dict[str, Any]


class RelayImageQueries:
    """The relay image set, per-relay image states and sync counters; helpers from `Store`."""

    if TYPE_CHECKING:

        def _rows(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Row]: ...
        def _one(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Row | None: ...
        def _exec(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> int: ...

    # -- the set ---------------------------------------------------------------

    def relay_set_images(self) -> list[Row]:
        """The images of the set, in set order."""
        return self._rows(
            "SELECT i.* FROM relay_image_set s JOIN images i ON i.id = s.image_id "
            "ORDER BY s.position"
        )

    def image_sizes(self, ids: Sequence[str]) -> dict[str, int]:
        """The size of each image among `ids` that exists."""
        marks = ",".join("?" * len(ids))
        rows = self._rows(f"SELECT id, size FROM images WHERE id IN ({marks})", list(ids))  # noqa: S608
        return {row["id"]: row["size"] for row in rows}

    def images_without_source(self, ids: Sequence[str]) -> set[str]:
        """The images among `ids` with neither an uploaded copy nor a URL."""
        marks = ",".join("?" * len(ids))
        sql = f"SELECT id FROM images WHERE id IN ({marks}) AND stored = 0 AND url = ''"  # noqa: S608
        return {row["id"] for row in self._rows(sql, list(ids))}

    def replace_relay_set(self, ids: Sequence[str]) -> None:
        """The new set, in order; states of images that left it go with them."""
        self._exec("DELETE FROM relay_image_set")
        for position, image_id in enumerate(ids):
            self._exec(
                "INSERT INTO relay_image_set(position, image_id) VALUES (?, ?)",
                (position, image_id),
            )
        self._exec(
            "DELETE FROM relay_image_states "
            "WHERE image_id NOT IN (SELECT image_id FROM relay_image_set)"
        )

    def remove_from_relay_set(self, image_id: str) -> int:
        self._exec("DELETE FROM relay_image_states WHERE image_id = ?", (image_id,))
        return self._exec("DELETE FROM relay_image_set WHERE image_id = ?", (image_id,))

    # -- one relay -------------------------------------------------------------

    def relay_image_states(self, relay_id: str) -> list[Row]:
        return self._rows("SELECT * FROM relay_image_states WHERE relay_id = ?", (relay_id,))

    def replace_relay_image_states(self, relay_id: str, rows: Sequence[Row]) -> None:
        """The relay's latest report replaces its previous one."""
        self._exec("DELETE FROM relay_image_states WHERE relay_id = ?", (relay_id,))
        for row in rows:
            self._exec(
                "INSERT INTO relay_image_states"
                "(relay_id, image_id, status, progress, reason, updated) "
                "VALUES (:relay_id, :image_id, :status, :progress, :reason, :updated)",
                {**row, "relay_id": relay_id},
            )

    def relay_image_sync(self, relay_id: str) -> Row | None:
        return self._one("SELECT * FROM relay_image_sync WHERE relay_id = ?", (relay_id,))

    def bump_relay_image_sync(self, relay_id: str) -> None:
        self._exec(
            "INSERT INTO relay_image_sync(relay_id, sync) VALUES (?, 1) "
            "ON CONFLICT(relay_id) DO UPDATE SET sync = sync + 1",
            (relay_id,),
        )

    def put_relay_image_disk(
        self, relay_id: str, free_bytes: int, reserve_bytes: int, reported: float
    ) -> None:
        self._exec(
            "INSERT INTO relay_image_sync(relay_id, free_bytes, reserve_bytes, reported) "
            "VALUES (?, ?, ?, ?) ON CONFLICT(relay_id) DO UPDATE SET "
            "free_bytes = excluded.free_bytes, reserve_bytes = excluded.reserve_bytes, "
            "reported = excluded.reported",
            (relay_id, free_bytes, reserve_bytes, reported),
        )
