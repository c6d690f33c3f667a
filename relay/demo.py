"""`relay up --demo N`: simulated phones provisioned by the embedded service, shown live."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from relay.sim.fleet import Fleet

DEMO_TIMEOUT = 600.0


async def run_demo(
    count: int,
    url: str,
    user: str,
    password: str,
    cacert: Path,
    emit: Callable[[dict[str, Any]], None],
) -> None:
    """Boot `count` phones against `url`; emit progress each second, then the result."""
    async with Fleet.build(count, [url], user=user, password=password, cacert=str(cacert)) as fleet:
        booting = asyncio.create_task(fleet.boot_all(timeout=DEMO_TIMEOUT))
        while not booting.done():
            await asyncio.wait({booting}, timeout=1.0)
            if not booting.done():
                counts = fleet.counts()
                emit({"event": "demo_progress", "phones": count, **counts})
        summary = booting.result()
    emit(
        {
            "event": "demo",
            "phones": count,
            "provisioned": summary["provisioned"],
            "failed": summary["failed"],
            "errors": summary["errors"][:20],
        }
    )
