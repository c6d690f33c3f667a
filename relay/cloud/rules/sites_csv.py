"""Site CSV import (cloud.md "Sites"; PDMS-E guide, "Importing Sites Using CSV Files").

Headers `site_name, description, location_name, subnets` in any case and
order; `site_name` and `subnets` are required; subnets are JSON
`{"public-subnet-list": [{"ip-address", "mask-length", "private-subnet-list": [...]}]}`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from relay.cloud.rules.devices_csv import RowError
from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.names import check_name
from relay.cloud.rules.sites import INTERNET, PublicSubnet, parse_cidr, validate_site_subnets
from relay.proto.csv.table import CsvTable

MAX_SITE_ROWS = 1_999  # "less than 2000"
MAX_SITE_CSV_BYTES = 8 * 1024 * 1024
HEADERS = ("site_name", "description", "location_name", "subnets")
MAX_TEXT = 512


@dataclass(frozen=True, slots=True)
class SiteRecord:
    row: int
    name: str
    description: str
    location: str
    public: tuple[PublicSubnet, ...]


def _cidr_of(entry: object, where: str) -> Any:
    if not isinstance(entry, dict):
        raise RuleError(
            "invalid_subnets", f"{where} must be an object with ip-address and mask-length"
        )
    address = entry.get("ip-address")
    mask = entry.get("mask-length")
    if not isinstance(address, str) or not isinstance(mask, str | int) or isinstance(mask, bool):
        raise RuleError(
            "invalid_subnets", f'{where} needs "ip-address" (text) and "mask-length" (number)'
        )
    return parse_cidr(f"{address.strip()}/{str(mask).strip()}", where)


def parse_subnets_json(text: str) -> tuple[PublicSubnet, ...]:
    """Decode the subnets column; errors say where in the JSON the problem is."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RuleError(
            "invalid_json",
            f"subnets is not valid JSON: {exc.msg} at character {exc.pos + 1} "
            f"(near {text[max(0, exc.pos - 15) : exc.pos + 15]!r})",
            "subnets",
        ) from exc
    except RecursionError as exc:
        raise RuleError("invalid_json", "subnets JSON is nested too deeply", "subnets") from exc
    if not isinstance(data, dict) or not isinstance(data.get("public-subnet-list"), list):
        raise RuleError(
            "invalid_subnets",
            'subnets must be {"public-subnet-list": [{"ip-address": ..., "mask-length": ...}]}',
            "subnets",
        )
    out: list[PublicSubnet] = []
    for i, entry in enumerate(data["public-subnet-list"]):
        where = f"public-subnet-list[{i}]"
        cidr = _cidr_of(entry, where)
        private_list = entry.get("private-subnet-list", [])
        if not isinstance(private_list, list):
            raise RuleError("invalid_subnets", f"{where}.private-subnet-list must be a list")
        private = tuple(
            _cidr_of(p, f"{where}.private-subnet-list[{j}]") for j, p in enumerate(private_list)
        )
        out.append(PublicSubnet(cidr, private))
    validate_site_subnets(out)
    return tuple(out)


def parse_site_rows(table: CsvTable) -> tuple[list[SiteRecord], list[RowError]]:
    """Validate every row; whole-file problems (headers) raise RuleError."""
    index = {h.lower(): i for i, h in enumerate(table.headers)}
    for required in ("site_name", "subnets"):
        if required not in index:
            raise RuleError(
                "missing_header",
                f"the file has no {required} column (headers: {', '.join(HEADERS)})",
                required,
            )
    unknown = [h for h in table.headers if h.lower() not in HEADERS]
    if unknown:
        raise RuleError(
            "unknown_header",
            f"unknown column(s) {', '.join(unknown)}; site files have {', '.join(HEADERS)}",
            unknown[0],
        )
    records: list[SiteRecord] = []
    errors = [RowError(p.row, "", p.message) for p in table.problems]
    seen: dict[str, int] = {}
    for row in table.rows:

        def cell(name: str, values: tuple[str, ...] = row.values) -> str:
            return values[index[name]] if name in index else ""

        name = cell("site_name")
        try:
            check_name(name, "site_name", "site_name")
            if name == INTERNET:
                raise RuleError("builtin_site", "the Internet site cannot be edited", "site_name")
            if name in seen:
                raise RuleError("duplicate_site", f"site already given in row {seen[name]}")
            description, location = cell("description"), cell("location_name")
            if len(description) > MAX_TEXT or len(location) > MAX_TEXT:
                raise RuleError("text_too_long", f"description and location_name: {MAX_TEXT} max")
            public = parse_subnets_json(cell("subnets"))
        except RuleError as exc:
            field = exc.field or ""
            if field.startswith("public-subnet-list"):
                field = f"subnets, {field}"
            where = f"column {field}: " if field else ""
            errors.append(RowError(row.row, name, where + exc.message))
            continue
        seen[name] = row.row
        records.append(SiteRecord(row.row, name, description, location, public))
    errors.sort(key=lambda e: e.row)
    return records, errors
