"""What the benchmarks share: the table of figures each run prints and records."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import sys
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any


@dataclass(slots=True)
class Row:
    section: str
    metric: str
    value: str
    goal: str = ""
    status: str = ""


@dataclass(slots=True)
class Report:
    rows: list[Row] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def add(
        self, section: str, metric: str, value: str, goal: str = "", met: bool | None = None
    ) -> None:
        status = "" if met is None else ("met" if met else "MISSED")
        self.rows.append(Row(section, metric, value, goal, status))
        print(f"  {metric:<58} {value:>30}  {goal} {status}".rstrip(), flush=True)

    def table(self) -> str:
        headers = ("section", "metric", "value", "goal", "status")
        cells = [headers, *((r.section, r.metric, r.value, r.goal, r.status) for r in self.rows)]
        widths = [max(len(c[i]) for c in cells) for i in range(len(headers))]
        lines = [
            "| " + " | ".join(c[i].ljust(widths[i]) for i in range(len(headers))) + " |"
            for c in cells
        ]
        lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
        return "\n".join(lines)


def mib(n_bytes: float) -> str:
    return f"{n_bytes / 2**20:,.1f} MiB"


def machine() -> str:
    """Cores, memory, OS and Python of the machine the run is on (recorded with figures)."""
    mem = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1])
    system = f"{platform.platform()}, Python {platform.python_version()}"
    return f"{os.cpu_count()} cores / {mem / 2**20:.0f} GiB, {system}"


def begin(name: str, scale: Any) -> str:
    """Print what runs, when, where and how loaded the machine is; returns the time."""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"{name} {' '.join(sys.argv[1:])}\n{when}; {machine()}\n{scale}", flush=True)
    print(f"load average before: {os.getloadavg()}", flush=True)
    return when


def finish(report: Report, when: str, scale: Any, json_path: Path | None) -> None:
    """Print the table and, when asked, write every figure as JSON beside it."""
    print(f"\n{report.table()}\n\ntotal run time {report.facts['total_s']:,.0f} s", flush=True)
    if json_path is not None:
        json_path.write_text(
            json.dumps(
                {
                    "date": when,
                    "machine": machine(),
                    "scale": asdict(scale),
                    "rows": [asdict(r) for r in report.rows],
                    "facts": report.facts,
                },
                indent=2,
                default=str,
            )
        )
