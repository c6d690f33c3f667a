"""What every CSV import shares: reading the table and the per-row report.

The report is the API's contract: `{"rows": [{"row", "key", "status", "error"}],
"created", "updated", "skipped", "errors"}`; rows are in file order.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from relay.cloud.rules.devices_csv import RowError
from relay.cloud.rules.errors import RuleError
from relay.proto.csv.table import CsvError, CsvTable, read_table

STATUSES = ("created", "updated", "skipped", "error")


def read_csv(data: bytes, max_rows: int, max_bytes: int, separator: str | None) -> CsvTable:
    """Parse a CSV body; whole-file problems become one RuleError (nothing is applied)."""
    try:
        return read_table(data, max_rows=max_rows, max_bytes=max_bytes, separator=separator)
    except CsvError as exc:
        where = f"row {exc.row}: " if exc.row else ""
        status = 413 if exc.code in ("too_many_rows", "too_large") else 422
        raise RuleError(exc.code, where + exc.message, "body", status) from exc


@dataclass
class ImportReport:
    rows: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def start(cls, errors: Iterable[RowError]) -> ImportReport:
        report = cls()
        for e in errors:
            report.error(e.row, e.key, e.error)
        return report

    def ok(self, row: int, key: str, status: str) -> None:
        self.rows.append({"row": row, "key": key, "status": status})

    def error(self, row: int, key: str, message: str) -> None:
        self.rows.append({"row": row, "key": key, "status": "error", "error": message})

    def totals(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for r in self.rows:
            counts[r["status"]] += 1
        return {
            "created": counts["created"],
            "updated": counts["updated"],
            "skipped": counts["skipped"],
            "errors": counts["error"],
        }

    def as_dict(self) -> dict[str, Any]:
        return {"rows": sorted(self.rows, key=lambda r: r["row"]), **self.totals()}
