"""Device CSV import and export (cloud.md "Devices and device groups"; PDMS-E guide,
"Managing Multiple Devices").

Pure: rows in, validated records and per-row errors out. The service applies
records one savepoint each, so a rejected row changes nothing and the good
rows are applied (as PDMS-E does), each with its outcome reported.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.names import (
    check_endpoint_type,
    check_name,
    check_serial,
    is_phone_type,
    normalize_mac,
)
from relay.cloud.rules.profiles import check_parameter
from relay.proto.csv.table import CsvTable, write_table

MAX_DEVICE_ROWS = 9_999  # "fewer than 10,000 rows"
MAX_DEVICE_CSV_BYTES = 16 * 1024 * 1024
FIXED_HEADERS = ("mac_address", "serial_number", "endpoint_type", "endpoint_name", "endpoint_group")
UPDATE_MODES = ("skip", "overwrite", "merge")


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """One valid row. None means "column absent or cell empty": keep what is there."""

    row: int
    key: str
    mac: str | None
    serial: str | None
    type: str | None
    name: str | None
    groups: tuple[str, ...] | None
    parameters: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class RowError:
    row: int
    key: str
    error: str


def _columns(table: CsvTable) -> tuple[dict[str, int], dict[str, int]]:
    """Split headers into the fixed ones (case-insensitive) and parameter columns."""
    fixed: dict[str, int] = {}
    params: dict[str, int] = {}
    for index, header in enumerate(table.headers):
        lowered = header.lower()
        if lowered in FIXED_HEADERS:
            fixed[lowered] = index
            continue
        try:
            check_parameter(header, "", field="")
        except RuleError as exc:
            raise RuleError(exc.code, f"column {index + 1} header: {exc.message}", header) from exc
        params[header] = index
    if "mac_address" not in fixed and "serial_number" not in fixed:
        raise RuleError(
            "missing_header",
            "the file needs a mac_address or a serial_number column (headers: "
            + ", ".join(FIXED_HEADERS)
            + ", then any parameter names)",
            "mac_address",
        )
    return fixed, params


def _record(
    row: int,
    values: Sequence[str],
    fixed: Mapping[str, int],
    params: Mapping[str, int],
    known_groups: Collection[str],
) -> DeviceRecord:
    def cell(name: str) -> str:
        index = fixed.get(name)
        return values[index] if index is not None else ""

    mac = normalize_mac(cell("mac_address")) if cell("mac_address") else None
    serial = check_serial(cell("serial_number")) if cell("serial_number") else None
    etype = check_endpoint_type(cell("endpoint_type")) if cell("endpoint_type") else None
    if etype is not None and not is_phone_type(etype):
        if serial is None:
            raise RuleError(
                "serial_required", f"a {etype} is identified by its serial_number", "serial_number"
            )
        key = serial
    elif mac is not None:
        key = mac
    elif etype is None:
        raise RuleError(
            "type_required",
            "a device identified by serial_number needs its endpoint_type (e.g. Polycom Studio); "
            "phones need a mac_address",
            "endpoint_type",
        )
    else:
        raise RuleError("mac_required", f"a {etype} phone is identified by its mac_address")
    name = cell("endpoint_name") or None
    if name is not None:
        check_name(name, "endpoint_name", "endpoint_name")
    groups: tuple[str, ...] | None = None
    if "endpoint_group" in fixed:
        groups = tuple(g.strip() for g in cell("endpoint_group").split("|") if g.strip())
        for group in groups:
            check_name(group, "endpoint_group", "group name")
            if group not in known_groups:
                raise RuleError(
                    "unknown_group",
                    f"device group {group!r} does not exist; create it first",
                    "endpoint_group",
                )
        if len(set(groups)) != len(groups):
            raise RuleError("duplicate_group", "a group is listed twice", "endpoint_group")
    parameters: dict[str, str] = {}
    for header, index in params.items():
        value = values[index]
        if value:
            check_parameter(header, value, field="")
            parameters[header] = value
    return DeviceRecord(row, key, mac, serial, etype, name, groups, parameters)


def parse_device_rows(
    table: CsvTable, known_groups: Collection[str]
) -> tuple[list[DeviceRecord], list[RowError]]:
    """Validate every row; whole-file problems (headers) raise RuleError."""
    fixed, params = _columns(table)
    records: list[DeviceRecord] = []
    errors = [RowError(p.row, "", p.message) for p in table.problems]
    seen: dict[str, int] = {}
    for row in table.rows:
        key_hint = row.values[fixed["mac_address"]] if "mac_address" in fixed else ""
        if not key_hint and "serial_number" in fixed:
            key_hint = row.values[fixed["serial_number"]]
        try:
            record = _record(row.row, row.values, fixed, params, known_groups)
        except RuleError as exc:
            where = f"column {exc.field}: " if exc.field else ""
            errors.append(RowError(row.row, key_hint, where + exc.message))
            continue
        if record.key in seen:
            errors.append(
                RowError(row.row, record.key, f"same device as row {seen[record.key]}; row ignored")
            )
            continue
        seen[record.key] = row.row
        records.append(record)
    errors.sort(key=lambda e: e.row)
    return records, errors


def csv_parameters(parameters: Mapping[str, str], spellings: Mapping[str, str]) -> dict[str, str]:
    """Parameters fit for a CSV profile, spelled as the other CSV profiles spell them.

    CSV headers are case-insensitive, so a CSV profile may not hold a fixed
    header's name or two names that differ only in case; a name another CSV
    profile already uses takes that spelling (`spellings`: casefolded -> name),
    so that the export keeps one column per parameter.
    """
    out: dict[str, str] = {}
    for name, value in parameters.items():
        folded = name.casefold()
        if folded in FIXED_HEADERS:
            raise RuleError(
                "reserved_name", f"{name!r} is a CSV column, not a parameter", "parameters"
            )
        canonical = spellings.get(folded, name)
        if canonical in out:
            raise RuleError(
                "duplicate_parameter",
                f"{name!r} differs from another parameter only in case",
                "parameters",
            )
        out[canonical] = value
    return out


def merged_parameters(
    mode: str, existing: Mapping[str, str], given: Mapping[str, str]
) -> dict[str, str]:
    """overwrite: the file's values replace all; merge: update given, keep the rest."""
    if mode == "overwrite":
        return dict(given)
    out = dict(existing)
    out.update(given)
    return out


def merged_groups(mode: str, existing: Sequence[str], given: tuple[str, ...] | None) -> list[str]:
    """overwrite replaces the association; merge appends the new groups after the old."""
    if given is None:
        return list(existing)
    if mode == "overwrite":
        return list(given)
    return list(existing) + [g for g in given if g not in existing]


def export_devices(
    devices: Iterable[Mapping[str, object]],
    groups: Mapping[str, Sequence[str]],
    csv_parameters: Mapping[str, Mapping[str, str]],
    separator: str = ",",
) -> str:
    """The import format written back: only csv profiles are exported (PDMS-E guide)."""
    names = sorted({n for params in csv_parameters.values() for n in params})
    rows: list[list[str]] = []
    for device in devices:
        device_id = str(device["id"])
        params = csv_parameters.get(device_id, {})
        rows.append(
            [
                str(device.get("mac") or ""),
                str(device.get("serial") or ""),
                str(device.get("type") or ""),
                str(device.get("name") or ""),
                "|".join(groups.get(device_id, ())),
                *(params.get(n, "") for n in names),
            ]
        )
    return write_table([*FIXED_HEADERS, *names], rows, separator)
