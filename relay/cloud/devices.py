"""Devices: add, edit, delete, groups, auto-add, CSV import and export
(cloud.md "Devices and device groups")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from ipaddress import IPv4Address
from typing import Any

from relay.cloud.context import Context, conflict, not_found
from relay.cloud.groups import Groups, name_list
from relay.cloud.imports import ImportReport, read_csv
from relay.cloud.monitor import status_detail
from relay.cloud.rules.devices_csv import (
    MAX_DEVICE_CSV_BYTES,
    MAX_DEVICE_ROWS,
    UPDATE_MODES,
    DeviceRecord,
    csv_parameters,
    export_devices,
    merged_groups,
    merged_parameters,
    parse_device_rows,
)
from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.monitor import is_online
from relay.cloud.rules.names import (
    check_endpoint_type,
    check_name,
    check_serial,
    is_phone_type,
    normalize_mac,
    normalize_model,
)
from relay.cloud.rules.profiles import csv_profile_name
from relay.cloud.store.store import DeviceListQuery
from relay.proto.csv.table import SEPARATORS, CsvError

MAX_DESCRIPTION = 512
CONTACT_EVERY = 60.0
EDITABLE = ("name", "description", "private_ip", "public_ip", "model", "type")


def device_key(value: str) -> str:
    """Path keys are MACs (any case) or serial numbers."""
    stripped = value.strip()
    if len(stripped) == 12 and all(c in "0123456789abcdefABCDEF" for c in stripped):
        return stripped.lower()
    return check_serial(stripped, "id")


def _ip(value: object, field: str) -> str | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise RuleError("invalid_ip", f"{field} must be an IPv4 address", field)
    try:
        return str(IPv4Address(value))
    except ValueError as exc:
        raise RuleError("invalid_ip", f"{field} {value!r} is not an IPv4 address", field) from exc


def _text(body: Mapping[str, Any], key: str, check_as_name: bool = False) -> str:
    value = body.get(key, "")
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise RuleError("invalid_type", f"{key} must be text of at most {MAX_DESCRIPTION}", key)
    if check_as_name and value:
        check_name(value, key, "device name")
    return value


def _identified_by_serial(row: Mapping[str, Any]) -> bool:
    return bool(row["serial"]) and row["id"] == row["serial"] and row["mac"] != row["id"]


class Devices:
    def __init__(self, ctx: Context, groups: Groups) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.groups = groups

    def _out(self, row: Mapping[str, Any], groups: list[str] | None = None) -> dict[str, Any]:
        out = {
            "id": row["id"],
            "mac": row["mac"],
            "serial": row["serial"],
            "type": row["type"],
            "model": row["model"],
            "name": row["name"],
            "description": row["description"],
            "private_ip": row["private_ip"],
            "public_ip": row["public_ip"],
            "site": row["site"],
            "firmware": row["firmware"],
            "source": row["source"],
            "created": row["created"],
            "last_seen": row["last_seen"],
            "online": is_online(
                self.ctx.now(),
                row["last_seen"],
                row.get("status_checked"),
                row.get("status_online"),
            ),
            "last_provisioned": row["last_provisioned"],
            "last_result": row["last_result"],
            "last_error": row["last_error"],
            "user_agent": row["user_agent"],
        }
        if groups is not None:
            out["groups"] = groups
        return out

    def _row(self, device_id: str) -> dict[str, Any]:
        row = self.store.device(device_key(device_id))
        if row is None:
            raise not_found("device", device_id)
        return row

    def get(self, device_id: str) -> dict[str, Any]:
        """The device with its monitor status (cloud.md "Device monitor", "Details")."""
        row = self._row(device_id)
        status = self.store.device_status(row["id"])
        if status is not None:
            row = {**row, "status_checked": status["checked"], "status_online": status["online"]}
        out = self._out(row, self.store.device_groups(row["id"]))
        out.update(status_detail(status))
        csv_profile = csv_profile_name(row["id"])
        out["csv_profile"] = csv_profile if self.store.profile(csv_profile) else None
        out["profiles"] = self.store.binding("device", row["id"])
        return out

    def listing(self, query: DeviceListQuery) -> dict[str, Any]:
        total, rows = self.store.list_devices(query, self.ctx.now())
        return {
            "total": total,
            "offset": query.offset,
            "limit": query.limit,
            "devices": [self._out(r) for r in rows],
        }

    def create(self, body: Mapping[str, Any], actor: str) -> dict[str, Any]:
        etype_raw = body.get("type")
        etype = check_endpoint_type(etype_raw, "type") if isinstance(etype_raw, str) else None
        mac_raw, serial_raw = body.get("mac"), body.get("serial")
        mac = normalize_mac(mac_raw, "mac") if isinstance(mac_raw, str) and mac_raw else None
        serial = (
            check_serial(serial_raw, "serial")
            if isinstance(serial_raw, str) and serial_raw
            else None
        )
        if etype is not None and not is_phone_type(etype):
            if serial is None:
                raise RuleError(
                    "serial_required", f"a {etype} is identified by its serial", "serial"
                )
            key = serial
        elif mac is not None:
            key = mac
        else:
            raise RuleError("mac_required", "a phone is identified by its MAC address", "mac")
        if self.store.device(key) is not None or (mac and self.store.device_by_mac(mac)):
            raise conflict(
                "exists", f"device {key} already exists", "mac" if key == mac else "serial"
            )
        groups = name_list(body.get("groups", []), "groups")
        self.groups.require(groups, "groups")
        model_raw = body.get("model")
        public_ip = _ip(body.get("public_ip"), "public_ip")
        private_ip = _ip(body.get("private_ip"), "private_ip")
        row = {
            "id": key,
            "mac": mac,
            "serial": serial,
            "type": etype,
            "model": normalize_model(model_raw)
            if isinstance(model_raw, str) and model_raw
            else None,
            "name": _text(body, "name", check_as_name=True),
            "description": _text(body, "description"),
            "private_ip": private_ip,
            "public_ip": public_ip,
            "site": self.ctx.match_site(public_ip, private_ip),
            "source": "manual",
            "created": self.ctx.now(),
        }
        with self.store.transaction():
            self.store.insert_device(row)
            self.store.set_device_groups(key, groups)
        self.ctx.log(actor, "add", f"device/{key}")
        return self.get(key)

    def update(self, device_id: str, body: Mapping[str, Any], actor: str) -> dict[str, Any]:
        row = self._row(device_id)
        unknown = sorted(set(body) - set(EDITABLE))
        if unknown:
            raise RuleError(
                "not_editable",
                f"{', '.join(unknown)} cannot be edited (editable: {', '.join(EDITABLE)}); "
                "a changed MAC or serial is a new device",
                unknown[0],
            )
        changes: dict[str, Any] = {}
        if "name" in body:
            changes["name"] = _text(body, "name", check_as_name=True)
        if "description" in body:
            changes["description"] = _text(body, "description")
        for key in ("private_ip", "public_ip"):
            if key in body:
                changes[key] = _ip(body[key], key)
        if "model" in body:
            model = body["model"]
            changes["model"] = normalize_model(model) if isinstance(model, str) and model else None
        if "type" in body:
            etype = body["type"]
            changes["type"] = check_endpoint_type(etype, "type") if isinstance(etype, str) else None
        merged = {**row, **changes}
        changes["site"] = self.ctx.match_site(merged["public_ip"], merged["private_ip"])
        with self.store.transaction():
            self.store.update_device(row["id"], changes)
            if "model" in changes:
                self.ctx.config_changed()
        self.ctx.log(actor, "edit", f"device/{row['id']}", fields=sorted(body))
        return self.get(row["id"])

    def delete(self, device_id: str, actor: str) -> None:
        """Deleting a device deletes its csv profile and device bindings too."""
        row = self._row(device_id)
        with self.store.transaction():
            self.store.delete_device(row["id"])
            self.ctx.config_changed()
        self.ctx.log(actor, "delete", f"device/{row['id']}")

    def set_groups(self, device_id: str, value: object, actor: str) -> list[str]:
        row = self._row(device_id)
        groups = name_list(value, "groups")
        self.groups.require(groups, "groups")
        with self.store.transaction():
            self.store.set_device_groups(row["id"], groups)
        self.ctx.log(actor, "edit", f"device/{row['id']}/groups", groups=groups)
        return self.store.device_groups(row["id"])

    def seen(
        self,
        mac: str,
        *,
        model: str | None,
        firmware: str | None,
        public_ip: str | None,
        private_ip: str | None,
        user_agent: str | None = None,
    ) -> dict[str, Any]:
        """A phone asked for provisioning: record it, auto-adding it to the default groups."""
        mac = normalize_mac(mac)
        self.record_contact(mac, model, firmware, public_ip, private_ip, user_agent)
        return self.get(mac)

    def record_contact(
        self,
        mac: str,
        model: str | None,
        firmware: str | None,
        public_ip: str | None,
        private_ip: str | None,
        user_agent: str | None,
    ) -> None:
        """The write behind `seen`, kept cheap for the provisioning hot path: a known
        phone whose facts did not change is rewritten at most once a minute."""
        now = self.ctx.now()
        facts: dict[str, Any] = {
            "public_ip": public_ip,
            "private_ip": private_ip,
            "site": self.ctx.match_site(public_ip, private_ip),
        }
        if model:
            facts["model"] = normalize_model(model)
        if firmware:
            facts["firmware"] = firmware
        if user_agent:
            facts["user_agent"] = user_agent
        row = self.store.device(mac)
        if row is None:
            with self.store.transaction():
                self.store.insert_device(
                    {
                        "id": mac,
                        "mac": mac,
                        "source": "auto",
                        "created": now,
                        "last_seen": now,
                        **facts,
                    }
                )
                self.store.set_device_groups(mac, self.store.default_groups())
            self.ctx.log("provisioning", "auto_add", f"device/{mac}")
            return
        changed = any(row.get(k) != v for k, v in facts.items())
        if changed or not row["last_seen"] or now - row["last_seen"] >= CONTACT_EVERY:
            self.store.update_device(mac, {**facts, "last_seen": now})

    # -- CSV -------------------------------------------------------------------

    def import_csv(
        self, data: bytes, mode: str, actor: str, separator: str | None = None
    ) -> ImportReport:
        """Apply the good rows, each all-or-nothing; report every row (PDMS-E behaviour)."""
        if mode not in UPDATE_MODES:
            raise RuleError(
                "invalid_mode",
                f"update must be one of {', '.join(UPDATE_MODES)}",
                "update",
                status=400,
            )
        table = read_csv(data, MAX_DEVICE_ROWS, MAX_DEVICE_CSV_BYTES, separator)
        records, errors = parse_device_rows(table, self.store.group_names())
        spellings = self.store.csv_parameter_spellings()
        records = [replace(r, parameters=csv_parameters(r.parameters, spellings)) for r in records]
        report = ImportReport.start(errors)
        existing = self.store.devices_by_ids([r.key for r in records])
        with self.store.transaction():
            for record in records:
                current = existing.get(record.key)
                if current is not None and mode == "skip":
                    report.ok(record.row, record.key, "skipped")
                    continue
                try:
                    with self.store.transaction():
                        self._apply(record, current, mode)
                except RuleError as exc:
                    report.error(record.row, record.key, exc.message)
                    continue
                report.ok(record.row, record.key, "created" if current is None else "updated")
            self.ctx.config_changed()
        self.ctx.log(actor, "import", "devices", mode=mode, **report.totals())
        return report

    def _apply(self, record: DeviceRecord, current: Mapping[str, Any] | None, mode: str) -> None:
        key = record.key
        if record.mac:
            owner = self.store.device_by_mac(record.mac)
            if owner is not None and owner["id"] != key:
                raise RuleError(
                    "mac_in_use", f"MAC {record.mac} belongs to device {owner['id']}", "mac_address"
                )
        if current is not None and _identified_by_serial(current) != (key == record.serial):
            kind = "serial number" if _identified_by_serial(current) else "MAC"
            raise RuleError("id_conflict", f"{key} is already the {kind} of another device")
        if current is None:
            self.store.insert_device(
                {
                    "id": key,
                    "mac": record.mac,
                    "serial": record.serial,
                    "type": record.type,
                    "name": record.name or "",
                    "source": "csv",
                    "created": self.ctx.now(),
                    "site": self.ctx.match_site(None, None),
                }
            )
            existing_groups: list[str] = []
        else:
            changes = {
                k: v
                for k, v in (
                    ("name", record.name),
                    ("type", record.type),
                    ("serial", record.serial),
                    ("mac", record.mac),
                )
                if v is not None
            }
            if changes:
                self.store.update_device(key, changes)
            existing_groups = self.store.device_groups(key)
        # CSV-imported devices do not join the default groups (cloud.md).
        groups = merged_groups(mode, existing_groups, record.groups)
        if groups != existing_groups or current is None:
            self.store.set_device_groups(key, groups)
        profile = csv_profile_name(key)
        prow = self.store.profile(profile)
        if prow is not None and prow["kind"] != "imported":
            raise RuleError("name_taken", f"a {prow['kind']} profile is named {profile}; rename it")
        old = self.store.parameters(profile) if prow is not None else None
        params = merged_parameters(mode, old or {}, record.parameters)
        if old is None and params:
            self.store.insert_profile(
                {
                    "name": profile,
                    "kind": "imported",
                    "description": f"Parameters of {key} from a CSV import",
                    "owner_device": key,
                    "modified": self.ctx.now(),
                    "modified_by": "csv",
                }
            )
        if old is not None and not params:
            self.store.delete_profile(profile)
        elif params and params != old:
            self.store.set_parameters(profile, params)
            self.store.update_profile(profile, {"modified": self.ctx.now()})

    def export_csv(self, separator: str) -> str:
        if separator not in SEPARATORS:
            raise RuleError(
                "invalid_separator", "separator must be ',', ';' or a tab", "separator", status=400
            )
        try:
            return export_devices(
                self.store.all_devices(),
                self.store.all_device_groups(),
                self.store.csv_profiles(),
                separator,
            )
        except CsvError as exc:
            raise RuleError(
                "export_conflict", f"cannot write the CSV: {exc.message}", status=409
            ) from exc
