"""SQL of relays, the registration PIN and device monitor status (cloud.md "Tenant,
relays and PIN", "Device monitor"); mixed into `Store`.

Every table is created if missing, so a data directory from before relays
existed keeps working: the PIN row is made lazily, and devices without a
status row are simply never checked.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS relays (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    secret_hash TEXT NOT NULL,
    source TEXT,
    addresses TEXT NOT NULL DEFAULT '[]',
    version TEXT NOT NULL DEFAULT '',
    uptime REAL,
    registered REAL NOT NULL,
    last_heartbeat REAL,
    download_agent TEXT NOT NULL DEFAULT 'absent',
    download_agent_version TEXT NOT NULL DEFAULT '',
    download_agent_running REAL,
    last_report_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tenant_pin (
    tenant_id TEXT PRIMARY KEY REFERENCES tenant(id) ON DELETE CASCADE,
    pin TEXT NOT NULL,
    previous_pin TEXT,
    previous_valid_until REAL,
    last_reset REAL
);
CREATE TABLE IF NOT EXISTS device_status (
    device_id TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    online INTEGER NOT NULL,
    checked REAL NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    lines TEXT NOT NULL DEFAULT '[]',
    calls TEXT NOT NULL DEFAULT '[]',
    uptime REAL,
    last_restart REAL,
    relay_id TEXT
) WITHOUT ROWID;
"""

Row = dict[str, Any]


class RelayQueries:
    """Relays, PIN and device status; the helpers come from `Store`."""

    if TYPE_CHECKING:

        def _rows(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Row]: ...
        def _one(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Row | None: ...
        def _exec(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> int: ...
        def _insert(self, table: str, row: Row) -> None: ...
        def _update(self, table: str, key: str, changes: Row) -> None: ...

    # -- PIN -------------------------------------------------------------------

    def pin_state(self, tenant_id: str) -> Row | None:
        return self._one("SELECT * FROM tenant_pin WHERE tenant_id = ?", (tenant_id,))

    def put_pin_state(self, row: Row) -> None:
        self._exec(
            "INSERT OR REPLACE INTO tenant_pin"
            "(tenant_id, pin, previous_pin, previous_valid_until, last_reset) "
            "VALUES (:tenant_id, :pin, :previous_pin, :previous_valid_until, :last_reset)",
            row,
        )

    # -- relays ----------------------------------------------------------------

    def relay(self, relay_id: str) -> Row | None:
        return self._one("SELECT * FROM relays WHERE id = ?", (relay_id,))

    def relays(self) -> list[Row]:
        return self._rows("SELECT * FROM relays ORDER BY registered, id")

    def insert_relay(self, row: Row) -> None:
        self._insert("relays", row)

    def update_relay(self, relay_id: str, changes: Row) -> None:
        self._update("relays", relay_id, changes)

    def delete_relay(self, relay_id: str) -> int:
        return self._exec("DELETE FROM relays WHERE id = ?", (relay_id,))

    # -- device status ---------------------------------------------------------

    def device_status(self, device_id: str) -> Row | None:
        return self._one("SELECT * FROM device_status WHERE device_id = ?", (device_id,))

    def put_device_status(self, row: Row) -> None:
        """Keep the newest check: a late report from a relay that no longer serves the
        device does not overwrite a fresher one."""
        self._exec(
            "INSERT INTO device_status"
            "(device_id, online, checked, reason, lines, calls, uptime, last_restart, relay_id) "
            "VALUES (:device_id, :online, :checked, :reason, :lines, :calls, :uptime, "
            ":last_restart, :relay_id) "
            "ON CONFLICT(device_id) DO UPDATE SET online = excluded.online, "
            "checked = excluded.checked, reason = excluded.reason, lines = excluded.lines, "
            "calls = excluded.calls, uptime = excluded.uptime, "
            "last_restart = excluded.last_restart, relay_id = excluded.relay_id "
            "WHERE excluded.checked >= device_status.checked",
            row,
        )

    def monitored_devices(self) -> Iterator[Row]:
        """Every device with what the online rule and the dashboard need."""
        yield from self._rows(
            "SELECT d.id, d.mac, d.type, d.model, d.site, d.firmware, d.private_ip, d.public_ip, "
            "d.last_seen, s.online AS status_online, s.checked AS status_checked "
            "FROM devices d LEFT JOIN device_status s ON s.device_id = d.id ORDER BY d.id"
        )

    def site_specific_sites(self) -> set[str]:
        return {r["name"] for r in self._rows("SELECT name FROM sites WHERE site_specific = 1")}
