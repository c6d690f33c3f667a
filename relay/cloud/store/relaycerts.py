"""SQL of each relay's uploaded certificate and what the relay says it serves (issue 7;
docs/agent-link.md "Certificates"); mixed into `Store`.

The private key is stored only sealed (relay.cloud.secretbox); the PFX and its password
are never stored. Both tables follow their relay: revoking it deletes its rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS relay_certificates (
    relay_id TEXT PRIMARY KEY REFERENCES relays(id) ON DELETE CASCADE,
    etag TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    not_after TEXT NOT NULL,
    chain_pem TEXT NOT NULL,
    key_sealed BLOB NOT NULL,
    fqdns TEXT NOT NULL,
    uploaded REAL NOT NULL,
    uploaded_by TEXT NOT NULL,
    delivered REAL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS relay_certificate_state (
    relay_id TEXT PRIMARY KEY REFERENCES relays(id) ON DELETE CASCADE,
    serving TEXT NOT NULL DEFAULT '',
    not_after TEXT NOT NULL DEFAULT '',
    previous TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    reported REAL
) WITHOUT ROWID;
"""

Row = dict[str, Any]


class RelayCertQueries:
    """Uploaded relay certificates and relays' certificate states; helpers from `Store`."""

    if TYPE_CHECKING:

        def _one(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Row | None: ...
        def _exec(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> int: ...

    def relay_certificate(self, relay_id: str) -> Row | None:
        return self._one("SELECT * FROM relay_certificates WHERE relay_id = ?", (relay_id,))

    def put_relay_certificate(self, row: Row) -> None:
        """The new upload replaces the relay's previous one, undelivered."""
        self._exec(
            "INSERT OR REPLACE INTO relay_certificates"
            "(relay_id, etag, fingerprint, not_after, chain_pem, key_sealed, fqdns, "
            "uploaded, uploaded_by, delivered) VALUES (:relay_id, :etag, :fingerprint, "
            ":not_after, :chain_pem, :key_sealed, :fqdns, :uploaded, :uploaded_by, NULL)",
            row,
        )

    def delete_relay_certificate(self, relay_id: str) -> int:
        return self._exec("DELETE FROM relay_certificates WHERE relay_id = ?", (relay_id,))

    def mark_relay_certificate_delivered(self, relay_id: str, etag: str, when: float) -> int:
        """The first delivery of this upload (etag) only; later fetches change nothing."""
        return self._exec(
            "UPDATE relay_certificates SET delivered = ? "
            "WHERE relay_id = ? AND etag = ? AND delivered IS NULL",
            (when, relay_id, etag),
        )

    def relay_certificate_state(self, relay_id: str) -> Row | None:
        return self._one("SELECT * FROM relay_certificate_state WHERE relay_id = ?", (relay_id,))

    def put_relay_certificate_state(self, relay_id: str, state: Row, reported: float) -> None:
        self._exec(
            "INSERT OR REPLACE INTO relay_certificate_state"
            "(relay_id, serving, not_after, previous, error, reported) "
            "VALUES (:relay_id, :serving, :not_after, :previous, :error, :reported)",
            {**state, "relay_id": relay_id, "reported": reported},
        )

    def clear_relay_certificate_error(self, relay_id: str) -> None:
        """An error reported before this delivery was about another certificate."""
        self._exec("UPDATE relay_certificate_state SET error = '' WHERE relay_id = ?", (relay_id,))
