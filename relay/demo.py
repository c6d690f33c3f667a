"""`relay up --demo N`: simulated phones provisioned by the embedded service, shown live.

With `rest_port` or `sip_port` the phones also serve their REST API and
listen for check-sync NOTIFY (relay.sim.rest, relay.sim.sip) on their own
127.20.x.y addresses, and keep doing so after the result line until the demo
is cancelled, so the control plane can manage them.
"""

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
    *,
    rest_port: int | None = None,
    sip_port: int | None = None,
) -> None:
    """Boot `count` phones against `url`; emit progress each second, then the result."""
    fleet = Fleet.build(
        count,
        [url],
        user=user,
        password=password,
        cacert=str(cacert),
        rest_port=rest_port,
        sip_port=sip_port,
    )
    async with fleet:
        booting = asyncio.create_task(fleet.boot_all(timeout=DEMO_TIMEOUT))
        while not booting.done():
            await asyncio.wait({booting}, timeout=1.0)
            if not booting.done():
                counts = fleet.counts()
                emit({"event": "demo_progress", "phones": count, **counts})
        summary = booting.result()
        result: dict[str, Any] = {
            "event": "demo",
            "phones": count,
            "provisioned": summary["provisioned"],
            "failed": summary["failed"],
            "errors": summary["errors"][:20],
        }
        if rest_port is not None or sip_port is not None:
            result["rest_port"] = rest_port
            result["sip_port"] = sip_port
            result["first_ip"] = fleet.phones[0].spec.source_ip if fleet.phones else None
        emit(result)
        if rest_port is not None or sip_port is not None:
            await asyncio.Event().wait()
