"""Sites: subnets, the default Internet and Intranet sites, matching, CSV import
(cloud.md "Sites")."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from ipaddress import IPv4Network
from typing import Any

from relay.cloud.context import Context, conflict, not_found, subnets_from_json, subnets_to_json
from relay.cloud.imports import ImportReport, read_csv
from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.names import check_name
from relay.cloud.rules.sites import (
    INTERNET,
    INTRANET,
    MAX_SITES,
    PublicSubnet,
    parse_cidr,
    parse_ip,
    validate_site_subnets,
)
from relay.cloud.rules.sites_csv import (
    MAX_SITE_CSV_BYTES,
    MAX_SITE_ROWS,
    SiteRecord,
    parse_site_rows,
)
from relay.cloud.store.store import dumps

MAX_TEXT = 512
_DOWNLOAD_PATH = re.compile(r"(https?|ftps?)://[^\s\\]{1,240}")
# Until edited, the Intranet site's public subnet is all zeros (0.0.0.0/32): it matches no one.
_INTRANET_DEFAULT = (PublicSubnet(IPv4Network("0.0.0.0/32")),)


def check_download_path(value: str, field: str = "download_path") -> str:
    """`https://<relay FQDN>/` style URL; no spaces or backslashes (phones.md section 2)."""
    if value and not _DOWNLOAD_PATH.fullmatch(value):
        raise RuleError(
            "invalid_download_path",
            f"download path {value!r} must be a URL like https://relay.example.com/ "
            "(no spaces or backslashes, at most 255 characters)",
            field,
        )
    return value


def _text(body: Mapping[str, Any], key: str, default: str = "") -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise RuleError("invalid_type", f"{key} must be a string", key)
    if len(value) > MAX_TEXT:
        raise RuleError("text_too_long", f"{key} is longer than {MAX_TEXT} characters", key)
    return value


def parse_public_subnets(value: object) -> tuple[PublicSubnet, ...]:
    """The API's `[{"cidr": "20.1.0.0/16", "private_subnets": ["10.0.0.0/8"]}]`."""
    if not isinstance(value, list):
        raise RuleError("invalid_type", "public_subnets must be a list", "public_subnets")
    out: list[PublicSubnet] = []
    for i, entry in enumerate(value):
        where = f"public_subnets[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("cidr"), str):
            raise RuleError("invalid_type", f'{where} must be {{"cidr": "a.b.c.d/n"}}', where)
        private = entry.get("private_subnets", [])
        if not isinstance(private, list) or not all(isinstance(p, str) for p in private):
            raise RuleError(
                "invalid_type", f"{where}.private_subnets must be a list of CIDRs", where
            )
        out.append(
            PublicSubnet(
                parse_cidr(entry["cidr"], f"{where}.cidr"),
                tuple(
                    parse_cidr(p, f"{where}.private_subnets[{j}]") for j, p in enumerate(private)
                ),
            )
        )
    validate_site_subnets(out)
    return tuple(out)


