"""All SQL of the control plane, in one place (architecture.md "Storage").

SQLite in WAL mode through sqlite-utils. The store is owned by one worker
thread (see `relay.cloud.worker`), so it needs no locks. Callers group writes
with `transaction()`, so that a rejected CSV row or a failed edit changes
nothing. Moving to PostgreSQL later means replacing this module only.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import sqlite_utils

from relay.cloud.rules.monitor import CONTACT_WINDOW
from relay.cloud.store import relaycerts, relayimages, relays, tasks, ztp

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tenant (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    hostname TEXT NOT NULL,
    prov_user TEXT,
    prov_password_hash TEXT,
    download_path_enterprise TEXT NOT NULL DEFAULT '',
    download_path_internet TEXT NOT NULL DEFAULT '',
    polling_start TEXT NOT NULL DEFAULT '03:00',
    polling_end TEXT NOT NULL DEFAULT '05:00',
    device_admin_password TEXT NOT NULL DEFAULT '',
    auto_add INTEGER NOT NULL DEFAULT 1,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'readonly')),
    hash TEXT NOT NULL UNIQUE,
    created REAL NOT NULL,
    last_used REAL,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS sites (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    location TEXT NOT NULL DEFAULT '',
    download_path TEXT NOT NULL DEFAULT '',
    site_specific INTEGER NOT NULL DEFAULT 0,
    builtin INTEGER NOT NULL DEFAULT 0,
    subnets TEXT NOT NULL DEFAULT '[]',
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS groups (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    default_rank INTEGER,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    mac TEXT UNIQUE,
    serial TEXT,
    type TEXT,
    model TEXT,
    name TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    private_ip TEXT,
    public_ip TEXT,
    public_ip_num INTEGER,
    site TEXT,
    firmware TEXT,
    source TEXT NOT NULL,
    created REAL NOT NULL,
    last_seen REAL,
    last_provisioned REAL,
    last_result TEXT,
    last_error TEXT,
    user_agent TEXT
);
CREATE INDEX IF NOT EXISTS devices_site ON devices(site);
CREATE INDEX IF NOT EXISTS devices_model ON devices(model);
CREATE INDEX IF NOT EXISTS devices_public_ip ON devices(public_ip_num);
CREATE TABLE IF NOT EXISTS device_groups (
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    group_name TEXT NOT NULL REFERENCES groups(name) ON DELETE CASCADE ON UPDATE CASCADE,
    rank INTEGER NOT NULL,
    PRIMARY KEY (device_id, group_name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS device_groups_group ON device_groups(group_name);
CREATE TABLE IF NOT EXISTS profiles (
    name TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('standard', 'user', 'software', 'imported')),
    description TEXT NOT NULL DEFAULT '',
    software TEXT,
    owner_device TEXT REFERENCES devices(id) ON DELETE CASCADE,
    modified REAL NOT NULL,
    modified_by TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS profiles_owner ON profiles(owner_device);
CREATE TABLE IF NOT EXISTS profile_params (
    profile TEXT NOT NULL REFERENCES profiles(name) ON DELETE CASCADE ON UPDATE CASCADE,
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (profile, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bindings (
    container TEXT NOT NULL,
    key TEXT NOT NULL,
    rank INTEGER NOT NULL,
    profile TEXT NOT NULL REFERENCES profiles(name) ON DELETE CASCADE ON UPDATE CASCADE,
    PRIMARY KEY (container, key, profile)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS bindings_profile ON bindings(profile);
CREATE TABLE IF NOT EXISTS files (
    kind TEXT NOT NULL CHECK (kind IN ('resource', 'device')),
    name TEXT NOT NULL,
    directory TEXT NOT NULL DEFAULT '',
    device_id TEXT REFERENCES devices(id) ON DELETE CASCADE,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (kind, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS profile_files (
    profile TEXT NOT NULL REFERENCES profiles(name) ON DELETE CASCADE ON UPDATE CASCADE,
    parameter TEXT NOT NULL,
    kind TEXT NOT NULL,
    file TEXT NOT NULL,
    PRIMARY KEY (profile, parameter)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS profile_files_file ON profile_files(kind, file);
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    version TEXT NOT NULL,
    filename TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    url TEXT NOT NULL DEFAULT '',
    stored INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
"""

Row = dict[str, Any]

