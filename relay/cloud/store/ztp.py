"""The SQL of the zero-touch redirect service (phones.md section 1 item 5); mixed into
`Store`.

Every row carries its tenant: a MAC is held by one tenant at a time (the
partner API's "409 registered to another account"). Profile passwords are
kept as given, because phones need them back; the partner API key is kept
only as a SHA-256 digest. `ztp_versions` counts each tenant's changes, so a
relay can ask "anything new since N?" cheaply.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS ztp_keys (
    tenant_id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ztp_profiles (
    id TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    name TEXT NOT NULL,
    url TEXT NOT NULL,
    username TEXT NOT NULL DEFAULT '',
    password TEXT NOT NULL DEFAULT '',
    created REAL NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE TABLE IF NOT EXISTS ztp_devices (
    mac TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    profile_id TEXT NOT NULL REFERENCES ztp_profiles(id),
    created REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ztp_devices_profile ON ztp_devices(profile_id);
CREATE INDEX IF NOT EXISTS ztp_devices_tenant ON ztp_devices(tenant_id);
CREATE TABLE IF NOT EXISTS ztp_versions (
    tenant_id TEXT PRIMARY KEY,
    version INTEGER NOT NULL
);
"""

Row = dict[str, Any]


class ZtpQueries:
    """ZTP keys, profiles, devices and versions; the helpers come from `Store`."""

    if TYPE_CHECKING:

        def _rows(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Row]: ...
        def _one(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Row | None: ...
        def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
        def _exec(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> int: ...
        def _insert(self, table: str, row: Row) -> None: ...

    # -- partner API keys ------------------------------------------------------

    def put_ztp_key(self, tenant_id: str, key_hash: str, now: float) -> None:
        """One key per tenant: a new one replaces (revokes) the old."""
        self._exec(
            "INSERT INTO ztp_keys(tenant_id, key_hash, created) VALUES (?, ?, ?) "
            "ON CONFLICT(tenant_id) DO UPDATE SET key_hash = excluded.key_hash, "
            "created = excluded.created",
            (tenant_id, key_hash, now),
        )

    def ztp_key_tenant(self, key_hash: str) -> str | None:
        value = self._scalar("SELECT tenant_id FROM ztp_keys WHERE key_hash = ?", (key_hash,))
        return None if value is None else str(value)

    # -- profiles --------------------------------------------------------------

    def ztp_profiles(self, tenant_id: str) -> list[Row]:
        return self._rows(
            "SELECT p.*, (SELECT count(*) FROM ztp_devices d WHERE d.profile_id = p.id) "
            "AS device_count FROM ztp_profiles p WHERE p.tenant_id = ? ORDER BY p.name",
            (tenant_id,),
        )

    def ztp_profile(self, tenant_id: str, profile_id: str) -> Row | None:
        return self._one(
            "SELECT p.*, (SELECT count(*) FROM ztp_devices d WHERE d.profile_id = p.id) "
            "AS device_count FROM ztp_profiles p WHERE p.tenant_id = ? AND p.id = ?",
            (tenant_id, profile_id),
        )

    def ztp_profile_named(self, tenant_id: str, name: str) -> Row | None:
        return self._one(
            "SELECT id FROM ztp_profiles WHERE tenant_id = ? AND name = ?", (tenant_id, name)
        )

    def ztp_profile_count(self, tenant_id: str) -> int:
        return int(
            self._scalar("SELECT count(*) FROM ztp_profiles WHERE tenant_id = ?", (tenant_id,))
        )

    def insert_ztp_profile(self, row: Row) -> None:
        self._insert("ztp_profiles", row)

    def delete_ztp_profile(self, tenant_id: str, profile_id: str) -> int:
        return self._exec(
            "DELETE FROM ztp_profiles WHERE tenant_id = ? AND id = ?", (tenant_id, profile_id)
        )

    def ztp_profile_macs(self, profile_id: str, limit: int) -> list[str]:
        return [
            r["mac"]
            for r in self._rows(
                "SELECT mac FROM ztp_devices WHERE profile_id = ? ORDER BY mac LIMIT ?",
                (profile_id, limit),
            )
        ]

    # -- devices ---------------------------------------------------------------

    def ztp_device(self, mac: str) -> Row | None:
        """The MAC's assignment under whichever tenant holds it."""
        return self._one("SELECT * FROM ztp_devices WHERE mac = ?", (mac,))

    def ztp_devices(self, tenant_id: str) -> list[Row]:
        return self._rows(
            "SELECT * FROM ztp_devices WHERE tenant_id = ? ORDER BY mac", (tenant_id,)
        )

    def ztp_device_count(self, tenant_id: str) -> int:
        return int(
            self._scalar("SELECT count(*) FROM ztp_devices WHERE tenant_id = ?", (tenant_id,))
        )

    def put_ztp_device(self, row: Row) -> None:
        """Assign, or move to another profile (the creation time is kept)."""
        self._exec(
            "INSERT INTO ztp_devices(mac, tenant_id, profile_id, created) "
            "VALUES (:mac, :tenant_id, :profile_id, :created) "
            "ON CONFLICT(mac) DO UPDATE SET profile_id = excluded.profile_id "
            "WHERE ztp_devices.tenant_id = excluded.tenant_id",
            row,
        )

    def delete_ztp_device(self, tenant_id: str, mac: str) -> int:
        return self._exec(
            "DELETE FROM ztp_devices WHERE tenant_id = ? AND mac = ?", (tenant_id, mac)
        )

    # -- the directory relays sync ---------------------------------------------

    def ztp_directory_rows(self, tenant_id: str) -> list[Row]:
        return self._rows(
            "SELECT d.mac, p.url, p.username, p.password FROM ztp_devices d "
            "JOIN ztp_profiles p ON p.id = d.profile_id WHERE d.tenant_id = ? ORDER BY d.mac",
            (tenant_id,),
        )

    def ztp_version(self, tenant_id: str) -> int:
        value = self._scalar("SELECT version FROM ztp_versions WHERE tenant_id = ?", (tenant_id,))
        return 0 if value is None else int(value)

    def bump_ztp_version(self, tenant_id: str) -> None:
        self._exec(
            "INSERT INTO ztp_versions(tenant_id, version) VALUES (?, 1) "
            "ON CONFLICT(tenant_id) DO UPDATE SET version = version + 1",
            (tenant_id,),
        )