class Sites:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.store = ctx.store

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """A write to sites. The index is rebuilt inside the transaction (to re-home
        devices), so it is invalidated again after it, committed or rolled back."""
        try:
            with self.store.transaction():
                self.ctx.sites_changed()
                yield
        finally:
            self.ctx.sites_changed()

    def ensure_defaults(self) -> None:
        """Create the Internet and Intranet sites of a new tenant."""
        now = self.ctx.now()
        if self.store.site(INTERNET) is None:
            self.store.insert_site(
                {
                    "name": INTERNET,
                    "builtin": 1,
                    "created": now,
                    "subnets": "[]",
                    "description": "Every device outside the enterprise networks",
                }
            )
        if self.store.site(INTRANET) is None:
            self.store.insert_site(
                {
                    "name": INTRANET,
                    "builtin": 1,
                    "created": now,
                    "subnets": dumps(subnets_to_json(_INTRANET_DEFAULT)),
                    "description": "The enterprise network; edit its public subnets",
                }
            )
        self.ctx.sites_changed()

    @staticmethod
    def _out(row: Mapping[str, Any]) -> dict[str, Any]:
        return {
            "name": row["name"],
            "description": row["description"],
            "location": row["location"],
            "public_subnets": [
                {"cidr": str(p.cidr), "private_subnets": [str(q) for q in p.private]}
                for p in subnets_from_json(row["subnets"])
            ],
            "download_path": row["download_path"],
            "site_specific": bool(row["site_specific"]),
            "builtin": bool(row["builtin"]),
            "device_count": row.get("device_count", 0),
        }

    def listing(self) -> list[dict[str, Any]]:
        return [self._out(r) for r in self.store.sites()]

    def get(self, name: str) -> dict[str, Any]:
        row = self.store.site(name)
        if row is None:
            raise not_found("site", name)
        out = self._out(row)
        out["device_count"] = self.store.site_device_count(name)
        out["profiles"] = self.store.binding("site", name)
        return out

    def create(self, body: Mapping[str, Any], actor: str) -> dict[str, Any]:
        name = check_name(_text(body, "name"), "name", "site name")
        if self.store.site(name) is not None:
            raise conflict("exists", f"a site named {name!r} already exists", "name")
        if self.store.site_count() >= MAX_SITES:
            raise RuleError("too_many_sites", f"a tenant has at most {MAX_SITES} sites", "name")
        subnets = parse_public_subnets(body.get("public_subnets", []))
        row = {
            "name": name,
            "description": _text(body, "description"),
            "location": _text(body, "location"),
            "download_path": check_download_path(_text(body, "download_path")),
            "site_specific": int(bool(body.get("site_specific", False))),
            "subnets": dumps(subnets_to_json(subnets)),
            "builtin": 0,
            "created": self.ctx.now(),
        }
        with self._changing():
            self.store.insert_site(row)
            self.rehome(subnets)
        self.ctx.log(actor, "add", f"site/{name}")
        return self.get(name)

    def update(self, name: str, body: Mapping[str, Any], actor: str) -> dict[str, Any]:
        row = self.store.site(name)
        if row is None:
            raise not_found("site", name)
        if name == INTERNET:
            allowed = {"site_specific"}
            refused = sorted(set(body) - allowed)
            if refused:
                raise RuleError(
                    "builtin_site",
                    f"the Internet site's {', '.join(refused)} cannot be edited "
                    "(its download path is the tenant's Internet path)",
                    refused[0],
                    status=403,
                )
        changes: dict[str, Any] = {}
        new_name = name
        if "name" in body and body["name"] != name:
            if row["builtin"]:
                raise RuleError("builtin_site", f"the {name} site cannot be renamed", "name", 403)
            new_name = check_name(_text(body, "name"), "name", "site name")
            if self.store.site(new_name) is not None:
                raise conflict("exists", f"a site named {new_name!r} already exists", "name")
        for key in ("description", "location"):
            if key in body:
                changes[key] = _text(body, key)
        if "download_path" in body:
            changes["download_path"] = check_download_path(_text(body, "download_path"))
        if "site_specific" in body:
            changes["site_specific"] = int(bool(body["site_specific"]))
        changed: tuple[PublicSubnet, ...] = ()
        if "public_subnets" in body:
            subnets = parse_public_subnets(body["public_subnets"])
            changes["subnets"] = dumps(subnets_to_json(subnets))
            changed = subnets + subnets_from_json(row["subnets"])
        with self._changing():
            if new_name != name:
                self.store.rename_site(name, new_name)
            if changes:
                self.store.update_site(new_name, changes)
            self.rehome(changed)
        self.ctx.log(actor, "edit", f"site/{name}", fields=sorted(body))
        return self.get(new_name)

    def delete(self, name: str, actor: str) -> None:
        row = self.store.site(name)
        if row is None:
            raise not_found("site", name)
        if row["builtin"]:
            raise RuleError("builtin_site", f"the {name} site cannot be deleted", "name", 403)
        with self._changing():
            self.store.delete_site(name)
            moved = self.rehome(subnets_from_json(row["subnets"]))
        self.ctx.log(actor, "delete", f"site/{name}", devices_moved=moved)

    def rehome(self, subnets: Iterable[PublicSubnet] | None = None) -> int:
        """Recompute the sites of the devices inside the changed public subnets (all
        devices if None) after subnets changed; returns how many moved."""
        ranges = None
        if subnets is not None:
            ranges = [(int(p.cidr.network_address), int(p.cidr.broadcast_address)) for p in subnets]
        changes = []
        for device_id, public_ip, private_ip, site in self.store.devices_addresses(ranges):
            new = self.ctx.match_site(public_ip, private_ip)
            if new != site:
                changes.append((new, device_id))
        self.store.set_device_sites(changes)
        return len(changes)

    def match(self, public_ip: str, private_ip: str | None) -> str:
        public = parse_ip(public_ip, "public_ip")
        private = parse_ip(private_ip, "private_ip") if private_ip else None
        return self.ctx.site_index().match(public, private) or INTERNET

    def import_csv(self, data: bytes, actor: str, separator: str | None = None) -> ImportReport:
        table = read_csv(data, MAX_SITE_ROWS, MAX_SITE_CSV_BYTES, separator)
        records, errors = parse_site_rows(table)
        report = ImportReport.start(errors)
        with self._changing():
            existing = self.store.site_count()
            for record in records:
                try:
                    with self.store.transaction():
                        created = self._apply_record(record, existing)
                except RuleError as exc:
                    report.error(record.row, record.name, exc.message)
                    continue
                existing += created
                report.ok(record.row, record.name, "created" if created else "updated")
            self.rehome()
        self.ctx.log(actor, "import", "sites", **report.totals())
        return report

    def _apply_record(self, record: SiteRecord, existing: int) -> int:
        row = self.store.site(record.name)
        if row is None and existing >= MAX_SITES:
            raise RuleError("too_many_sites", f"a tenant has at most {MAX_SITES} sites")
        fields = {
            "description": record.description,
            "location": record.location,
            "subnets": dumps(subnets_to_json(record.public)),
        }
        if row is None:
            self.store.insert_site(
                {"name": record.name, "created": self.ctx.now(), "builtin": 0, **fields}
            )
        else:
            self.store.update_site(record.name, fields)
        return 1 if row is None else 0