# relay.cloud.rules.monitor.is_online in SQL, so the list can filter and page by status;
# the parameter is `now - CONTACT_WINDOW`.
_ONLINE_SQL = (
    "CASE WHEN s.checked IS NOT NULL AND (d.last_seen IS NULL OR d.last_seen <= s.checked) "
    "THEN s.online = 1 ELSE coalesce(d.last_seen > ?, 0) END"
)


@dataclass(frozen=True, slots=True)
class DeviceListQuery:
    """Search and filters of the device list (cloud.md "Device monitor", "Lists")."""

    search: str = ""
    site: str | None = None
    group: str | None = None
    model: str | None = None
    type: str | None = None
    firmware: str | None = None
    status: str | None = None
    offset: int = 0
    limit: int = 100


class Store(
    relays.RelayQueries,
    tasks.TaskQueries,
    ztp.ZtpQueries,
    relayimages.RelayImageQueries,
    relaycerts.RelayCertQueries,
):
    """The control plane's database."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=5000")
        self._conn = conn
        self.db = sqlite_utils.Database(conn)
        conn.executescript(_SCHEMA)
        conn.executescript(relays.SCHEMA)
        conn.executescript(tasks.SCHEMA)
        conn.executescript(ztp.SCHEMA)
        conn.executescript(relayimages.SCHEMA)
        conn.executescript(relaycerts.SCHEMA)
        conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        tables = [self.db.table(name) for name in self.db.table_names()]
        self._schema = {t.name: set(t.columns_dict) for t in tables}
        self._pk = {t.name: t.pks[0] for t in tables}

    def close(self) -> None:
        self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing; a nested block is a savepoint, so one bad row undoes only itself."""
        with self.db.atomic():
            yield

    def _insert(self, table: str, row: Row) -> None:
        """Plain INSERT: sqlite-utils' insert re-reads the schema on every call, which made
        a 10,000-row CSV import three times slower."""
        columns = self._columns(table, row)
        marks = ",".join("?" * len(columns))
        self._conn.execute(
            f"INSERT INTO {table} ({','.join(columns)}) VALUES ({marks})",  # noqa: S608
            [row[c] for c in columns],
        )

    def _update(self, table: str, key: str, changes: Row) -> None:
        """Plain UPDATE by primary key (every table here is keyed by `id` or `name`)."""
        columns = self._columns(table, changes)
        if not columns:
            return
        pk = self._pk[table]
        assignments = ",".join(f"{c} = ?" for c in columns)
        self._conn.execute(
            f"UPDATE {table} SET {assignments} WHERE {pk} = ?",  # noqa: S608
            [*(changes[c] for c in columns), key],
        )

    def _columns(self, table: str, row: Row) -> list[str]:
        known = self._schema[table]
        unknown = set(row) - known
        if unknown:
            raise ValueError(f"{table} has no column(s) {sorted(unknown)}")
        return list(row)

    def _rows(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Row]:
        cur = self._conn.execute(sql, params)
        cols = [c[0] for c in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]

    def _one(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> Row | None:
        rows = self._rows(sql, params)
        return rows[0] if rows else None

    def _scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self._conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def _exec(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> int:
        return self._conn.execute(sql, params).rowcount

    # -- tenant and tokens -------------------------------------------------

    def tenant(self) -> Row | None:
        return self._one("SELECT * FROM tenant LIMIT 1")

    def insert_tenant(self, row: Row) -> None:
        self._insert("tenant", row)

    def update_tenant(self, tenant_id: str, changes: Row) -> None:
        self._update("tenant", tenant_id, changes)

    def insert_token(self, row: Row) -> None:
        self._insert("tokens", row)

    def token_by_hash(self, digest: str) -> Row | None:
        return self._one("SELECT * FROM tokens WHERE hash = ?", (digest,))

    def tokens(self) -> list[Row]:
        return self._rows(
            "SELECT id, name, role, created, last_used, revoked FROM tokens ORDER BY created"
        )

    def touch_token(self, token_id: str, now: float) -> None:
        self._exec("UPDATE tokens SET last_used = ? WHERE id = ?", (now, token_id))

    def revoke_token(self, token_id: str) -> int:
        return self._exec("UPDATE tokens SET revoked = 1 WHERE id = ? AND revoked = 0", (token_id,))

    # -- sites -----------------------------------------------------------

    def site(self, name: str) -> Row | None:
        return self._one("SELECT * FROM sites WHERE name = ?", (name,))

    def sites(self) -> list[Row]:
        return self._rows(
            "SELECT s.*, (SELECT count(*) FROM devices d WHERE d.site = s.name) AS device_count "
            "FROM sites s ORDER BY s.builtin DESC, s.name"
        )

    def site_device_count(self, name: str) -> int:
        return int(self._scalar("SELECT count(*) FROM devices WHERE site = ?", (name,)))

    def site_count(self) -> int:
        """Sites an administrator added (the built-in Internet and Intranet do not count)."""
        return int(self._scalar("SELECT count(*) FROM sites WHERE builtin = 0"))

    def insert_site(self, row: Row) -> None:
        self._insert("sites", row)

    def update_site(self, name: str, changes: Row) -> None:
        self._update("sites", name, changes)

    def rename_site(self, old: str, new: str) -> None:
        self._exec("UPDATE sites SET name = ? WHERE name = ?", (new, old))
        self._exec("UPDATE devices SET site = ? WHERE site = ?", (new, old))
        self._rename_binding_key("site", old, new)

    def delete_site(self, name: str) -> int:
        self._exec("DELETE FROM bindings WHERE container = 'site' AND key = ?", (name,))
        return self._exec("DELETE FROM sites WHERE name = ?", (name,))

    def subnets_of_all_sites(self) -> list[tuple[str, str]]:
        return [
            (r[0], r[1]) for r in self._conn.execute("SELECT name, subnets FROM sites").fetchall()
        ]

    def devices_addresses(
        self, ranges: Sequence[tuple[int, int]] | None = None
    ) -> list[tuple[str, str | None, str | None, str | None]]:
        """(id, public_ip, private_ip, site) of the devices whose public address lies in
        one of the inclusive integer `ranges` (all devices if None), to re-home them."""
        sql = "SELECT id, public_ip, private_ip, site FROM devices"
        if ranges is None:
            return [(r[0], r[1], r[2], r[3]) for r in self._conn.execute(sql)]
        out: list[tuple[str, str | None, str | None, str | None]] = []
        for low, high in ranges:
            out += [
                (r[0], r[1], r[2], r[3])
                for r in self._conn.execute(
                    sql + " WHERE public_ip_num BETWEEN ? AND ?", (low, high)
                )
            ]
        return out

    def set_device_sites(self, changes: Iterable[tuple[str | None, str]]) -> None:
        self._conn.executemany("UPDATE devices SET site = ? WHERE id = ?", changes)

    # -- groups ------------------------------------------------------------

    def group(self, name: str) -> Row | None:
        return self._one("SELECT * FROM groups WHERE name = ?", (name,))

    def groups(self) -> list[Row]:
        return self._rows(
            "SELECT g.*, (SELECT count(*) FROM device_groups dg WHERE dg.group_name = g.name) "
            "AS device_count FROM groups g ORDER BY g.name"
        )

    def group_names(self) -> set[str]:
        return {r[0] for r in self._conn.execute("SELECT name FROM groups")}

    def insert_group(self, row: Row) -> None:
        self._insert("groups", row)

    def update_group(self, name: str, changes: Row) -> None:
        new = changes.get("name", name)
        self._update("groups", name, changes)
        if new != name:
            self._rename_binding_key("group", name, new)

    def delete_group(self, name: str) -> int:
        self._exec("DELETE FROM bindings WHERE container = 'group' AND key = ?", (name,))
        return self._exec("DELETE FROM groups WHERE name = ?", (name,))

    def default_groups(self) -> list[str]:
        return [
            r[0]
            for r in self._conn.execute(
                "SELECT name FROM groups WHERE default_rank IS NOT NULL ORDER BY default_rank"
            )
        ]

    def set_default_groups(self, names: Sequence[str]) -> None:
        self._exec("UPDATE groups SET default_rank = NULL")
        self._conn.executemany(
            "UPDATE groups SET default_rank = ? WHERE name = ?",
            [(i, n) for i, n in enumerate(names)],
        )

    def group_members(self, name: str) -> list[str]:
        return [
            r[0]
            for r in self._conn.execute(
                "SELECT device_id FROM device_groups WHERE group_name = ? ORDER BY device_id",
                (name,),
            )
        ]

    def set_group_top_priority(self, name: str) -> None:
        """Put the group first for every member, keeping the others' order."""
        self._exec(
            "UPDATE device_groups SET rank = rank + 1 WHERE device_id IN "
            "(SELECT device_id FROM device_groups WHERE group_name = ?)",
            (name,),
        )
        self._exec(
            "UPDATE device_groups SET rank = (SELECT min(rank) - 1 FROM device_groups d2 "
            "WHERE d2.device_id = device_groups.device_id) WHERE group_name = ?",
            (name,),
        )

    # -- devices -----------------------------------------------------------

    def device(self, device_id: str) -> Row | None:
        return self._one("SELECT * FROM devices WHERE id = ?", (device_id,))

    def device_by_mac(self, mac: str) -> Row | None:
        return self._one("SELECT * FROM devices WHERE mac = ?", (mac,))

    def devices_by_ids(self, ids: Sequence[str]) -> dict[str, Row]:
        out: dict[str, Row] = {}
        for start in range(0, len(ids), 500):
            chunk = list(ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            for row in self._rows(f"SELECT * FROM devices WHERE id IN ({marks})", chunk):  # noqa: S608
                out[row["id"]] = row
        return out

    def device_count(self) -> int:
        return int(self._scalar("SELECT count(*) FROM devices"))

    def insert_device(self, row: Row) -> None:
        self._insert("devices", _with_ip_number(row))

    def update_device(self, device_id: str, changes: Row) -> None:
        self._update("devices", device_id, _with_ip_number(changes))

    def delete_device(self, device_id: str) -> int:
        self._exec("DELETE FROM bindings WHERE container = 'device' AND key = ?", (device_id,))
        self._exec("DELETE FROM profiles WHERE owner_device = ?", (device_id,))
        return self._exec("DELETE FROM devices WHERE id = ?", (device_id,))

    def list_devices(self, query: DeviceListQuery, now: float) -> tuple[int, list[Row]]:
        """One page of matching devices, each with its last monitor check (`status_online`,
        `status_checked`) so the caller can apply the online rule."""
        where: list[str] = []
        params: list[Any] = []
        if query.search:
            like = "%" + query.search.lower().replace("\\", "\\\\").replace("%", "\\%") + "%"
            like = like.replace("_", "\\_")
            fields = (
                "id",
                "mac",
                "serial",
                "name",
                "description",
                "model",
                "type",
                "site",
                "private_ip",
                "public_ip",
                "firmware",
            )
            where.append(
                "("
                + " OR ".join(f"lower(coalesce(d.{f}, '')) LIKE ? ESCAPE '\\'" for f in fields)
                + ")"
            )
            params += [like] * len(fields)
        for column in ("site", "model", "type", "firmware"):
            value = getattr(query, column)
            if value is not None:
                where.append(f"d.{column} = ?")
                params.append(value)
        if query.group is not None:
            where.append("d.id IN (SELECT device_id FROM device_groups WHERE group_name = ?)")
            params.append(query.group)
        if query.status is not None:
            where.append(f"({_ONLINE_SQL}) = ?")
            params += [now - CONTACT_WINDOW, int(query.status == "online")]
        clause = (" WHERE " + " AND ".join(where)) if where else ""
        source = "devices d LEFT JOIN device_status s ON s.device_id = d.id"
        total = int(self._scalar(f"SELECT count(*) FROM {source}{clause}", params))  # noqa: S608
        rows = self._rows(
            "SELECT d.*, s.online AS status_online, s.checked AS status_checked "  # noqa: S608
            f"FROM {source}{clause} ORDER BY d.id LIMIT ? OFFSET ?",
            [*params, query.limit, query.offset],
        )
        return total, rows

    def all_devices(self) -> Iterator[Row]:
        cur = self._conn.execute("SELECT * FROM devices ORDER BY id")
        cols = [c[0] for c in cur.description]
        for r in cur:
            yield dict(zip(cols, r, strict=True))

    def device_groups(self, device_id: str) -> list[str]:
        return [
            r[0]
            for r in self._conn.execute(
                "SELECT group_name FROM device_groups WHERE device_id = ? ORDER BY rank",
                (device_id,),
            )
        ]

    def all_device_groups(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for device_id, group in self._conn.execute(
            "SELECT device_id, group_name FROM device_groups ORDER BY device_id, rank"
        ):
            out.setdefault(device_id, []).append(group)
        return out

    def set_device_groups(self, device_id: str, groups: Sequence[str]) -> None:
        self._exec("DELETE FROM device_groups WHERE device_id = ?", (device_id,))
        self._conn.executemany(
            "INSERT INTO device_groups(device_id, group_name, rank) VALUES (?, ?, ?)",
            [(device_id, g, i) for i, g in enumerate(groups)],
        )

    def add_group_members(self, name: str, device_ids: Sequence[str]) -> None:
        """Append the group last in each device's order, if not there already."""
        self._conn.executemany(
            "INSERT OR IGNORE INTO device_groups(device_id, group_name, rank) VALUES "
            "(?, ?, (SELECT coalesce(max(rank), -1) + 1 FROM device_groups WHERE device_id = ?))",
            [(d, name, d) for d in device_ids],
        )

    def remove_group_members(self, name: str, device_ids: Sequence[str]) -> None:
        self._conn.executemany(
            "DELETE FROM device_groups WHERE group_name = ? AND device_id = ?",
            [(name, d) for d in device_ids],
        )

    # -- profiles ----------------------------------------------------------

    def profile(self, name: str) -> Row | None:
        return self._one("SELECT * FROM profiles WHERE name = ?", (name,))

    def profiles(self, kind: str | None = None) -> list[Row]:
        if kind is None:
            return self._rows("SELECT * FROM profiles ORDER BY name")
        return self._rows("SELECT * FROM profiles WHERE kind = ? ORDER BY name", (kind,))

    def profile_names(self) -> set[str]:
        return {r[0] for r in self._conn.execute("SELECT name FROM profiles")}

    def insert_profile(self, row: Row) -> None:
        self._insert("profiles", row)

    def update_profile(self, name: str, changes: Row) -> None:
        self._update("profiles", name, changes)

    def delete_profile(self, name: str) -> int:
        return self._exec("DELETE FROM profiles WHERE name = ?", (name,))

    def parameters(self, profile: str) -> dict[str, str]:
        return {
            r[0]: r[1]
            for r in self._conn.execute(
                "SELECT name, value FROM profile_params WHERE profile = ? ORDER BY seq", (profile,)
            )
        }

    def all_parameters(self) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for profile, name, value in self._conn.execute(
            "SELECT profile, name, value FROM profile_params ORDER BY profile, seq"
        ):
            out.setdefault(profile, {})[name] = value
        return out

    def set_parameters(self, profile: str, parameters: Mapping[str, str]) -> None:
        self._exec("DELETE FROM profile_params WHERE profile = ?", (profile,))
        self._conn.executemany(
            "INSERT INTO profile_params(profile, seq, name, value) VALUES (?, ?, ?, ?)",
            [(profile, i, n, v) for i, (n, v) in enumerate(parameters.items())],
        )

    def csv_profiles(self) -> dict[str, dict[str, str]]:
        """Parameters of every user-imported profile, by owner device."""
        out: dict[str, dict[str, str]] = {}
        for owner, name, value in self._conn.execute(
            "SELECT p.owner_device, pp.name, pp.value FROM profiles p "
            "JOIN profile_params pp ON pp.profile = p.name "
            "WHERE p.kind = 'imported' ORDER BY p.owner_device, pp.seq"
        ):
            out.setdefault(owner, {})[name] = value
        return out

    def csv_parameter_spellings(self) -> dict[str, str]:
        """casefolded name -> the spelling CSV profiles use."""
        return {
            r[0].casefold(): r[0]
            for r in self._conn.execute(
                "SELECT DISTINCT pp.name FROM profile_params pp JOIN profiles p "
                "ON p.name = pp.profile WHERE p.kind = 'imported' ORDER BY pp.name DESC"
            )
        }

    # -- bindings ------------------------------------------------------------

    def binding(self, container: str, key: str) -> list[str]:
        return [
            r[0]
            for r in self._conn.execute(
                "SELECT profile FROM bindings WHERE container = ? AND key = ? ORDER BY rank",
                (container, key),
            )
        ]

    def all_bindings(self) -> dict[tuple[str, str], list[str]]:
        out: dict[tuple[str, str], list[str]] = {}
        for container, key, profile in self._conn.execute(
            "SELECT container, key, profile FROM bindings ORDER BY container, key, rank"
        ):
            out.setdefault((container, key), []).append(profile)
        return out

    def binding_keys(self) -> list[tuple[str, str, int]]:
        return [
            (r[0], r[1], r[2])
            for r in self._conn.execute(
                "SELECT container, key, count(*) FROM bindings GROUP BY container, key "
                "ORDER BY container, key"
            )
        ]

    def bindings_of_profile(self, profile: str) -> list[tuple[str, str]]:
        return [
            (r[0], r[1])
            for r in self._conn.execute(
                "SELECT container, key FROM bindings WHERE profile = ? ORDER BY container, key",
                (profile,),
            )
        ]

    def set_binding(self, container: str, key: str, profiles: Sequence[str]) -> None:
        self._exec("DELETE FROM bindings WHERE container = ? AND key = ?", (container, key))
        self._conn.executemany(
            "INSERT INTO bindings(container, key, rank, profile) VALUES (?, ?, ?, ?)",
            [(container, key, i, p) for i, p in enumerate(profiles)],
        )

    def _rename_binding_key(self, container: str, old: str, new: str) -> None:
        self._exec(
            "UPDATE bindings SET key = ? WHERE container = ? AND key = ?", (new, container, old)
        )

    # -- resource and device files ----------------------------------------------

    def file(self, kind: str, name: str) -> Row | None:
        return self._one("SELECT * FROM files WHERE kind = ? AND name = ?", (kind, name))

    def files(self, kind: str, device_id: str | None = None) -> list[Row]:
        if device_id is None:
            return self._rows("SELECT * FROM files WHERE kind = ? ORDER BY name", (kind,))
        return self._rows(
            "SELECT * FROM files WHERE kind = ? AND device_id = ? ORDER BY name", (kind, device_id)
        )

    def put_file(self, row: Row) -> None:
        self._exec("DELETE FROM files WHERE kind = ? AND name = ?", (row["kind"], row["name"]))
        self._insert("files", row)

    def delete_file(self, kind: str, name: str) -> int:
        return self._exec("DELETE FROM files WHERE kind = ? AND name = ?", (kind, name))

    def bind_file(self, profile: str, parameter: str, kind: str, file: str) -> None:
        self._exec(
            "INSERT OR REPLACE INTO profile_files(profile, parameter, kind, file) "
            "VALUES (?, ?, ?, ?)",
            (profile, parameter, kind, file),
        )

    def profile_files(self, profile: str) -> list[Row]:
        return self._rows(
            "SELECT parameter, kind, file FROM profile_files WHERE profile = ? ORDER BY parameter",
            (profile,),
        )

    def file_users(self, kind: str, file: str) -> list[Row]:
        """Profile parameters that still point at a file (bound and not edited since)."""
        return self._rows(
            "SELECT pf.profile, pf.parameter FROM profile_files pf JOIN profile_params pp "
            "ON pp.profile = pf.profile AND pp.name = pf.parameter AND pp.value = pf.file "
            "WHERE pf.kind = ? AND pf.file = ? ORDER BY pf.profile",
            (kind, file),
        )

    # -- images --------------------------------------------------------------

    def image(self, image_id: str) -> Row | None:
        return self._one("SELECT * FROM images WHERE id = ?", (image_id,))

    def images(self) -> list[Row]:
        return self._rows("SELECT * FROM images ORDER BY model, version")

    def insert_image(self, row: Row) -> None:
        self._insert("images", row)

    def image_by_sha256(self, sha256: str) -> Row | None:
        return self._one("SELECT * FROM images WHERE sha256 = ? AND stored = 1", (sha256,))

    def delete_image(self, image_id: str) -> int:
        return self._exec("DELETE FROM images WHERE id = ?", (image_id,))


def _with_ip_number(row: Row) -> Row:
    """Keep the indexed numeric copy of public_ip in step (re-homing looks devices up by it)."""
    if "public_ip" not in row:
        return row
    ip = row["public_ip"]
    return {**row, "public_ip_num": int(IPv4Address(ip)) if ip else None}


def dumps(value: object) -> str:
    """JSON for columns that hold structures (site subnets)."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
