"""The activity log of administrator operations (cloud.md "Activity log").

One JSON-lines file per ISO week (`activity/2026-W47.jsonl`), kept four weeks,
downloadable by any date inside the week. Appends are single `write` calls on
an O_APPEND descriptor, so a crash leaves at worst one incomplete last line,
which readers skip and the next append terminates.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

KEEP_WEEKS = 4


def week_name(when: dt.date) -> str:
    year, week, _ = when.isocalendar()
    return f"{year}-W{week:02d}"


class ActivityLog:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def record(self, now: float, actor: str, op: str, target: str, **detail: Any) -> None:
        when = dt.datetime.fromtimestamp(now, dt.UTC)
        entry: dict[str, Any] = {
            "ts": when.isoformat(timespec="seconds"),
            "actor": actor,
            "op": op,
            "target": target,
        }
        if detail:
            entry["detail"] = detail
        line = (json.dumps(entry, default=str, separators=(",", ":")) + "\n").encode()
        path = self.directory / f"{week_name(when.date())}.jsonl"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line  # end a line cut short by a crash, keep this entry whole
            os.write(fd, line)
        finally:
            os.close(fd)
        self.prune(when.date())

    def prune(self, today: dt.date) -> None:
        """Keep the current week and the three before it (and any later week, should the
        clock have been set back)."""
        oldest = week_name(today - dt.timedelta(weeks=KEEP_WEEKS - 1))
        for path in self.directory.glob("*.jsonl"):
            if path.stem < oldest:
                path.unlink(missing_ok=True)

    def week(self, day: dt.date) -> list[dict[str, Any]]:
        """Entries of the week that holds `day` (empty if none or pruned)."""
        path = self.directory / f"{week_name(day)}.jsonl"
        if not path.is_file():
            return []
        out: list[dict[str, Any]] = []
        for raw in path.read_bytes().splitlines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                continue
        return out

    def weeks(self) -> list[str]:
        return sorted(p.stem for p in self.directory.glob("*.jsonl"))
